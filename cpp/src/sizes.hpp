// cpp/src/sizes.hpp: buffer sizes as products of dimensions, checked so that they cannot wrap around,
// and a call's lengths, checked against its steps.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/errors.hpp"
#include "streamrnn/types.hpp"

#include <cstdint>

#include <initializer_list>
#include <limits>
#include <string>

namespace streamrnn {

/// Where Index is 32 bits (armhf and other 32-bit hosts), sizes that each pass their own check
/// multiply past 2^31 easily: T * B * G for a long sequence, batch * hidden for a wide stream.
/// Such a product must not wrap around into a small buffer that the engine then writes past; it
/// raises std::length_error instead, as std::vector does for a size beyond its max_size().
/// `what`: "the buffer of all weights", say. Out of line (errors.cpp): the inlined checks stay small.
[[noreturn]] void raise_too_large(const std::string& what);
/// raise_too_large() for a buffer of shape `dims`.
[[noreturn]] void raise_too_large(std::initializer_list<Index> dims);

/// The product of `dims` (each >= 0); std::length_error when it does not fit in Index.
inline Index checked_size(std::initializer_list<Index> dims)
{
    Index size = 1;
    for (Index n : dims) {
        if (n != 0 && size > std::numeric_limits<Index>::max() / n)
            raise_too_large(dims);
        size *= n;
    }
    return size;
}

/// Raises ArgumentError unless every one of the B lengths (or none: null) is in [0, T].
inline void check_lengths(Index T, Index B, const std::int64_t* lengths)
{
    if (lengths)
        for (Index b = 0; b < B; ++b)
            if (lengths[b] < 0 || lengths[b] > T)
                raise(ErrorKind::argument, "lengths: expected every length in [0, " + std::to_string(T) +
                                               "] (T), got " + std::to_string(lengths[b]) + " at index " +
                                               std::to_string(b));
}

/// checked_size(), for resizing a buffer.
inline std::size_t buffer_size(std::initializer_list<Index> dims) { return static_cast<std::size_t>(checked_size(dims)); }

/// Throws ArgumentError unless 1 <= batch <= 2^24, the rows every kind of stream takes: the cap
/// keeps every buffer size far from overflowing 64 bits (on a 32-bit host the sizes are checked
/// where the buffers are made).
inline void check_stream_batch(Index batch)
{
    constexpr Index max_batch = Index(1) << 24;
    if (batch < 1 || batch > max_batch)
        raise(ErrorKind::argument,
              "batch: expected 1 to " + std::to_string(max_batch) + " streams, got " + std::to_string(batch));
}

}  // namespace streamrnn
