// cpp/src/threads.hpp: running the parts of a computation on threads of their own, and moving the
// state rows of a part of a batch.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/types.hpp"

#include <vector>
#if STREAMRNN_THREADS
#include <exception>
#include <thread>
#endif

namespace streamrnn {

/// Runs work(0), ..., work(parts - 1): one on the calling thread and the others on threads of
/// their own, started here and joined before it returns. A part whose thread cannot start runs on
/// the calling thread; built without threads (STREAMRNN_THREADS=0) every part does. What a part
/// throws is thrown here, once every part is done. Allocates (the threads): not for a real-time
/// thread.
template <typename Work>
void run_parallel(Index parts, Work work)
{
#if STREAMRNN_THREADS
#if STREAMRNN_HAS_EXCEPTIONS
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(parts));
    auto part_work = [&](Index part) {
        try {
            work(part);
        } catch (...) {
            errors[static_cast<std::size_t>(part)] = std::current_exception();
        }
    };
#else
    auto& part_work = work;
#endif
    std::vector<std::thread> helpers;
    Index started = 1;
    for (; started < parts; ++started) {
#if STREAMRNN_HAS_EXCEPTIONS
        try {
            helpers.emplace_back(part_work, started);
        } catch (...) {  // no thread to be had (system_error), or no memory for its handle
            break;
        }
#else
        helpers.emplace_back(part_work, started);  // without exceptions, a thread that cannot start aborts
#endif
    }
    part_work(Index(0));
    for (Index part = started; part < parts; ++part)
        part_work(part);
    for (std::thread& helper : helpers)
        helper.join();
#if STREAMRNN_HAS_EXCEPTIONS
    for (const std::exception_ptr& error : errors)
        if (error)
            std::rethrow_exception(error);
#endif
#else
    for (Index part = 0; part < parts; ++part)
        work(part);
#endif
}

/// Rows [from_first, from_first + rows) of `from`, a state [cells, from_B, width], into rows
/// [to_first, to_first + rows) of `to`, [cells, to_B, width]: the state of one part of a batch
/// that threads split, into a buffer of its own ([cells, rows, width]) and back.
inline void copy_state_rows(const float* from, Index from_B, Index from_first, float* to, Index to_B, Index to_first,
                            Index cells, Index rows, Index width)
{
    for (Index cell = 0; cell < cells; ++cell)
        mat(to + (cell * to_B + to_first) * width, rows, width) =
            mat(from + (cell * from_B + from_first) * width, rows, width);
}

}  // namespace streamrnn
