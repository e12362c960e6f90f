// cpp/src/parallel.hpp: running the parts of a computation on threads of their own, and the one
// way a batch is split into parts (the forward, the training forward and the backward all split
// theirs so). Part of streamrnn, MIT licence.
#pragma once

#include "views.hpp"

#include <vector>
#if STREAMRNN_THREADS
#include <exception>
#include <thread>
#endif

namespace streamrnn {

/// Runs work(0), ..., work(parts - 1): one on the calling thread and the others on threads of
/// their own, started here and joined before it returns. A part whose thread cannot start runs on
/// the calling thread; built without threads (STREAMRNN_THREADS=0) every part does. What a part
/// throws is thrown here, once every part is done. Allocates (the threads) for two parts or more:
/// not for a real-time thread; one part runs as a plain call.
template <typename Work>
void run_parallel(Index parts, Work work)
{
    if (parts <= 1) {
        if (parts == 1)
            work(Index(0));
        return;
    }
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

/// Rows [first, first + rows) of a batch: one part of it.
struct BatchPart {
    Index first = 0;
    Index rows = 0;
};

/// The `parts` parts of a batch of B rows, as even as they come, in order.
inline std::vector<BatchPart> split_batch(Index B, Index parts)
{
    std::vector<BatchPart> out;
    for (Index p = 0; p < parts; ++p)
        out.push_back({p * B / parts, (p + 1) * B / parts - p * B / parts});
    return out;
}

/// A part's own copy of its rows of a state laid out [cells, B, width] (h or c of every layer and
/// direction, or their gradients): a part runs on its rows as on a batch of its own.
class PartState {
public:
    /// Space for `rows` rows of [cells, rows, width]; allocates.
    PartState(Index cells, Index rows, Index width)
        : values_(static_cast<std::size_t>(cells * rows * width)), cells_(cells), width_(width)
    {
    }

    float* data() { return values_.empty() ? nullptr : values_.data(); }

    /// Copies the part's rows in from `whole`, a state of B rows (null: leaves them as they are).
    void gather(const float* whole, Index B, const BatchPart& part)
    {
        if (whole)
            copy_rows(whole, B, part.first, values_.data(), part.rows, 0, part.rows);
    }
    /// Copies the part's rows back into `whole` (null: nowhere).
    void scatter(float* whole, Index B, const BatchPart& part) const
    {
        if (whole)
            copy_rows(values_.data(), part.rows, 0, whole, B, part.first, part.rows);
    }

private:
    void copy_rows(const float* from, Index from_B, Index from_first, float* to, Index to_B, Index to_first,
                   Index rows) const
    {
        if (width_ == 0 || rows == 0)
            return;
        for (Index cell = 0; cell < cells_; ++cell)
            mat(to + (cell * to_B + to_first) * width_, rows, width_) =
                mat(from + (cell * from_B + from_first) * width_, rows, width_);
    }

    Buffer values_;
    Index cells_;
    Index width_;
};

}  // namespace streamrnn
