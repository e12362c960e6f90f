// cpp/src/denormals.hpp: flushing subnormal floats to zero for the span of a streaming call.
// Part of streamrnn, MIT licence.
#pragma once

#include <cstdint>

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace streamrnn {

namespace denormals {

// Per architecture: the control register's flush bits, and reading and writing the register.
#if defined(__SSE__) || defined(_M_X64)
using Mode = unsigned;
constexpr Mode flush_bits = 0x8040;  // MXCSR: FTZ (bit 15) and DAZ, denormals are zero (bit 6)
inline Mode read_mode() { return _mm_getcsr(); }
inline void write_mode(Mode mode) { _mm_setcsr(mode); }
#elif defined(__aarch64__)
using Mode = std::uint64_t;
constexpr Mode flush_bits = Mode(1) << 24;  // FPCR.FZ: inputs and results
inline Mode read_mode()
{
    Mode mode;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(mode));
    return mode;
}
inline void write_mode(Mode mode) { __asm__ __volatile__("msr fpcr, %0" : : "r"(mode)); }
#elif defined(__arm__) && defined(__ARM_FP)
using Mode = std::uint32_t;
constexpr Mode flush_bits = Mode(1) << 24;  // FPSCR.FZ (NEON arithmetic flushes whatever it says)
inline Mode read_mode()
{
    Mode mode;
    __asm__ __volatile__("vmrs %0, fpscr" : "=r"(mode));
    return mode;
}
inline void write_mode(Mode mode) { __asm__ __volatile__("vmsr fpscr, %0" : : "r"(mode)); }
#else
using Mode = unsigned;
constexpr Mode flush_bits = 0;  // no known control: nothing to do
inline Mode read_mode() { return 0; }
inline void write_mode(Mode) {}
#endif

}  // namespace denormals

/// While it lives, the calling thread's floating point unit flushes subnormal results to zero and
/// (x86, AArch64) reads subnormal inputs as zero; the destructor restores the mode it found. A
/// state that decays towards zero (silence after a sound) passes through subnormals, which many
/// CPUs handle in microcode at up to a hundred times the cost of a normal operation: flushing
/// keeps the time per step bounded. The values changed are below 1.2e-38 in magnitude.
class FlushDenormals {
public:
    explicit FlushDenormals(bool enable) noexcept
    {
        if (!enable || denormals::flush_bits == 0)
            return;
        saved_ = denormals::read_mode();
        // Writing the register costs more than reading it: only when the mode must change.
        changed_ = (saved_ & denormals::flush_bits) != denormals::flush_bits;
        if (changed_)
            denormals::write_mode(saved_ | denormals::flush_bits);
    }

    ~FlushDenormals()
    {
        if (changed_)
            denormals::write_mode(saved_);
    }

    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

private:
    denormals::Mode saved_ = 0;
    bool changed_ = false;
};

}  // namespace streamrnn
