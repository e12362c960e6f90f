// cpp/src/views.hpp: the row-major Eigen views of the engine's buffers, which its CPU code does
// its arithmetic through. Part of streamrnn, MIT licence.
#pragma once

#include "seq_view.hpp"

#include <Eigen/Core>

namespace streamrnn {

static_assert(sizeof(Index) == sizeof(Eigen::Index), "Index is Eigen's");

/// Row-major, like NumPy: one place decides the layout.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A row-major block of rows whose pitch may exceed its width (a column slice of a wider buffer,
/// or every B-th row of a batch-first sequence).
using MatMap = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstMatMap = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
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
inline ConstMatMap mat(const float* data, Index rows, Index cols) { return mat(data, rows, cols, cols); }
inline ConstMatMap as_const(const MatMap& m)
{
    return mat(static_cast<const float*>(m.data()), m.rows(), m.cols(), m.outerStride());
}

/// The B rows of step t of a sequence, as a [B, width] matrix.
template <typename Scalar>
auto step_rows(const SeqViewT<Scalar>& view, Index t, Index B)
{
    return mat(view.row(t, 0), B, view.width, view.b_pitch);
}

}  // namespace streamrnn
