// cpp/src/cell.cpp: the one switch from a model's cell kind to its step.
// Part of streamrnn, MIT licence.
#include "streamrnn/cell.hpp"

#include "streamrnn/gru_cell.hpp"
#include "streamrnn/lstm_cell.hpp"
#include "streamrnn/rnn_cell.hpp"

namespace streamrnn {

void cell_forward_step(const ModelSpec& spec, const CellWeights& w, MatMap gates, StepState state,
                       const StepBuffers& buffers) noexcept
{
    switch (spec.kind) {
    case CellKind::rnn_tanh: rnn_forward_step(w, false, gates, state, buffers); break;
    case CellKind::rnn_relu: rnn_forward_step(w, true, gates, state, buffers); break;
    case CellKind::lstm: lstm_forward_step(w, gates, state, buffers); break;
    case CellKind::gru: gru_forward_step(w, spec.reset_after, gates, state, buffers); break;
    }
}

void cell_backward_step(const ModelSpec& spec, const CellWeights& w, const StepRecord& record,
                        StepGradients grads)
{
    switch (spec.kind) {
    case CellKind::rnn_tanh: rnn_backward_step(w, false, record, grads); break;
    case CellKind::rnn_relu: rnn_backward_step(w, true, record, grads); break;
    case CellKind::lstm: lstm_backward_step(w, record, grads); break;
    case CellKind::gru: gru_backward_step(w, spec.reset_after, record, grads); break;
    }
}

}  // namespace streamrnn
