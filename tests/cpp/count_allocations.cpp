// tests/cpp/count_allocations.cpp: the replacements that count_allocations.hpp counts with.
// Part of streamrnn, MIT licence.
#include "count_allocations.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__GLIBC__)
#include <dlfcn.h>
#include <pthread.h>
#endif

namespace {

std::atomic<long> allocations{0};
std::atomic<long> locks{0};

}  // namespace

namespace streamrnn::testing {

long allocation_count() { return allocations.load(); }
long lock_count() { return locks.load(); }

}  // namespace streamrnn::testing

#if defined(__GLIBC__)
extern "C" void* __libc_malloc(std::size_t size);
extern "C" void* malloc(std::size_t size)
{
    ++allocations;
    return __libc_malloc(size);
}

namespace {

using MutexLock = int (*)(pthread_mutex_t*);
// Resolved before main, with no function-local static: a guard variable could itself lock.
MutexLock next_mutex_lock = reinterpret_cast<MutexLock>(dlsym(RTLD_NEXT, "pthread_mutex_lock"));

}  // namespace

extern "C" int pthread_mutex_lock(pthread_mutex_t* mutex)
{
    ++locks;
    return next_mutex_lock(mutex);
}
#endif

void* operator new(std::size_t size)
{
#if !defined(__GLIBC__)
    ++allocations;
#endif
    if (void* p = std::malloc(size ? size : 1))
        return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
