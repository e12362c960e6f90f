// cpp/include/streamrnn/batcher.hpp: Batcher, one thread that steps a pool's pending frames, which
// any number of producers hand over one at a time, as batches. Part of streamrnn, MIT licence.
#pragma once

#include "pool.hpp"

#include <cstdint>
#include <functional>
#include <memory>

namespace streamrnn {

/// Frames of a pool's streams, submitted one at a time from any thread, stepped on the batcher's
/// own thread: the pending frames of different streams go into one Pool::step, up to `max_batch`
/// of them, the first waiting at most `max_delay` seconds for more; the frames of one stream are
/// stepped one per batch, in the order submitted. Each frame's result is delivered on the
/// batcher's thread, after its batch. Not in builds without threads (STREAMRNN_THREADS=0).
///
/// Threads: submit, pending and the counters may be called from any thread at once; close too
/// (from one thread at a time). The pool's slot calls (open, close, ...) may go on meanwhile; a
/// stream closed with frames pending gets unknown_id for them. Deliver may call close (which then
/// returns at once: the thread ends once the pending frames are done) and may destroy the batcher
/// (the frames still pending are then dropped, undelivered, and the thread ends by itself).
class Batcher {
public:
    /// One submitted frame's outcome: ok with its output y (H_out floats, valid during the
    /// delivery only), or unknown_id when its stream was not open when its batch was stepped.
    struct Result {
        std::uint64_t ticket;
        StreamId id;
        PoolStatus status;
        const float* y;
    };
    /// Called after each batch with the frames it finished, on the batcher's thread; it must not
    /// throw (the thread has no one to throw to).
    using Deliver = std::function<void(const Result* results, Index count)>;

    /// Starts the thread. ArgumentError for max_batch outside [1, pool.capacity()] or a max_delay
    /// that is negative or not finite. The pool must outlive the batcher.
    Batcher(Pool& pool, Index max_batch, double max_delay, Deliver deliver);
    ~Batcher();  ///< close(), but see Deliver
    Batcher(const Batcher&) = delete;
    Batcher& operator=(const Batcher&) = delete;

    /// Queues a frame of I floats for stream `id` (copied), its result delivered with `ticket`.
    /// False, and nothing queued, once closed. Allocates.
    bool submit(StreamId id, const float* x, std::uint64_t ticket);
    /// Steps the pending frames, then ends the thread; later submits are refused. Waits for it,
    /// unless called from a delivery.
    void close();

    Index max_batch() const noexcept;
    double max_delay() const noexcept;
    /// Frames submitted and not yet delivered.
    Index pending() const;
    /// Batched steps so far, and the frames they stepped.
    std::uint64_t batches() const noexcept;
    std::uint64_t frames() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace streamrnn
