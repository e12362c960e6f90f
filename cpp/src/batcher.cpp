// cpp/src/batcher.cpp: Batcher, a queue of frames under a mutex and a thread that steps them in
// batches. Part of streamrnn, MIT licence.
#include "streamrnn/batcher.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace streamrnn {

namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
    StreamId id;
    std::uint64_t ticket;
    Clock::time_point arrival;
    std::vector<float> x;
};

}  // namespace

struct Batcher::Impl {
    Impl(Pool& pool_, Index max_batch_, double max_delay_, Deliver deliver_)
        : pool(pool_), max_batch(max_batch_), max_delay(max_delay_),
          delay(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(max_delay_))),
          deliver(std::move(deliver_)), I(pool_.model().spec().input_size), H_out(pool_.model().spec().output_size())
    {
        if (max_batch < 1 || max_batch > pool.capacity())
            raise(ErrorKind::argument, "max_batch: expected 1 to the pool's capacity (" +
                                           std::to_string(pool.capacity()) + "), got " + std::to_string(max_batch));
        if (!(max_delay >= 0.0) || !std::isfinite(max_delay))
            raise(ErrorKind::argument, "max_delay: expected a finite number of seconds >= 0, got " +
                                           std::to_string(max_delay));
        const auto n = static_cast<std::size_t>(max_batch);
        batch.reserve(n);
        ids.resize(n);
        x.resize(n * static_cast<std::size_t>(I));
        y.resize(n * static_cast<std::size_t>(H_out));
        results.reserve(n);
        order.reserve(n);
        thread = std::thread([this] { loop(); });
    }

    /// Moves into `batch` the first pending frame of each stream, oldest first, up to max_batch;
    /// later frames of those streams stay pending, in order. Under the lock.
    void take_batch()
    {
        std::size_t kept = 0;
        for (std::size_t i = 0; i < pending.size(); ++i) {
            Frame& frame = pending[i];
            const bool taken = std::any_of(batch.begin(), batch.end(), [&](const Frame& f) { return f.id == frame.id; });
            if (!taken && Index(batch.size()) < max_batch)
                batch.push_back(std::move(frame));
            else if (kept++ != i)
                pending[kept - 1] = std::move(frame);
        }
        pending.resize(kept);
    }

    /// Steps the batch, delivering the frames of unknown streams as such and stepping the rest.
    void step_batch()
    {
        results.clear();
        Index n = 0;
        for (const Frame& frame : batch) {
            ids[static_cast<std::size_t>(n)] = frame.id;
            std::copy(frame.x.begin(), frame.x.end(), x.begin() + n * I);
            ++n;
        }
        order.resize(batch.size());
        for (std::size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        for (int waited = 0;;) {
            const PoolResult stepped = pool.step(ids.data(), n, x.data(), y.data());
            if (stepped)
                break;
            if (stepped.status == PoolStatus::busy) {  // a thread of the user's is stepping the pool
                std::this_thread::sleep_for(std::chrono::microseconds(waited++ < 16 ? 10 : 200));
                continue;
            }
            // unknown_id (a stream closed while its frame waited): that frame alone fails.
            const auto bad = static_cast<std::size_t>(stepped.at);
            results.push_back({batch[order[bad]].ticket, batch[order[bad]].id, stepped.status, nullptr});
            for (std::size_t row = bad; row + 1 < std::size_t(n); ++row) {
                ids[row] = ids[row + 1];
                std::copy_n(x.begin() + Index(row + 1) * I, I, x.begin() + Index(row) * I);
                order[row] = order[row + 1];
            }
            --n;
        }
        for (Index row = 0; row < n; ++row)
            results.push_back({batch[order[std::size_t(row)]].ticket, ids[std::size_t(row)], PoolStatus::ok,
                               y.data() + row * H_out});
        batches_done.fetch_add(n > 0 ? 1 : 0, std::memory_order_relaxed);
        frames_done.fetch_add(std::uint64_t(n), std::memory_order_relaxed);
    }

    void loop()
    {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            ready.wait(lock, [&] { return !pending.empty() || closing; });
            if (pending.empty())
                return;  // closing, and every frame done
            const Clock::time_point due = pending.front().arrival + delay;
            ready.wait_until(lock, due, [&] { return closing || Index(pending.size()) >= max_batch; });
            take_batch();
            lock.unlock();
            step_batch();
            deliver(results.data(), Index(results.size()));
            if (orphaned) {
                // Destroyed from its own delivery: no one to deliver to; this thread owns the rest.
                thread.detach();
                delete this;
                return;
            }
            lock.lock();
            in_flight -= Index(batch.size());
            for (Frame& frame : batch)
                spare.push_back(std::move(frame.x));
            batch.clear();
        }
    }

    Pool& pool;
    const Index max_batch;
    const double max_delay;
    const Clock::duration delay;
    const Deliver deliver;
    const Index I, H_out;

    mutable std::mutex mutex;  // pending, spare, in_flight, closing
    std::condition_variable ready;
    std::vector<Frame> pending;
    std::vector<std::vector<float>> spare;  ///< frames' buffers, kept for the next ones
    Index in_flight = 0;                    ///< submitted, not yet delivered
    bool closing = false;

    // The thread's own.
    std::vector<Frame> batch;
    std::vector<StreamId> ids;
    std::vector<float> x, y;
    std::vector<Result> results;
    std::vector<std::size_t> order;  ///< rows of the step -> frames of the batch
    std::atomic<std::uint64_t> batches_done{0}, frames_done{0};

    std::mutex closing_mutex;  // close() from two threads: one joins
    bool orphaned = false;     // destroyed during a delivery, on this thread (the thread's alone)
    std::thread thread;

    bool on_own_thread() const { return std::this_thread::get_id() == thread.get_id(); }
};

