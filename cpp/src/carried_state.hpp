// cpp/src/carried_state.hpp: what every kind of stream does with the state it carries from call to
// call, h [cells, B, h_width] and c [cells, B, c_width] (an empty c: none): a row's start
// from the model's initial state, and the copies out and in. Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/types.hpp"

#include <algorithm>

namespace streamrnn {

/// Starts row i of every cell of h [cells, batch, h_width] and c [cells, batch, c_width] (c null
/// or c_width 0: none) again: from h0 [cells, h_width] and c0 [cells, c_width] (a model's initial
/// state), or zeros where they are null.
inline void start_state_row(float* h, float* c, Index cells, Index batch, Index h_width, Index c_width, Index i,
                            const float* h0, const float* c0) noexcept
{
    auto start = [](float* row, const float* from, Index width) {
        if (from)
            std::copy_n(from, width, row);
        else
            std::fill_n(row, width, 0.0f);
    };
    for (Index cell = 0; cell < cells; ++cell) {
        start(h + (cell * batch + i) * h_width, h0 ? h0 + cell * h_width : nullptr, h_width);
        if (c && c_width > 0)
            start(c + (cell * batch + i) * c_width, c0 ? c0 + cell * c_width : nullptr, c_width);
    }
}

/// The same for a stream's buffers, their widths from their sizes; an i outside [0, batch)
/// changes nothing.
inline void start_state_row(Buffer& h, Buffer& c, Index cells, Index batch, Index i, const float* h0,
                            const float* c0) noexcept
{
    if (i >= 0 && i < batch)
        start_state_row(h.data(), c.data(), cells, batch, Index(h.size()) / (cells * batch),
                        Index(c.size()) / (cells * batch), i, h0, c0);
}

/// Every row, as start_state_row.
inline void start_state(Buffer& h, Buffer& c, Index cells, Index batch, const float* h0, const float* c0) noexcept
{
    for (Index i = 0; i < batch; ++i)
        start_state_row(h, c, cells, batch, i, h0, c0);
}

/// Copies the state out (or in) whole; a null part is not copied.
inline void copy_state_out(const Buffer& h, const Buffer& c, float* h_out, float* c_out) noexcept
{
    if (h_out)
        std::copy(h.begin(), h.end(), h_out);
    if (c_out)
        std::copy(c.begin(), c.end(), c_out);
}

inline void copy_state_in(Buffer& h, Buffer& c, const float* h_in, const float* c_in) noexcept
{
    if (h_in)
        std::copy(h_in, h_in + h.size(), h.begin());
    if (c_in)
        std::copy(c_in, c_in + c.size(), c.begin());
}

}  // namespace streamrnn
