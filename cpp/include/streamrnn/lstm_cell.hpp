// cpp/include/streamrnn/lstm_cell.hpp: the LSTM cell, with optional projection.
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"

namespace streamrnn {

/// i = s(.), f = s(.), g = tanh(.), o = s(.) over W_ih x + b_ih + W_hh h + b_hh (gates [B, 4H]);
/// c' = f * c + i * g;  h' = o * tanh(c'), or W_hr (o * tanh(c')) with projection.
/// gates ends as the activated [i f g o]; buffers.hidden as o * tanh(c').
void lstm_forward_step(const CellWeights& w, MatMap gates, StepState state,
                       const StepBuffers& buffers) noexcept;

/// dm = dh' (W_hr with projection);  dc' += dm * o * (1 - tanh^2 c');  gate gradients from
/// di = dc' g, df = dc' c, dg = dc' i, do = dm tanh c';  dc = dc' f;  dh = da W_hh.
void lstm_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads);

}  // namespace streamrnn