Batcher::Batcher(Pool& pool, Index max_batch, double max_delay, Deliver deliver)
    : impl_(std::make_unique<Impl>(pool, max_batch, max_delay, std::move(deliver)))
{
}

Batcher::~Batcher()
{
    if (impl_->on_own_thread()) {
        impl_->orphaned = true;  // the thread deletes it when the delivery returns
        impl_.release();
        return;
    }
    close();
}

bool Batcher::submit(StreamId id, const float* x, std::uint64_t ticket)
{
    Impl& b = *impl_;
    const std::lock_guard<std::mutex> lock(b.mutex);
    if (b.closing)
        return false;
    std::vector<float> values;
    if (!b.spare.empty()) {
        values = std::move(b.spare.back());
        b.spare.pop_back();
    }
    values.assign(x, x + b.I);
    b.pending.push_back({id, ticket, Clock::now(), std::move(values)});
    ++b.in_flight;
    // The thread waits for the first frame, and then for a full batch.
    if (b.pending.size() == 1 || Index(b.pending.size()) >= b.max_batch)
        b.ready.notify_one();
    return true;
}

void Batcher::close()
{
    Impl& b = *impl_;
    {
        const std::lock_guard<std::mutex> lock(b.mutex);
        b.closing = true;
    }
    b.ready.notify_one();
    if (b.on_own_thread())
        return;  // from a delivery: the thread ends once the pending frames are done
    const std::lock_guard<std::mutex> closing(b.closing_mutex);
    if (b.thread.joinable())
        b.thread.join();
}

Index Batcher::max_batch() const noexcept { return impl_->max_batch; }
double Batcher::max_delay() const noexcept { return impl_->max_delay; }

Index Batcher::pending() const
{
    const std::lock_guard<std::mutex> lock(impl_->mutex);
    return impl_->in_flight;
}

std::uint64_t Batcher::batches() const noexcept { return impl_->batches_done.load(std::memory_order_relaxed); }
std::uint64_t Batcher::frames() const noexcept { return impl_->frames_done.load(std::memory_order_relaxed); }

}  // namespace streamrnn
