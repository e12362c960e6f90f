// tests/cpp/count_allocations.hpp: counts the program's heap allocations and mutex locks.
// Part of streamrnn, MIT licence.
//
// count_allocations.cpp, linked into the program, replaces operator new, malloc (glibc: Eigen
// allocates with malloc) and pthread_mutex_lock (which std::mutex and most locks come down to).
// The C++ tests and bench/cpp/bench_step use it to show that streaming calls do neither.
#pragma once

namespace streamrnn::testing {

/// Heap allocations so far.
long allocation_count();
/// pthread_mutex_lock calls so far (glibc only; 0 elsewhere).
long lock_count();

}  // namespace streamrnn::testing
