// cpp/src/kernels/gemm.hpp: C = A W^T (or C += A W^T) with packing space allocated once, not per product,
// and with W packed once for the products a layer repeats. Part of streamrnn, MIT licence.
#pragma once

#include "views.hpp"

#include <Eigen/Core>

namespace streamrnn {

/// Packing space for products up to [max_rows, max_depth] x [max_depth, max_cols]. Eigen's own
/// products allocate it (malloc) on every call once it outgrows their stack limit; owning it is
/// what lets a Stream step without allocating.
class GemmSpace {
public:
    GemmSpace(Index max_rows, Index max_cols, Index max_depth) : blocking_(max_rows, max_cols, max_depth, 1, true)
    {
        blocking_.allocateAll();
    }
    GemmSpace(const GemmSpace&) = delete;
    GemmSpace& operator=(const GemmSpace&) = delete;

    /// c [M, N] = a [M, K] w[N, K]^T, or += when `accumulate`; row-major with any row pitch.
    /// Allocates nothing.
    void multiply_transposed(ConstMatMap a, ConstMatMap w, MatMap c, bool accumulate) noexcept
    {
        const Index M = c.rows(), N = c.cols(), K = a.cols();
        if (M == 0 || N == 0)
            return;
        if (M == 1 || K == 0) {
            // A matrix-vector product: Eigen packs nothing and writes straight into c.
            if (accumulate)
                c.noalias() += a * w.transpose();
            else
                c.noalias() = a * w.transpose();
            return;
        }
        if (!accumulate)
            c.setZero();
        using Product = Eigen::internal::general_matrix_matrix_product<Index, float, Eigen::RowMajor, false, float,
                                                                       Eigen::ColMajor, false, Eigen::RowMajor, 1>;
        Product::run(M, N, K, a.data(), a.outerStride(), w.data(), w.outerStride(), c.data(), 1, c.outerStride(),
                     1.0f, blocking_);
    }

private:
    Eigen::internal::gemm_blocking_space<Eigen::RowMajor, float, float, Eigen::Dynamic, Eigen::Dynamic,
                                         Eigen::Dynamic>
        blocking_;
};

/// A read-only matrix with any row and column strides: a row-major view, or its transpose.
struct Strided {
    const float* data;
    Index rows, cols;
    Index row_stride, col_stride;

    static Strided of(ConstMatMap m) { return {m.data(), m.rows(), m.cols(), m.outerStride(), 1}; }
    Strided transposed() const { return {data, cols, rows, col_stride, row_stride}; }
    float operator()(Index r, Index c) const { return data[r * row_stride + c * col_stride]; }
};

/// A weight matrix W [N, K] packed once for the products c [M, N] = a [M, K] W^T that a layer
/// repeats: the input projection of a whole sequence, and the recurrent product of every step
/// of a batch. Eigen repacks W on each product, a pass over all the weights per step; here W is
/// laid out once in panels of `panel_width` rows, each stored k-major ([K][panel_width]), which
/// the kernel streams while it keeps a tile of c in registers. Available where the CPU runs one
/// of the kernels (AVX-512, or AVX2 with FMA: panel_kernels.hpp), whatever the build's flags;
/// elsewhere `available` is false and Eigen's GemmSpace serves.
class PackedWeights {
public:
    /// Rows of W per panel: 2 vectors of the kernels chosen for this CPU; 0 without them. A
    /// function, not a constant: a model made during another file's static initialisation sees
    /// the kernels too.
    static Index panel_width() noexcept;
    static bool available() noexcept { return panel_width() > 0; }

    /// Space for W of [N, K]; allocates. Only where available().
    PackedWeights(Index N, Index K);

    /// Packs w [N, K]: a row-major view, or any strided one (a transpose). Allocates nothing.
    void pack(Strided w) noexcept;
    void pack(ConstMatMap w) noexcept { pack(Strided::of(w)); }

    /// Whether a product may start at row `first` of W: at a panel's start.
    bool starts_panel(Index first) const { return first % panel_width() == 0; }

    /// c [M, cols] = a [M, K] W[first : first + cols]^T, or += when `accumulate`, and + bias [cols]
    /// in every row where given (a layer's input projection, its bias in the same pass); `first`
    /// at a panel's start; a of any strides, c row-major with any row pitch. Allocates nothing.
    void multiply_transposed(Strided a, Index first, MatMap c, bool accumulate,
                             const float* bias = nullptr) const noexcept;
    void multiply_transposed(ConstMatMap a, Index first, MatMap c, bool accumulate) const noexcept
    {
        multiply_transposed(Strided::of(a), first, c, accumulate);
    }
    /// multiply_transposed() with its columns split across up to `threads` threads (fewer than 1
    /// count as 1), where the product is large enough to repay starting them. Allocates (the
    /// threads) when it splits.
    void multiply_transposed(Strided a, Index first, MatMap c, bool accumulate, int threads,
                             const float* bias = nullptr) const;

private:
    Index rows_;
    Index depth_;
    Buffer panels_;
};

/// c [M, N] = a [M, K] b [K, N], or += when `accumulate`, for products made once per call (the
/// weight gradients of a backward pass): through the packed kernel, b packed for the call, where
/// there is one and the product is large enough to repay it, on up to `threads` threads (fewer than
/// 1 count as 1); else Eigen. Allocates.
void multiply(Strided a, Strided b, MatMap c, bool accumulate, int threads = 1);

/// out [1, cols] = (or +=) a [1, K] w [K, cols], w's rows `w_pitch` apart: one row times a
/// transposed copy of small weights (CellWeights::w_ih_t, w_hh_t), the row of out held in
/// registers. False, and nothing done, where no such kernel fits (cols not a whole number of
/// vectors, or more than eight; no kernels for this CPU): the caller then takes Eigen's product.
bool row_times(const float* a, Index K, const float* w, Index w_pitch, Index cols, float* out,
               bool accumulate) noexcept;

struct RowKernels;
/// The row steps (kernels/row_kernels.hpp) of the kernels this CPU runs, or null.
const RowKernels* row_kernels() noexcept;

}  // namespace streamrnn
