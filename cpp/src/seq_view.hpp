// cpp/src/seq_view.hpp: SeqView, the rows of a sequence in either layout, for both backends.
// Part of streamrnn, MIT licence.
#pragma once

#include "host_device.hpp"

#include "streamrnn/types.hpp"

#include <type_traits>

namespace streamrnn {

/// A sequence of T x B rows of `width` floats, row (t, b) at data + (t * t_pitch + b * b_pitch).
/// Time-major (T, B, F): t_pitch = B * pitch, b_pitch = pitch. Batch-first (B, T, F):
/// t_pitch = pitch, b_pitch = T * pitch. `pitch` >= width lets a view select the columns of one
/// direction inside a bidirectional output. Plain data: a CUDA kernel takes it by value.
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

    STREAMRNN_HD Scalar* row(Index t, Index b) const { return data + t * t_pitch + b * b_pitch; }
    /// Whether the rows of every step lie one after another, B at a time: one block of T * B rows.
    bool rows_in_order(Index B) const { return t_pitch == B * b_pitch; }
    /// Columns [first, first + cols) of every row.
    SeqViewT columns(Index first, Index cols) const { return {data + first, cols, t_pitch, b_pitch}; }
    /// Steps [t0, ...): the same rows, shifted in time.
    SeqViewT from_step(Index t0) const { return {data + t0 * t_pitch, width, t_pitch, b_pitch}; }
    /// Rows [b0, ...) of the batch: the same steps, a later first row.
    SeqViewT from_row(Index b0) const { return {data + b0 * b_pitch, width, t_pitch, b_pitch}; }
    template <typename S = Scalar, typename = std::enable_if_t<!std::is_const<S>::value>>
    operator SeqViewT<const S>() const
    {
        return {data, width, t_pitch, b_pitch};
    }
};
using SeqView = SeqViewT<float>;
using ConstSeqView = SeqViewT<const float>;

}  // namespace streamrnn
