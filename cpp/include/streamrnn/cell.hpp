// cpp/include/streamrnn/cell.hpp: the inputs every cell step shares, and one dispatch over kinds.
// Part of streamrnn, MIT licence.
#pragma once

#include "spec.hpp"
#include "types.hpp"

namespace streamrnn {

class GemmSpace;

/// The weights of one layer and direction: views into a Model's parameter buffer, in PyTorch's
/// fused layout and gate order (LSTM i, f, g, o; GRU r, z, n).
struct CellWeights {
    const float* w_ih = nullptr;  ///< [G, I_l]
    const float* w_hh = nullptr;  ///< [G, H_out]
    const float* b_ih = nullptr;  ///< [G], null when bias=False
    const float* b_hh = nullptr;  ///< [G], null when bias=False
    const float* w_hr = nullptr;  ///< [P, H]: LSTM projection, else null
    Index input_size = 0;         ///< I_l
    Index hidden_size = 0;        ///< H
    Index output_size = 0;        ///< H_out
    Index gate_rows = 0;          ///< G

    ConstMatMap input_weights() const { return mat(w_ih, gate_rows, input_size); }
    ConstMatMap recurrent_weights() const { return mat(w_hh, gate_rows, output_size); }
};

/// Scratch for one step over B rows, owned by the Workspace that made it.
struct StepBuffers {
    float* recurrent = nullptr;  ///< [B, G]: W_hh h + b_hh
    float* hidden = nullptr;     ///< [B, H]: LSTM o * tanh(c) before projection; GRU (Cho) r * h
    GemmSpace* gemm = nullptr;   ///< packing space for the step's matrix products
};

/// The state a step reads and the state it writes, [B, H_out] and (LSTM) [B, H] each.
/// next may not alias prev.
struct StepState {
    ConstMatMap h_prev;
    ConstMatMap c_prev;
    MatMap h_next;
    MatMap c_next;
};

/// One step of the model's cell over B rows.
///   gates: [B, G]; in: W_ih x + b_ih; out: the activated gates, which a backward step reads.
/// Allocates nothing.
void cell_forward_step(const ModelSpec& spec, const CellWeights& w, MatMap gates, StepState state,
                       const StepBuffers& buffers) noexcept;

}  // namespace streamrnn
