// cpp/src/digest.hpp: a 64-bit hash of words, the same on every host: what names a version of a
// model's weights in a snapshot, and what finds a corrupt byte in one. Not cryptographic.
// Part of streamrnn, MIT licence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace streamrnn {

/// Adds 64-bit words one by one; each word's bits spread over the whole state (a multiply, a
/// rotation and a final avalanche), so that any changed bit changes the result.
class Digest {
public:
    void add(std::uint64_t word) noexcept
    {
        state_ ^= word * 0x9E3779B97F4A7C15ull;
        state_ = (state_ << 27 | state_ >> 37) * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
        ++count_;
    }

    /// Floats by their bits, two per word: independent of the host's byte order.
    void add_floats(const float* values, std::size_t n) noexcept
    {
        std::size_t i = 0;
        for (; i + 1 < n; i += 2)
            add(std::uint64_t(bits(values[i])) | std::uint64_t(bits(values[i + 1])) << 32);
        if (i < n)
            add(bits(values[i]));
    }

    /// Bytes, read as little-endian words (the last one zero-padded).
    void add_bytes(const unsigned char* bytes, std::size_t n) noexcept
    {
        for (std::size_t i = 0; i < n; i += 8) {
            std::uint64_t word = 0;
            for (std::size_t k = 0; k < 8 && i + k < n; ++k)
                word |= std::uint64_t(bytes[i + k]) << (8 * k);
            add(word);
        }
    }

    std::uint64_t value() const noexcept
    {
        std::uint64_t h = state_ ^ count_;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
        return h ^ (h >> 31);
    }

private:
    static std::uint32_t bits(float value) noexcept
    {
        std::uint32_t b;
        std::memcpy(&b, &value, sizeof b);
        return b;
    }

    std::uint64_t state_ = 0x6A09E667F3BCC908ull;
    std::uint64_t count_ = 0;
};

}  // namespace streamrnn
