// cpp/src/kernels/row_kernels.hpp: the one-row step of a stream (batch 1: an audio callback, a
// sensor loop), a whole stack in one call, built once per x86 instruction set beside the matrix
// kernels (row_kernels.cpp) and chosen at run time. Part of streamrnn, MIT licence.
#pragma once

#include <cstddef>

namespace streamrnn {

/// The cells a row step runs. lstm_options: an LSTM with ONNX's peepholes, clipping or coupled
/// gates (RowLayer's peephole, clip, input_forget), and its own functions.
enum class RowCell { lstm, lstm_options, gru_reset_after, gru_reset_before, rnn_tanh, rnn_relu };

/// Gate blocks per unit: LSTM i, f, g, o; GRU r, z, n; RNN one.
constexpr int row_blocks(RowCell cell)
{
    return cell == RowCell::lstm || cell == RowCell::lstm_options         ? 4
           : cell == RowCell::rnn_tanh || cell == RowCell::rnn_relu ? 1
                                                                    : 3;
}

/// One layer of a row step, its weights packed for `lanes` (W) floats per vector. The units go in
/// chunks of W (the last one padded with zeros), and everything one chunk's gates need lies
/// together, so that a chunk's gates stay in registers from the product to the new state:
/// - panels: per chunk, [I + H_out][row_blocks * W], k-major: row k < I holds, block after block,
///   the chunk's weights of W_ih for input k (PyTorch's gate order), row I + k those of W_hh for
///   h[k].
/// - bias: per chunk, [row_blocks * W]: LSTM and RNN b_ih + b_hh; GRU [4 * W], r and z summed,
///   then b_in and b_hn. Zeros without a bias.
/// - projection: LSTM with proj_size P: per chunk of W of the P outputs, [H][W] of W_hr^T; else null.
struct RowLayer {
    const float* panels;
    const float* bias;
    const float* projection;
    std::ptrdiff_t input_size;   ///< I_l
    std::ptrdiff_t hidden_size;  ///< H
    std::ptrdiff_t output_size;  ///< H_out
    bool residual;               ///< the layer's input is added to its output
    // RowCell::lstm_options only:
    const float* peephole = nullptr;  ///< [3][H], rows i, f, o (ModelSpec::peepholes); or null
    float clip = 0.0f;                ///< > 0: gate pre-activations clipped to [-clip, clip]
    bool input_forget = false;        ///< f = 1 - i
};

/// x [I] -> y [H_out] through `layers` layers, the state h [L][H_out] and c [L][H] (LSTM; else
/// null) read and replaced in place. `scratch`: row_scratch_floats() floats, 64-byte aligned.
/// Allocates nothing, takes no lock.
using RowStep = void (*)(const RowLayer* layers, int count, const float* x, float* y, float* h, float* c,
                         float* scratch) noexcept;

/// The cells' two squashing functions, as the row steps compute them.
enum class RowFunction { tanh, sigmoid };

/// The row steps of one instruction set.
struct RowKernels {
    /// The widest vector, in floats (16 under AVX-512, 8 under AVX2); steps exist for 4, 8 and up
    /// to this.
    int max_lanes;
    /// The step of `cell` at `lanes` floats per vector, or null for a width this set lacks.
    RowStep (*step)(RowCell cell, int lanes);
    /// x [n] = f(x [n]) in place, with the row steps' functions (a whole model's tanh and sigmoid
    /// blocks as its stream runs them). Allocates nothing.
    void (*squash)(RowFunction f, float* x, std::ptrdiff_t n) noexcept;
};

/// The floats of scratch a row step needs, for layers of at most `width` units or outputs: six
/// rows of `width` rounded up to 16 (the new h, three of a cell's work, two layer outputs). The
/// kernels lay it out themselves (row_kernels.cpp: scratch_row), using nothing of this file's.
inline std::ptrdiff_t row_scratch_floats(std::ptrdiff_t width)
{
    return 6 * ((width + 15) / 16 * 16);
}

/// The vector width for H units: the widest whose chunks need no more padding than a narrower
/// one's (H = 8 steps in 8 lanes, H = 24 in 8, H = 32 in 16), from 4 up to `max_lanes`.
inline int row_lanes(std::ptrdiff_t H, int max_lanes)
{
    int lanes = 4;
    for (int wider = 8; wider <= max_lanes; wider *= 2)
        if ((H + wider - 1) / wider * wider == (H + lanes - 1) / lanes * lanes)
            lanes = wider;
    return lanes;
}

}  // namespace streamrnn
