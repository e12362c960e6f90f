// cpp/include/streamrnn/rnn_cell.hpp: the Elman RNN cell, tanh or relu.
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"

namespace streamrnn {

/// h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu. gates [B, H] ends as h'.
void rnn_forward_step(const CellWeights& w, bool relu, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept;

}  // namespace streamrnn
