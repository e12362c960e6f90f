// cpp/src/rnn_cell.cpp: the Elman RNN step.
// Part of streamrnn, MIT licence.
#include "streamrnn/rnn_cell.hpp"

#include "gemm.hpp"

namespace streamrnn {

void rnn_forward_step(const CellWeights& w, bool relu, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept
{
    // a = (W_ih x + b_ih) + W_hh h + b_hh;  h' = act(a)
    recurrent_product(w, state.h_prev, 0, w.gate_rows, gates, true, *buffers.gemm);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);
    if (relu)
        gates = gates.cwiseMax(0.0f);
    else
        gates = gates.array().tanh().matrix();
    state.h_next = gates;
}

void rnn_backward_step(const CellWeights& w, bool relu, const StepRecord& record, StepGradients grads)
{
    const auto h = record.gates.array();  // the gates of an RNN are h' itself
    if (relu)
        grads.da_x.array() = grads.dh.array() * (h > 0.0f).cast<float>();
    else
        grads.da_x.array() = grads.dh.array() * (1.0f - h.square());
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

}  // namespace streamrnn
