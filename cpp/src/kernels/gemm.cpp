// cpp/src/kernels/gemm.cpp: PackedWeights and row_times, through the kernels this CPU runs
// (panel_kernels.cpp). Part of streamrnn, MIT licence.
#include "kernels/gemm.hpp"

#include "kernels/panel_kernels.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace streamrnn {

// Built where the compiler targets x86-64 with GCC's builtins (cpp/CMakeLists.txt).
#if STREAMRNN_PANEL_KERNELS
extern const PanelKernels avx512_kernels;
extern const PanelKernels avx2_kernels;
#endif

const PanelKernels* panel_kernels() noexcept
{
    static const PanelKernels* const chosen = []() -> const PanelKernels* {
#if STREAMRNN_PANEL_KERNELS
        // Other values cap nothing.
        const char* cap = std::getenv("STREAMRNN_KERNELS");
        const bool none = cap && std::strcmp(cap, "none") == 0;
        const bool allow_avx512 = !none && !(cap && std::strcmp(cap, "avx2") == 0);
        const bool allow_avx2 = !none;
        __builtin_cpu_init();
        if (allow_avx512 && __builtin_cpu_supports("avx512f"))
            return &avx512_kernels;
        if (allow_avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return &avx2_kernels;
#endif
        return nullptr;
    }();
    return chosen;
}

const RowKernels* row_kernels() noexcept
{
    const PanelKernels* kernels = panel_kernels();
    return kernels ? kernels->row : nullptr;
}

Index PackedWeights::panel_width() noexcept
{
    const PanelKernels* kernels = panel_kernels();
    return kernels ? kernels->panel_width : 0;
}

PackedWeights::PackedWeights(Index N, Index K)
    : rows_(N), depth_(K),
      panels_(available() ? static_cast<std::size_t>((N + panel_width() - 1) / panel_width() * panel_width() * K) : 0)
{
}

void PackedWeights::pack(Strided w) noexcept
{
    const Index panel = panel_width();
    if (panel == 0)
        return;
    // Rows past N in the last panel are zeros, so that the kernel never reads past the weights.
    const Index full_panels = rows_ / std::max<Index>(panel, 1);
    std::fill(panels_.begin() + full_panels * panel * depth_, panels_.end(), 0.0f);
    for (Index n0 = 0; n0 < rows_; n0 += panel) {
        float* out = panels_.data() + n0 * depth_;
        const Index rows = std::min(panel, rows_ - n0);
        // Read w along its unit stride: a panel's k-th row is a run of a transposed w; a row of a
        // row-major w is a column of the panel.
        if (w.row_stride == 1) {
            for (Index k = 0; k < depth_; ++k)
                std::copy_n(w.data + n0 + k * w.col_stride, rows, out + k * panel);
        } else {
            for (Index j = 0; j < rows; ++j) {
                const float* row = w.data + (n0 + j) * w.row_stride;
                for (Index k = 0; k < depth_; ++k)
                    out[k * panel + j] = row[k * w.col_stride];
            }
        }
    }
}

void PackedWeights::multiply_transposed(Strided a, Index first, MatMap c, bool accumulate,
                                        const float* bias) const noexcept
{
    if (const PanelKernels* kernels = panel_kernels())
        kernels->multiply(panels_.data(), depth_, a.data, a.row_stride, a.col_stride, first, c.rows(), c.cols(),
                          c.data(), c.outerStride(), accumulate, bias);
}

void PackedWeights::multiply_transposed(Strided a, Index first, MatMap c, bool accumulate, int threads,
                                        const float* bias) const
{
    // A thread costs tens of microseconds to start: worth it from about a million multiply-adds
    // each. Parts split the columns at panel boundaries.
    constexpr Index min_work = Index(1) << 20;
    const Index panel = std::max<Index>(panel_width(), 1);
    const Index panels = (c.cols() + panel - 1) / panel;
    // At least 1 on both sides: clamp's bounds must be ordered, whatever `threads` the caller gave.
    const Index most = std::max<Index>(std::min<Index>(threads, panels), 1);
    const Index parts = std::clamp<Index>(c.rows() * c.cols() * depth_ / min_work, 1, most);
    if (parts <= 1) {
        multiply_transposed(a, first, c, accumulate, bias);
        return;
    }
    run_parallel(parts, [&](Index part) {
        const Index begin = part * panels / parts * panel;
        const Index end = std::min(c.cols(), (part + 1) * panels / parts * panel);
        const MatMap columns = mat(c.data() + begin, c.rows(), end - begin, c.outerStride());
        multiply_transposed(a, first + begin, columns, accumulate, bias ? bias + begin : nullptr);
    });
}

void multiply(Strided a, Strided b, MatMap c, bool accumulate, int threads)
{
    // Packing b costs a pass over it; the product must be some multiple of that.
    constexpr Index min_rows = 16;
    if (PackedWeights::available() && a.rows >= min_rows) {
        PackedWeights packed(b.cols, b.rows);
        packed.pack(b.transposed());
        packed.multiply_transposed(a, 0, c, accumulate, threads);
        return;
    }
    using StridedMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                                  Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
    auto map = [](Strided m) {
        const Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic> strides(m.row_stride, m.col_stride);
        return StridedMap(m.data, m.rows, m.cols, strides);
    };
    if (accumulate)
        c.noalias() += map(a) * map(b);
    else
        c.noalias() = map(a) * map(b);
}

bool row_times(const float* a, Index K, const float* w, Index w_pitch, Index cols, float* out, bool accumulate) noexcept
{
    const PanelKernels* kernels = panel_kernels();
    if (!kernels)
        return false;
    // One vector: 8 or 16 floats, a power of two, so no division (a step calls this for every
    // product of every layer).
    const Index width = kernels->panel_width / 2;
    if ((cols & (width - 1)) != 0 || cols > 8 * width || cols == 0)
        return false;
    kernels->row_times(a, K, w, w_pitch, cols, out, accumulate);
    return true;
}

}  // namespace streamrnn
