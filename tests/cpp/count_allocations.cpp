// tests/cpp/count_allocations.cpp: the replacements that count_allocations.hpp counts with.
// Part of streamrnn, MIT licence.
#include "count_allocations.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if STREAMRNN_COUNTS_LOCKS
#include <dlfcn.h>
#include <pthread.h>
#endif

namespace {

std::atomic<long> allocations{0};
std::atomic<long> locks{0};
// Plain integers in the executable's static TLS: reaching them allocates nothing.
thread_local long thread_allocations = 0;
thread_local long thread_frees = 0;
thread_local long thread_locks = 0;

void count_allocation()
{
    ++allocations;
    ++thread_allocations;
}

}  // namespace

namespace streamrnn::testing {

long allocation_count() { return allocations.load(); }
long lock_count() { return locks.load(); }
long thread_allocation_count() { return thread_allocations; }
long thread_free_count() { return thread_frees; }
long thread_lock_count() { return thread_locks; }

}  // namespace streamrnn::testing

#if defined(STREAMRNN_SANITIZER_HEAP)
// The sanitizers' allocator interface (sanitizer/allocator_interface.h, which GCC does not ship).
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));

namespace {

void allocation_hook(const volatile void*, std::size_t) { count_allocation(); }
void free_hook(const volatile void*) { ++thread_frees; }

// Installed before main, so that every allocation a test measures is seen (should the runtime
// refuse them, the test of the counter itself fails).
struct InstallHooks {
    InstallHooks() { __sanitizer_install_malloc_and_free_hooks(allocation_hook, free_hook); }
} install_hooks;

}  // namespace
#else
#if defined(__GLIBC__)
extern "C" void* __libc_malloc(std::size_t size);
extern "C" void __libc_free(void* p);
extern "C" void* malloc(std::size_t size)
{
    count_allocation();
    return __libc_malloc(size);
}
extern "C" void free(void* p)
{
    if (p)
        ++thread_frees;
    __libc_free(p);
}
#endif

void* operator new(std::size_t size)
{
#if !defined(__GLIBC__)
    count_allocation();
#endif
    if (void* p = std::malloc(size ? size : 1))
        return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept
{
#if !defined(__GLIBC__)
    if (p)
        ++thread_frees;
#endif
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
#endif

#if STREAMRNN_COUNTS_LOCKS
namespace {

using MutexLock = int (*)(pthread_mutex_t*);
// Resolved before main, with no function-local static: a guard variable could itself lock.
MutexLock next_mutex_lock = reinterpret_cast<MutexLock>(dlsym(RTLD_NEXT, "pthread_mutex_lock"));

}  // namespace

extern "C" int pthread_mutex_lock(pthread_mutex_t* mutex)
{
    ++locks;
    ++thread_locks;
    return next_mutex_lock(mutex);
}
#endif
