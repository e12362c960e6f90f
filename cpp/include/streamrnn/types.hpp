// cpp/include/streamrnn/types.hpp: the Eigen types every other header uses, and SeqView.
// Part of streamrnn, MIT licence.
#pragma once

#include "config.hpp"

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace streamrnn {

using Index = Eigen::Index;

/// Row-major, like NumPy: one place decides the layout.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A row-major block of rows whose pitch may exceed its width (a column slice of a wider buffer,
/// or every B-th row of a batch-first sequence).
using MatMap = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstMatMap = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
/// Storage on 64-byte (cache line) boundaries, whatever the build's own vector width: the matrix
/// kernels, chosen at run time, load whole AVX-512 vectors from the engine's buffers, and a
/// vector split across two lines loads at half speed (a portable build's row products ran 2x
/// slower on Eigen's 16-byte alignment).
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    static constexpr std::size_t alignment = 64;

    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) noexcept
    {
    }
    // Plain operator new and a shift, its origin kept just before the block: aligned new's
    // memalign left the heap more fragmented (training's peak memory 8 MiB higher).
    T* allocate(std::size_t n)
    {
        void* raw = ::operator new(n * sizeof(T) + alignment);
        const std::uintptr_t start = (reinterpret_cast<std::uintptr_t>(raw) + alignment) & ~(alignment - 1);
        reinterpret_cast<void**>(start)[-1] = raw;  // new's own alignment leaves room for it
        return reinterpret_cast<T*>(start);
    }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(reinterpret_cast<void**>(p)[-1]); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const noexcept
    {
        return true;
    }
    template <typename U>
    bool operator!=(const CacheLineAllocator<U>&) const noexcept
    {
        return false;
    }
};

/// Every buffer the engine owns: aligned at least as Eigen's vector instructions like, and so the
/// same way in every run, which keeps results bitwise reproducible (where an unaligned head would
/// be summed without FMA and the rest with it, results would depend on where malloc put the
/// buffer).
using Buffer = std::vector<float, CacheLineAllocator<float>>;

/// Element-wise temporaries, laid out like Matrix.
using ArrayRM = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline MatMap mat(float* data, Index rows, Index cols, Index pitch)
{
    return MatMap(data, rows, cols, Eigen::OuterStride<>(pitch));
}
inline ConstMatMap mat(const float* data, Index rows, Index cols, Index pitch)
{
    return ConstMatMap(data, rows, cols, Eigen::OuterStride<>(pitch));
}
inline MatMap mat(float* data, Index rows, Index cols) { return mat(data, rows, cols, cols); }
inline ConstMatMap as_const(const MatMap& m) { return mat(static_cast<const float*>(m.data()), m.rows(), m.cols(), m.outerStride()); }
inline ConstMatMap mat(const float* data, Index rows, Index cols) { return mat(data, rows, cols, cols); }

/// A sequence of T x B rows of `width` floats, row (t, b) at data + (t * t_pitch + b * b_pitch).
/// Time-major (T, B, F): t_pitch = B * pitch, b_pitch = pitch. Batch-first (B, T, F):
/// t_pitch = pitch, b_pitch = T * pitch. `pitch` >= width lets a view select the columns of one
/// direction inside a bidirectional output.
template <typename Scalar>
struct SeqViewT {
    Scalar* data = nullptr;
    Index width = 0;
    Index t_pitch = 0;
    Index b_pitch = 0;

    static SeqViewT time_major(Scalar* data, Index B, Index width, Index pitch)
    {
        return {data, width, B * pitch, pitch};
    }
    static SeqViewT batch_first(Scalar* data, Index T, Index width, Index pitch)
    {
        return {data, width, pitch, T * pitch};
    }
    static SeqViewT of(Scalar* data, Index T, Index B, Index width, Index pitch, bool batch_first_layout)
    {
        return batch_first_layout ? batch_first(data, T, width, pitch) : time_major(data, B, width, pitch);
    }

    Scalar* row(Index t, Index b) const { return data + t * t_pitch + b * b_pitch; }
    /// The B rows of step t, as a [B, width] matrix.
    auto step(Index t, Index B) const { return mat(row(t, 0), B, width, b_pitch); }
    /// Columns [first, first + cols) of every row.
    SeqViewT columns(Index first, Index cols) const { return {data + first, cols, t_pitch, b_pitch}; }
    /// Steps [t0, ...): the same rows, shifted in time.
    SeqViewT from_step(Index t0) const { return {data + t0 * t_pitch, width, t_pitch, b_pitch}; }
    /// Rows [b0, ...) of the batch: the same steps, a later first row.
    SeqViewT from_row(Index b0) const { return {data + b0 * b_pitch, width, t_pitch, b_pitch}; }
};
using SeqView = SeqViewT<float>;
using ConstSeqView = SeqViewT<const float>;

inline ConstSeqView as_const(const SeqView& v) { return {v.data, v.width, v.t_pitch, v.b_pitch}; }

}  // namespace streamrnn
