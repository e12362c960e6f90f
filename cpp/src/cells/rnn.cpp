// cpp/src/cells/rnn.cpp: the Elman RNN's CPU step over B rows: its product, and its equations
// (rnn.hpp) over the block of its gates; then the general step of ONNX's options (options.hpp).
// Part of streamrnn, MIT licence.
#include "cells/rnn.hpp"

#include "cells/cell.hpp"
#include "cells/options.hpp"
#include "kernels/gemm.hpp"

namespace streamrnn {

template <bool relu>
void rnn_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept
{
    // a = (W_ih x + b_ih) + W_hh h + b_hh;  h' = act(a)
    recurrent_product(w, state.h_prev, 0, w.gate_rows, gates, true, *buffers.gemm);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);
    gates.array() = cells::Rnn<relu>::activate(gates.array());
    state.h_next = gates;
}

template <bool relu>
void rnn_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads)
{
    // The gates of an RNN are h' itself.
    grads.da_x.array() = cells::Rnn<relu>::d_pre(grads.dh.array(), record.gates.array());
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

// ---- ONNX's options: any function f, clipping.

void rnn_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                              const StepBuffers& buffers) noexcept
{
    recurrent_product(w, state.h_prev, 0, w.gate_rows, gates, true, *buffers.gemm);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);
    if (buffers.pre)
        mat(buffers.pre, gates.rows(), w.gate_rows) = gates;
    cells::clip_to(w.options.clip, gates);
    cells::activate(w.options.functions[0], gates);
    state.h_next = gates;
}

void rnn_general_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads)
{
    grads.da_x.array() = grads.dh.array() * cells::slopes(w.options.functions[0], record.pre.array(), w.options.clip);
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

template void rnn_forward_step<false>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void rnn_forward_step<true>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void rnn_backward_step<false>(const CellWeights&, const StepRecord&, StepGradients);
template void rnn_backward_step<true>(const CellWeights&, const StepRecord&, StepGradients);

}  // namespace streamrnn
