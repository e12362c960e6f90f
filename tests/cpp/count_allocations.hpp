// tests/cpp/count_allocations.hpp: counts every heap allocation of the program that includes it.
// Part of streamrnn, MIT licence.
//
// It replaces operator new and (with glibc) malloc itself, since Eigen allocates with malloc:
// include it in exactly one source file of a program. The C++ tests and bench/cpp/bench_step use
// it to show that Stream::step and Stream::process allocate nothing.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace streamrnn::testing {

inline std::atomic<long> allocations{0};

/// Heap allocations so far.
inline long allocation_count() { return allocations.load(); }

}  // namespace streamrnn::testing

#if defined(__GLIBC__)
extern "C" void* __libc_malloc(std::size_t size);
extern "C" void* malloc(std::size_t size)
{
    ++streamrnn::testing::allocations;
    return __libc_malloc(size);
}
#endif

void* operator new(std::size_t size)
{
#if !defined(__GLIBC__)
    ++streamrnn::testing::allocations;
#endif
    if (void* p = std::malloc(size ? size : 1))
        return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
