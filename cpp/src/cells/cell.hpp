// cpp/src/cells/cell.hpp: what every cell's CPU step reads and writes, and the one dispatch over
// cell kinds. The equations are the cells' own (lstm.hpp, gru.hpp, rnn.hpp), shared with the CUDA
// kernels; the steps here add the matrix products around them. Part of streamrnn, MIT licence.
#pragma once

#include "cells/functions.hpp"
#include "views.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn {

class GemmSpace;
class PackedWeights;

/// The weights of one layer and direction: views into a buffer laid out as a Model's parameters
/// (host or device memory: cell_weights only computes pointers), in PyTorch's fused layout and
/// gate order (LSTM i, f, g, o; GRU r, z, n).
struct CellWeights {
    const float* w_ih = nullptr;  ///< [G, I_l]
    const float* w_hh = nullptr;  ///< [G, H_out]
    const float* b_ih = nullptr;  ///< [G], null when bias=False
    const float* b_hh = nullptr;  ///< [G], null when bias=False
    const float* w_hr = nullptr;  ///< [P, H]: LSTM projection, else null
    const float* peephole = nullptr;  ///< [3, H]: LSTM peepholes, rows i, f, o; else null
    /// W_ih and W_hh transposed, [I_l, G] and [H_out, G], where a run keeps such copies (small
    /// models, one row): one row of x or h then multiplies them column by column, which beats a
    /// dot product per gate row when rows are short. Null otherwise.
    const float* w_ih_t = nullptr;
    const float* w_hh_t = nullptr;
    /// W_ih and W_hh packed for repeated products (see PackedWeights, kernels/gemm.hpp), where a
    /// run keeps them (several rows, or a long sequence, on a CPU with a kernel for them). Null
    /// otherwise.
    const PackedWeights* w_ih_packed = nullptr;
    const PackedWeights* w_hh_packed = nullptr;
    /// W_hh^T packed, for a backward pass's dL/dh = dA W_hh over a batch; or null.
    const PackedWeights* w_hh_t_packed = nullptr;
    Index input_size = 0;   ///< I_l
    Index hidden_size = 0;  ///< H
    Index output_size = 0;  ///< H_out
    Index gate_rows = 0;    ///< G
    CellOptions options;

    ConstMatMap input_weights() const { return mat(w_ih, gate_rows, input_size); }
    ConstMatMap recurrent_weights() const { return mat(w_hh, gate_rows, output_size); }
};

/// The weights of one layer and direction inside a buffer laid out as a Model's parameters.
CellWeights cell_weights(const ModelSpec& spec, const float* parameters, int layer, int direction);

/// Scratch for one step over B rows, owned by the workspace of the run.
struct StepBuffers {
    float* recurrent = nullptr;  ///< [B, G]: W_hh h + b_hh
    float* hidden = nullptr;     ///< [B, H]: LSTM o * tanh(c) before projection; GRU (Cho) r * h
    GemmSpace* gemm = nullptr;   ///< packing space for the step's matrix products
    /// [B, G]: where a recording step of a cell with options keeps its pre-activations (before
    /// clipping), which its backward differentiates at; null otherwise.
    float* pre = nullptr;
};

/// The state a step reads and the state it writes, [B, H_out] and (LSTM) [B, H] each.
/// next may not alias prev. Steps take it by reference: a step of one row is short enough that
/// copying its four views shows.
struct StepState {
    ConstMatMap h_prev;
    ConstMatMap c_prev;
    MatMap h_next;
    MatMap c_next;
};

/// What a backward step reads of its forward step: [B, ...] rows of one time step.
struct StepRecord {
    ConstMatMap gates;   ///< [B, G]: the activated gates
    ConstMatMap h_prev;  ///< [B, H_out]
    ConstMatMap c_prev;  ///< [B, H] (LSTM; else empty)
    ConstMatMap c_next;  ///< [B, H] (LSTM; else empty)
    /// [B, H]: LSTM with projection o * tanh(c'); GRU reset-after W_hn h + b_hn; GRU reset-before
    /// r * h; else empty.
    ConstMatMap extra;
    ConstMatMap pre;  ///< [B, G]: a cell with options' pre-activations (StepBuffers::pre); else empty
};

/// The gradients of one backward step, [B, ...] rows each.
struct StepGradients {
    ConstMatMap dh;  ///< in: dL/dh' [B, H_out]
    ConstMatMap dc;  ///< in: dL/dc' [B, H] (LSTM)
    MatMap da_x;     ///< out: dL/d(W_ih x + b_ih) [B, G]
    /// out: dL/d(W_hh h + b_hh) [B, G]. The same buffer as da_x for RNN and LSTM, where the two
    /// are equal. GRU reset-before: its n block is dL/d(W_hn (r * h) + b_hn).
    MatMap da_h;
    MatMap dh_prev;  ///< out: dL/dh [B, H_out]
    MatMap dc_prev;  ///< out: dL/dc [B, H] (LSTM)
};

/// out [B, cols] = (or +=) h [B, H_out] W_hh[first : first + cols]^T, the recurrent product of a
/// step (or of some of its gates), through whichever form of W_hh the weights carry: the
/// transposed copy for one row, the packed one, or W_hh itself. Allocates nothing.
void recurrent_product(const CellWeights& w, ConstMatMap h, Index first, Index cols, MatMap out, bool accumulate,
                       GemmSpace& gemm) noexcept;

/// dh [B, H_out] = (or +=) da [B, G] W_hh: the recurrent product of a backward step, through the
/// packed W_hh^T where the weights carry it.
void recurrent_backward_product(const CellWeights& w, ConstMatMap da, MatMap dh, bool accumulate);

/// One step of a cell over B rows.
///   gates: [B, G]; in: W_ih x + b_ih; out: the activated gates, which a backward step reads.
/// Allocates nothing.
using ForwardStep = void (*)(const CellWeights& w, MatMap gates, StepState& state,
                             const StepBuffers& buffers) noexcept;
/// The step of the model's cell (kind, and for the GRU where r applies), chosen once per run or
/// stream rather than at every step.
ForwardStep forward_step_of(const ModelSpec& spec) noexcept;

/// One step back through the model's cell: the gradients of its pre-activations and of the
/// previous state. Weight gradients are the caller's, one product over all steps.
void cell_backward_step(const ModelSpec& spec, const CellWeights& w, const StepRecord& record, StepGradients grads);

// Each kind's step (cells/lstm.cpp, gru.cpp, rnn.cpp), as forward_step_of and cell_backward_step
// choose them; the *_general steps are those of cells with ONNX's options (w.options).
void lstm_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept;
void lstm_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads);
void lstm_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                               const StepBuffers& buffers) noexcept;
void lstm_general_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads);
/// buffers.recurrent ends as W_hh h + b_hh, whose n block (W_hn h + b_hn) the reset-after
/// backward reads.
template <bool reset_after>
void gru_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept;
/// Either cell's, with options or without (w.options).
void gru_backward_step(const CellWeights& w, bool reset_after, const StepRecord& record, StepGradients grads);
template <bool reset_after>
void gru_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                              const StepBuffers& buffers) noexcept;
template <bool relu>
void rnn_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept;
template <bool relu>
void rnn_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads);
void rnn_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                              const StepBuffers& buffers) noexcept;
void rnn_general_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads);

}  // namespace streamrnn
