// cpp/src/rnn_cell.cpp: the Elman RNN step.
// Part of streamrnn, MIT licence.
#include "streamrnn/rnn_cell.hpp"

#include "gemm.hpp"

namespace streamrnn {

void rnn_forward_step(const CellWeights& w, bool relu, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept
{
    // a = (W_ih x + b_ih) + W_hh h + b_hh;  h' = act(a)
    buffers.gemm->multiply_transposed(state.h_prev, w.recurrent_weights(), gates, true);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);
    if (relu)
        gates = gates.cwiseMax(0.0f);
    else
        gates = gates.array().tanh().matrix();
    state.h_next = gates;
}

}  // namespace streamrnn
