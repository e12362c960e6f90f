// cpp/src/kernels/panel_kernels.hpp: the matrix kernels built once per x86 instruction set and chosen at
// run time, so that a portable build runs them too. Part of streamrnn, MIT licence.
#pragma once

#include <cstddef>

namespace streamrnn {

struct RowKernels;

/// The kernels of one instruction set, over raw pointers. panel_kernels.cpp builds them, once per
/// instruction set with that set's flags, and includes nothing that another file compiles too:
/// no inline function of its own can then stand in for the portable build's copy of it.
struct PanelKernels {
    const char* name;
    /// Rows of W per panel (PackedWeights): two vectors.
    std::ptrdiff_t panel_width;
    /// c [M, cols] (+)= a [M, K] W[first : first + cols]^T (+ bias [cols] in every row, where not
    /// null), W packed in panels of [K][panel_width] from `panels`; `first` at a panel's start;
    /// a's element (m, k) at a[m * a_row_stride + k * a_col_stride]; c's rows c_pitch apart.
    void (*multiply)(const float* panels, std::ptrdiff_t K, const float* a, std::ptrdiff_t a_row_stride,
                     std::ptrdiff_t a_col_stride, std::ptrdiff_t first, std::ptrdiff_t M, std::ptrdiff_t cols,
                     float* c, std::ptrdiff_t c_pitch, bool accumulate, const float* bias);
    /// out [1, cols] (+)= a [1, K] w [K, cols] (row_times, gemm.hpp), for cols a whole number of
    /// vectors, at most eight.
    void (*row_times)(const float* a, std::ptrdiff_t K, const float* w, std::ptrdiff_t w_pitch, std::ptrdiff_t cols,
                      float* out, bool accumulate);
    /// The one-row steps of the same instruction set (row_kernels.cpp).
    const RowKernels* row;
};

/// The widest kernels that this build has and this CPU runs (AVX-512, else AVX2 with FMA), or
/// null. The environment variable STREAMRNN_KERNELS=avx2 or =none caps them (tests, comparisons;
/// other values cap nothing). Chosen once, on the first call.
const PanelKernels* panel_kernels() noexcept;

}  // namespace streamrnn
