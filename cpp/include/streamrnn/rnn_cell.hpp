// cpp/include/streamrnn/rnn_cell.hpp: the Elman RNN cell, tanh or relu.
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"

namespace streamrnn {

/// h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu. gates [B, H] ends as h'.
void rnn_forward_step(const CellWeights& w, bool relu, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept;

/// da = dh' * act'(a), from h' (tanh: 1 - h'^2; relu: h' > 0);  dh = da W_hh.
void rnn_backward_step(const CellWeights& w, bool relu, const StepRecord& record, StepGradients grads);

}  // namespace streamrnn
