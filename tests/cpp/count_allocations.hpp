// tests/cpp/count_allocations.hpp: counts the program's heap allocations and mutex locks.
// Part of streamrnn, MIT licence.
//
// count_allocations.cpp, linked into the program, replaces operator new, malloc (glibc: Eigen
// allocates with malloc) and pthread_mutex_lock (which std::mutex and most locks come down to).
// The C++ tests and bench/cpp/bench_step use it to show that streaming calls do neither.
//
// Under AddressSanitizer or ThreadSanitizer the sanitizer owns malloc and operator new: a
// replacement that bypassed its allocator would free blocks it never saw. There every allocation
// is counted by a hook inside the sanitizer's allocator instead (malloc, calloc, realloc,
// memalign and every operator new), and ThreadSanitizer keeps pthread_mutex_lock too, since it
// follows locks to tell a race from ordered access: locks go uncounted there.
#pragma once

#include <cstddef>  // defines __GLIBC__ where the C library is glibc

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STREAMRNN_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STREAMRNN_SANITIZER_HEAP 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define STREAMRNN_SANITIZER_THREAD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STREAMRNN_SANITIZER_THREAD 1
#endif
#endif

/// 1 where allocation_count() counts malloc as well as operator new: glibc, or a sanitizer's heap.
#if defined(__GLIBC__) || defined(STREAMRNN_SANITIZER_HEAP)
#define STREAMRNN_COUNTS_MALLOC 1
#else
#define STREAMRNN_COUNTS_MALLOC 0
#endif

/// 1 where lock_count() counts: glibc, outside ThreadSanitizer.
#if defined(__GLIBC__) && !defined(STREAMRNN_SANITIZER_THREAD)
#define STREAMRNN_COUNTS_LOCKS 1
#else
#define STREAMRNN_COUNTS_LOCKS 0
#endif

namespace streamrnn::testing {

/// Heap allocations so far.
long allocation_count();
/// pthread_mutex_lock calls so far (0 where STREAMRNN_COUNTS_LOCKS is 0).
long lock_count();

/// The same, and the heap blocks freed, counted on the calling thread only: what a real-time
/// thread does while others allocate, free and lock around it.
long thread_allocation_count();
long thread_free_count();
long thread_lock_count();

}  // namespace streamrnn::testing
