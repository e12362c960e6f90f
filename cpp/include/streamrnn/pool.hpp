// cpp/include/streamrnn/pool.hpp: Pool, the state of many live streams of one model in slots, any
// subset of them stepped as one batch; and their snapshots. Part of streamrnn, MIT licence.
#pragma once

#include "model.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace streamrnn {

/// A live stream of a pool. Ids are never reused within a pool.
using StreamId = std::uint64_t;

/// What a pool call did.
enum class PoolStatus {
    ok,
    busy,           ///< another thread is stepping the pool (step, process): nothing was done
    unknown_id,     ///< an id that is not open in this pool (closed, or never opened)
    repeated_id,    ///< an id named twice in one call
    full,           ///< open, fork or restore on a pool whose every slot is taken
    bad_snapshot,   ///< bytes that are not a snapshot: truncated, corrupt, another version
    other_model,    ///< a snapshot of a model of another architecture
    other_weights,  ///< a snapshot of a model of this architecture with other weights
};

/// A pool call's status, and for an id's refusal the index of the id in the call's list.
struct PoolResult {
    PoolStatus status = PoolStatus::ok;
    Index at = -1;

    explicit operator bool() const noexcept { return status == PoolStatus::ok; }
};

/// Live streams of one unidirectional model, each in a slot of its own: any of them are stepped
/// together as one batch, in any order, each exactly as a Stream of one row fed the same inputs
/// would be (to float32 rounding). Everything is allocated by the constructor: no call allocates,
/// frees, locks or throws afterwards.
///
/// Threads: step and process are for one thread at a time; one that overlaps another is refused
/// (busy). Every other call (the slot calls) may come from any thread at any time, also while a
/// step runs: it waits for the step to end, and a step waits for a slot call in progress (each
/// copies one stream's state, or the snapshot's bytes) instead of refusing. Waiting spins, then
/// yields; built without threads (STREAMRNN_THREADS=0) there is nothing to wait for. The model's
/// weights may change meanwhile, as for a Stream: each call reads one whole version.
class Pool {
public:
    /// Throws ArgumentError for a bidirectional model or a capacity outside [1, 2^24];
    /// std::length_error or std::bad_alloc when its buffers do not fit in memory.
    Pool(std::shared_ptr<const Model> model, Index capacity);
    Pool(Pool&&) noexcept;
    Pool& operator=(Pool&&) noexcept;
    ~Pool();

    const Model& model() const;
    Index capacity() const;
    /// Floats of one stream's state: h [L, H_out], and (LSTM) c [L, H] (0 for other kinds).
    std::size_t h_size() const;
    std::size_t c_size() const;
    /// Bytes of every snapshot of this pool's streams.
    std::size_t snapshot_size() const;

    /// Streams open now (a moment's view when other threads open and close).
    Index size() const noexcept;
    /// Copies the ids of the open streams, oldest first, into ids (up to max of them); returns
    /// how many are open.
    Index ids(StreamId* ids, Index max) const noexcept;
    bool contains(StreamId id) const noexcept;

    /// A new stream in a free slot, at the initial state (zeros), or at h and c laid out as
    /// get_state gives them (either may be null: that part starts at zero). Full: nothing done.
    STREAMRNN_REALTIME PoolResult open(StreamId* id, const float* h = nullptr, const float* c = nullptr) noexcept;
    /// Frees the stream's slot; its id is never valid again.
    STREAMRNN_REALTIME PoolResult close(StreamId id) noexcept;
    /// A new stream with a copy of the state of `from`.
    STREAMRNN_REALTIME PoolResult fork(StreamId from, StreamId* id) noexcept;
    /// The named streams back to the initial state; an unknown or repeated id refuses them all.
    STREAMRNN_REALTIME PoolResult reset(const StreamId* ids, Index n) noexcept;
    /// Copies one stream's state out (h_size() floats into h, c_size() into c) or in; a null part
    /// is not copied.
    STREAMRNN_REALTIME PoolResult get_state(StreamId id, float* h, float* c) const noexcept;
    STREAMRNN_REALTIME PoolResult set_state(StreamId id, const float* h, const float* c) noexcept;

    /// One step of the n named streams: x [n, I] -> y [n, H_out], rows in the ids' order. Every id
    /// is checked first: an unknown or repeated one refuses the call, and no stream changes.
    STREAMRNN_REALTIME PoolResult step(const StreamId* ids, Index n, const float* x, float* y) noexcept;
    /// T steps of the n named streams: x T x n rows of I -> y T x n rows of H_out, in the model's
    /// layout (batch-first when the spec says so), checked as step is.
    STREAMRNN_REALTIME PoolResult process(const StreamId* ids, Index n, const float* x, float* y, Index T) noexcept;

    /*
     * A snapshot: snapshot_size() bytes, little-endian on every host, so that a stream moves to any
     * pool of the same model on any machine:
     *   8 bytes  "srnnpool"             8 bytes  the format version (1)
     *   8 bytes  A, the architecture's length in bytes
     *   8 bytes  the weights' digest    8 bytes  h floats     8 bytes  c floats
     *   A bytes  the architecture, as a model file's metadata names it ("mode=LSTM;input_size=80;...")
     *   the state, float32: h [L, H_out] then c [L, H]
     *   8 bytes  the digest of every byte before it, which finds a changed or cut byte
     * The digests are streamrnn's own 64-bit hash (not cryptographic: they tell models and
     * corruption apart, they do not authenticate).
     */
    /// Writes the stream's snapshot into `out` of `size` bytes (at least snapshot_size()).
    /// Hashes the weights the first time after they change; allocates nothing.
    PoolResult snapshot(StreamId id, void* out, std::size_t size) const noexcept;
    /// A new stream from a snapshot of a stream of this model: bad_snapshot for bytes that are not
    /// one, other_model or other_weights for a snapshot of another model; nothing changes then.
    PoolResult restore(const void* data, std::size_t size, StreamId* id) noexcept;

    /// As Stream::set_flush_denormals, for step and process (on by default).
    void set_flush_denormals(bool flush) noexcept;
    bool flush_denormals() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// What a pool's refusal means, for messages: "an unknown id", ...
const char* pool_status_text(PoolStatus status) noexcept;

}  // namespace streamrnn
