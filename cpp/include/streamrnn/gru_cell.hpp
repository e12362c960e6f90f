// cpp/include/streamrnn/gru_cell.hpp: the GRU cell, reset-after (PyTorch) or reset-before (Cho et al.).
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"

namespace streamrnn {

/// r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
/// reset_after:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))      (PyTorch, cuDNN)
/// reset_before: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)      (Cho et al. 2014, ONNX default)
/// h' = (1 - z) * n + z * h.  gates ends as the activated [r z n]; buffers.recurrent holds
/// W_hh h + b_hh (its n block, W_hn h + b_hn, is what the reset-after backward reads).
void gru_forward_step(const CellWeights& w, bool reset_after, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept;

/// dn = dh' (1 - z), dz = dh' (h - n), dh = dh' z + ...; through n either to r * (W_hn h + b_hn)
/// (reset-after) or to W_hn (r * h) (reset-before); then through r and z to W_hh h.
void gru_backward_step(const CellWeights& w, bool reset_after, const StepRecord& record,
                       StepGradients grads);

}  // namespace streamrnn
