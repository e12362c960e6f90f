// cpp/include/streamrnn/types.hpp: Index and Buffer, the two types the public headers share.
// Part of streamrnn, MIT licence.
#pragma once

#include "config.hpp"

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace streamrnn {

/// Sizes and indices: signed, pointer-wide (Eigen's Index, which the engine uses inside).
using Index = std::ptrdiff_t;

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

/// Every buffer the engine owns: aligned at least as its vector instructions like, and so the
/// same way in every run, which keeps results bitwise reproducible (where an unaligned head would
/// be summed without FMA and the rest with it, results would depend on where malloc put the
/// buffer).
using Buffer = std::vector<float, CacheLineAllocator<float>>;

}  // namespace streamrnn
