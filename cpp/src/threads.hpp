// cpp/src/threads.hpp: running the parts of a computation on threads of their own.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/types.hpp"

#if STREAMRNN_THREADS
#include <thread>
#include <vector>
#endif

namespace streamrnn {

/// Runs work(0), ..., work(parts - 1): one on the calling thread and the others on threads of
/// their own, started here and joined before it returns. A part whose thread cannot start runs on
/// the calling thread; built without threads (STREAMRNN_THREADS=0) every part does. Allocates
/// (the threads): not for a real-time thread.
template <typename Work>
void run_parallel(Index parts, Work work)
{
#if STREAMRNN_THREADS
    std::vector<std::thread> helpers;
    Index started = 1;
    for (; started < parts; ++started) {
#if STREAMRNN_HAS_EXCEPTIONS
        try {
            helpers.emplace_back(work, started);
        } catch (...) {  // no thread to be had (system_error), or no memory for its handle
            break;
        }
#else
        helpers.emplace_back(work, started);  // without exceptions, a thread that cannot start aborts
#endif
    }
    work(Index(0));
    for (Index part = started; part < parts; ++part)
        work(part);
    for (std::thread& helper : helpers)
        helper.join();
#else
    for (Index part = 0; part < parts; ++part)
        work(part);
#endif
}

}  // namespace streamrnn
