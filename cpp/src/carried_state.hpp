// cpp/src/carried_state.hpp: what every kind of stream does with the state it carries from call to
// call, h [cells, B, h_width] and c [cells, B, c_width] (an empty c: none): a row's reset and the
// copies out and in. Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/types.hpp"

#include <algorithm>

namespace streamrnn {

/// Zeros row i of every cell; an i outside [0, batch) changes nothing.
inline void zero_state_row(Buffer& h, Buffer& c, Index cells, Index batch, Index i) noexcept
{
    if (i < 0 || i >= batch)
        return;
    const Index h_width = Index(h.size()) / (cells * batch), c_width = Index(c.size()) / (cells * batch);
    for (Index cell = 0; cell < cells; ++cell) {
        std::fill_n(h.data() + (cell * batch + i) * h_width, h_width, 0.0f);
        std::fill_n(c.data() + (cell * batch + i) * c_width, c_width, 0.0f);
    }
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
