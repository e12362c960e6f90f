// cpp/src/pool.cpp: Pool, streams in slots stepped as one batch: the named slots' state gathered
// into a batch, the stack run over it, the state scattered back; and snapshots.
// Part of streamrnn, MIT licence.
#include "streamrnn/pool.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"

#include "carried_state.hpp"
#include "denormals.hpp"
#include "digest.hpp"
#include "exclusive.hpp"
#include "initial_state.hpp"
#include "layer.hpp"
#include "model_access.hpp"
#include "sizes.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>
#if STREAMRNN_THREADS
#include <chrono>
#include <thread>
#endif

namespace streamrnn {

namespace {

constexpr char snapshot_magic[8] = {'s', 'r', 'n', 'n', 'p', 'o', 'o', 'l'};
constexpr std::uint64_t snapshot_version = 1;
constexpr std::size_t snapshot_header = 8 * 6;  // magic, version, A, digest, h and c floats
constexpr StreamId free_slot = ~StreamId(0);

const Model& checked(const std::shared_ptr<const Model>& model, Index capacity)
{
    if (!model)
        raise(ErrorKind::argument, "pool: no model");
    if (model->spec().bidirectional)
        raise(ErrorKind::argument,
              "pool: a bidirectional model needs the whole sequence (its reverse direction starts at the "
              "end); pool a unidirectional model");
    constexpr Index max_capacity = Index(1) << 24;
    if (capacity < 1 || capacity > max_capacity)
        raise(ErrorKind::argument, "capacity: expected 1 to " + std::to_string(max_capacity) + " streams, got " +
                                       std::to_string(capacity));
    return *model;
}

/// Steps per block of process(): a block's buffers hold about 4096 rows, whatever the capacity.
Index block_steps_for(Index capacity) { return std::max<Index>(1, std::min<Index>(64, 4096 / capacity)); }

void put_word(unsigned char*& out, std::uint64_t word)
{
    for (int k = 0; k < 8; ++k)
        *out++ = static_cast<unsigned char>(word >> (8 * k));
}
std::uint64_t get_word(const unsigned char*& in)
{
    std::uint64_t word = 0;
    for (int k = 0; k < 8; ++k)
        word |= std::uint64_t(*in++) << (8 * k);
    return word;
}
void put_floats(unsigned char*& out, const float* values, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t b;
        std::memcpy(&b, &values[i], sizeof b);
        for (int k = 0; k < 4; ++k)
            *out++ = static_cast<unsigned char>(b >> (8 * k));
    }
}
void get_floats(const unsigned char*& in, float* values, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t b = 0;
        for (int k = 0; k < 4; ++k)
            b |= std::uint32_t(*in++) << (8 * k);
        std::memcpy(&values[i], &b, sizeof b);
    }
}

/// Waits a little, longer the longer it has waited: pauses, then yields, then short sleeps.
void back_off(int& waited) noexcept
{
#if STREAMRNN_THREADS
    if (waited < 64)
        std::this_thread::yield();
    else
        std::this_thread::sleep_for(std::chrono::microseconds(20));
#endif
    ++waited;
}

constexpr const char* step_call = "step";
constexpr const char* process_call = "process";

}  // namespace

struct Pool::Impl {
    Impl(std::shared_ptr<const Model> model_, Index capacity_)
        : model(std::move(model_)), spec(checked(model, capacity_).spec()), capacity(capacity_),
          L(spec.num_layers), H(spec.hidden_size), H_out(spec.output_size()), C(spec.has_cell_state() ? H : 0),
          block_steps(block_steps_for(capacity)),
          kind(weight_copies_for(spec, block_steps, std::max<Index>(capacity, 2), true).kind()),
          reader(ModelAccess::store(*model), kind), workspace(spec, block_steps, capacity, false),
          architecture(architecture_text(spec))
    {
        slot_ids.assign(static_cast<std::size_t>(capacity), free_slot);
        generations.assign(static_cast<std::size_t>(capacity), 0);
        marks.assign(static_cast<std::size_t>(capacity), 0);
        free_ring.resize(static_cast<std::size_t>(capacity));
        for (Index s = 0; s < capacity; ++s)
            free_ring[static_cast<std::size_t>(s)] = s;
        free_count = capacity;
        batch_slots.resize(static_cast<std::size_t>(capacity));
        h_slots.assign(buffer_size({capacity, L, H_out}), 0.0f);
        c_slots.assign(buffer_size({capacity, L, C}), 0.0f);
        h_batch.assign(buffer_size({L, capacity, H_out}), 0.0f);
        c_batch.assign(buffer_size({L, capacity, C}), 0.0f);
    }

    /// The pool, held by one call at a time (see Pool's threading rule).
    class Hold {
    public:
        /// A step or process: refused while another holds it, waits for a slot call.
        Hold(Impl& pool, const char* call, bool stepping) noexcept : pool_(pool)
        {
            for (int waited = 0; !(taken_ = pool.in_use.try_take(call));) {
                const char* holder = pool.in_use.holder();
                if ((stepping && (holder == step_call || holder == process_call)) || !STREAMRNN_THREADS)
                    return;
                back_off(waited);
            }
        }
        ~Hold()
        {
            if (taken_)
                pool_.in_use.release();
        }
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        explicit operator bool() const noexcept { return taken_; }

    private:
        Impl& pool_;
        bool taken_ = false;
    };

    /// The slot of an open stream's id, or -1.
    Index slot_of(StreamId id) const noexcept
    {
        if (id == free_slot)  // what a free slot holds, so never an open stream's id
            return -1;
        const auto slot = static_cast<Index>(id % static_cast<StreamId>(capacity));
        return slot_ids[static_cast<std::size_t>(slot)] == id ? slot : -1;
    }

    /// The slots of ids[0, n) into batch_slots: unknown_id or repeated_id at the first bad one.
    PoolResult find(const StreamId* ids, Index n) noexcept
    {
        ++call_mark;
        for (Index i = 0; i < n; ++i) {
            const Index slot = slot_of(ids[i]);
            if (slot < 0)
                return {PoolStatus::unknown_id, i};
            std::uint64_t& mark = marks[static_cast<std::size_t>(slot)];
            if (mark == call_mark)
                return {PoolStatus::repeated_id, i};
            mark = call_mark;
            batch_slots[static_cast<std::size_t>(i)] = slot;
        }
        return {};
    }

    float* h_of(Index slot) noexcept { return h_slots.data() + slot * L * H_out; }
    float* c_of(Index slot) noexcept { return c_slots.data() + slot * L * C; }

    /// Sets a slot's state: h and c as get_state lays them out, a null part the model's initial
    /// state's (zeros unless set). Its slot layout [L, width] is the initial state's.
    void write_state(Index slot, const float* h, const float* c) noexcept
    {
        const InitialState initial = InitialState::of(spec, reader.acquire());
        start_state_row(h_of(slot), c_of(slot), 1, 1, L * H_out, L * C, 0, h ? h : initial.h, c ? c : initial.c);
    }

    /// Takes a free slot for a new stream (the one free longest): its id, or free_slot when full.
    StreamId take_slot(Index& slot) noexcept
    {
        if (free_count == 0)
            return free_slot;
        slot = free_ring[static_cast<std::size_t>(free_head)];
        free_head = (free_head + 1) % capacity;
        --free_count;
        const StreamId id = generations[static_cast<std::size_t>(slot)]++ * StreamId(capacity) + StreamId(slot);
        slot_ids[static_cast<std::size_t>(slot)] = id;
        open_count.store(open_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return id;
    }

    void release(Index slot) noexcept
    {
        slot_ids[static_cast<std::size_t>(slot)] = free_slot;
        free_ring[static_cast<std::size_t>((free_head + free_count) % capacity)] = slot;
        ++free_count;
        open_count.store(open_count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }

    /// T steps of the streams in batch_slots[0, n): their state gathered into the batch, the stack
    /// run, the state scattered back.
    void run(Index n, const float* x, float* y, Index T) noexcept
    {
        for (Index layer = 0; layer < L; ++layer)
            for (Index i = 0; i < n; ++i) {
                const Index slot = batch_slots[static_cast<std::size_t>(i)];
                std::copy_n(h_of(slot) + layer * H_out, H_out, h_batch.data() + (layer * n + i) * H_out);
                std::copy_n(c_of(slot) + layer * C, C, c_batch.data() + (layer * n + i) * C);
            }
        const detail::WeightSet& set = reader.acquire();
        const RunWeights weights{spec, set.values.data(),
                                 static_cast<const DerivedWeights*>(
                                     set.derived[static_cast<std::size_t>(kind)].load(std::memory_order_acquire))};
        const Index I = spec.input_size;
        // One step's rows are [n, I] whatever the layout; longer runs are in the model's.
        const bool batch_first = spec.batch_first && T > 1;
        const ConstSeqView xs = ConstSeqView::of(x, T, n, I, I, batch_first);
        const SeqView ys = SeqView::of(y, T, n, H_out, H_out, batch_first);
        for (Index t0 = 0; t0 < T; t0 += block_steps)
            run_stack(weights, xs.from_step(t0), ys.from_step(t0), std::min(block_steps, T - t0), n, nullptr,
                      h_batch.data(), C ? c_batch.data() : nullptr, workspace);
        for (Index layer = 0; layer < L; ++layer)
            for (Index i = 0; i < n; ++i) {
                const Index slot = batch_slots[static_cast<std::size_t>(i)];
                std::copy_n(h_batch.data() + (layer * n + i) * H_out, H_out, h_of(slot) + layer * H_out);
                std::copy_n(c_batch.data() + (layer * n + i) * C, C, c_of(slot) + layer * C);
            }
    }

    PoolResult stepped(const StreamId* ids, Index n, const float* x, float* y, Index T, const char* call) noexcept
    {
        const FlushDenormals flushed(flush_denormals);
        const Hold hold(*this, call, true);
        if (!hold)
            return {PoolStatus::busy};
        if (n < 0 || n > capacity)
            return {PoolStatus::repeated_id, capacity};  // more ids than slots: some id repeats
        if (const PoolResult found = find(ids, n); !found)
            return found;
        if (n > 0 && T > 0)
            run(n, x, y, T);
        return {};
    }

    /// Runs call(slot) on the slot of stream `id`, holding the pool for the slot call `name`:
    /// busy, unknown_id, or what the call returns.
    template <typename Call>
    PoolResult on_stream(const char* name, StreamId id, Call call) noexcept
    {
        const Hold hold(*this, name, false);
        if (!hold)
            return {PoolStatus::busy};
        const Index slot = slot_of(id);
        if (slot < 0)
            return {PoolStatus::unknown_id, 0};
        return call(slot);
    }

    /// The digest of the current weights, hashed again only when they change.
    std::uint64_t weights_digest() const noexcept
    {
        const detail::WeightSet& set = reader.acquire();
        if (set.version != digest_version) {
            Digest digest;
            digest.add_floats(set.values.data(), set.values.size());
            weights_hash = digest.value();
            digest_version = set.version;
        }
        return weights_hash;
    }

    std::size_t snapshot_size() const
    {
        return snapshot_header + architecture.size() + 4 * static_cast<std::size_t>(L * (H_out + C)) + 8;
    }

    std::shared_ptr<const Model> model;
    const ModelSpec& spec;
    Index capacity;
    Index L, H, H_out, C;  ///< C: H for an LSTM's cell state, else 0
    Index block_steps;
    int kind;  ///< of the copies of the weights it multiplies (WeightCopies)
    mutable detail::WeightStore::Reader reader;
    Workspace workspace;
    std::string architecture;

    std::vector<StreamId> slot_ids;          ///< per slot: the id of its stream, or free_slot
    std::vector<std::uint64_t> generations;  ///< per slot: streams it has held (ids never repeat)
    std::vector<std::uint64_t> marks;        ///< per slot: the last call that named it (find)
    std::uint64_t call_mark = 0;
    std::vector<Index> free_ring;  ///< free slots, oldest first, from free_head
    Index free_head = 0, free_count = 0;
    std::atomic<Index> open_count{0};
    std::vector<Index> batch_slots;  ///< the slots of a call's ids, in order
    Buffer h_slots, c_slots;         ///< per slot: h [L, H_out], c [L, H]
    Buffer h_batch, c_batch;         ///< a call's state, as the stack reads it: [L, n, ...]
    mutable std::uint64_t digest_version = ~std::uint64_t(0);
    mutable std::uint64_t weights_hash = 0;
    bool flush_denormals = true;
    mutable Exclusive in_use;
};

Pool::Pool(std::shared_ptr<const Model> model, Index capacity) : impl_(std::make_unique<Impl>(std::move(model), capacity))
{
}

Pool::Pool(Pool&&) noexcept = default;
Pool& Pool::operator=(Pool&&) noexcept = default;
Pool::~Pool() = default;

const Model& Pool::model() const { return *impl_->model; }
Index Pool::capacity() const { return impl_->capacity; }
std::size_t Pool::h_size() const { return static_cast<std::size_t>(impl_->L * impl_->H_out); }
std::size_t Pool::c_size() const { return static_cast<std::size_t>(impl_->L * impl_->C); }
std::size_t Pool::snapshot_size() const { return impl_->snapshot_size(); }
Index Pool::size() const noexcept { return impl_->open_count.load(std::memory_order_relaxed); }

Index Pool::ids(StreamId* ids, Index max) const noexcept
{
    Impl& p = *impl_;
    const Impl::Hold hold(p, "ids", false);
    if (!hold)
        return 0;
    Index count = 0;
    for (const StreamId id : p.slot_ids)
        if (id != free_slot && count++ < max)
            ids[count - 1] = id;
    std::sort(ids, ids + std::min(count, max));
    return count;
}

bool Pool::contains(StreamId id) const noexcept
{
    Impl& p = *impl_;
    const Impl::Hold hold(p, "contains", false);
    return hold && p.slot_of(id) >= 0;
}

PoolResult Pool::open(StreamId* id, const float* h, const float* c) noexcept
{
    Impl& p = *impl_;
    const Impl::Hold hold(p, "open", false);
    if (!hold)
        return {PoolStatus::busy};
    Index slot;
    const StreamId opened = p.take_slot(slot);
    if (opened == free_slot)
        return {PoolStatus::full};
    p.write_state(slot, h, c);
    *id = opened;
    return {};
}

PoolResult Pool::close(StreamId id) noexcept
{
    Impl& p = *impl_;
    return p.on_stream("close", id, [&](Index slot) {
        p.release(slot);
        return PoolResult{};
    });
}

PoolResult Pool::fork(StreamId from, StreamId* id) noexcept
{
    Impl& p = *impl_;
    return p.on_stream("fork", from, [&](Index source) {
        Index slot;
        const StreamId opened = p.take_slot(slot);
        if (opened == free_slot)
            return PoolResult{PoolStatus::full};
        p.write_state(slot, p.h_of(source), p.c_of(source));
        *id = opened;
        return PoolResult{};
    });
}

PoolResult Pool::reset(const StreamId* ids, Index n) noexcept
{
    Impl& p = *impl_;
    const Impl::Hold hold(p, "reset", false);
    if (!hold)
        return {PoolStatus::busy};
    if (n < 0 || n > p.capacity)
        return {PoolStatus::repeated_id, p.capacity};
    if (const PoolResult found = p.find(ids, n); !found)
        return found;
    for (Index i = 0; i < n; ++i)
        p.write_state(p.batch_slots[static_cast<std::size_t>(i)], nullptr, nullptr);
    return {};
}

PoolResult Pool::get_state(StreamId id, float* h, float* c) const noexcept
{
    Impl& p = *impl_;
    return p.on_stream("state", id, [&](Index slot) {
        if (h)
            std::copy_n(p.h_of(slot), p.L * p.H_out, h);
        if (c)
            std::copy_n(p.c_of(slot), p.L * p.C, c);
        return PoolResult{};
    });
}

PoolResult Pool::set_state(StreamId id, const float* h, const float* c) noexcept
{
    Impl& p = *impl_;
    return p.on_stream("set_state", id, [&](Index slot) {
        if (h)
            std::copy_n(h, p.L * p.H_out, p.h_of(slot));
        if (c)
            std::copy_n(c, p.L * p.C, p.c_of(slot));
        return PoolResult{};
    });
}

PoolResult Pool::step(const StreamId* ids, Index n, const float* x, float* y) noexcept
{
    return impl_->stepped(ids, n, x, y, 1, step_call);
}

PoolResult Pool::process(const StreamId* ids, Index n, const float* x, float* y, Index T) noexcept
{
    return impl_->stepped(ids, n, x, y, T, process_call);
}

PoolResult Pool::snapshot(StreamId id, void* out, std::size_t size) const noexcept
{
    Impl& p = *impl_;
    return p.on_stream("snapshot", id, [&](Index slot) {
        if (size < p.snapshot_size())
            return PoolResult{PoolStatus::bad_snapshot};
        auto* const begin = static_cast<unsigned char*>(out);
        unsigned char* at = begin;
        std::memcpy(at, snapshot_magic, sizeof snapshot_magic);
        at += sizeof snapshot_magic;
        put_word(at, snapshot_version);
        put_word(at, p.architecture.size());
        put_word(at, p.weights_digest());
        put_word(at, static_cast<std::uint64_t>(p.L * p.H_out));
        put_word(at, static_cast<std::uint64_t>(p.L * p.C));
        std::memcpy(at, p.architecture.data(), p.architecture.size());
        at += p.architecture.size();
        put_floats(at, p.h_of(slot), static_cast<std::size_t>(p.L * p.H_out));
        put_floats(at, p.c_of(slot), static_cast<std::size_t>(p.L * p.C));
        Digest check;
        check.add_bytes(begin, static_cast<std::size_t>(at - begin));
        put_word(at, check.value());
        return PoolResult{};
    });
}

PoolResult Pool::restore(const void* data, std::size_t size, StreamId* id) noexcept
{
    Impl& p = *impl_;
    const auto* const begin = static_cast<const unsigned char*>(data);
    // The frame first: magic, version, sizes and the check digest, before any field is believed.
    if (!data || size < snapshot_header + 8 || std::memcmp(begin, snapshot_magic, sizeof snapshot_magic) != 0)
        return {PoolStatus::bad_snapshot};
    const unsigned char* at = begin + sizeof snapshot_magic;
    const std::uint64_t version = get_word(at), architecture_size = get_word(at), weights = get_word(at),
                        h_floats = get_word(at), c_floats = get_word(at);
    const std::uint64_t rest = size - snapshot_header - 8;
    if (version != snapshot_version || architecture_size > rest || h_floats > rest / 4 || c_floats > rest / 4 ||
        architecture_size + 4 * (h_floats + c_floats) != rest)
        return {PoolStatus::bad_snapshot};
    Digest check;
    check.add_bytes(begin, size - 8);
    const unsigned char* end = begin + size - 8;
    if (get_word(end) != check.value())
        return {PoolStatus::bad_snapshot};
    const Impl::Hold hold(p, "restore", false);
    if (!hold)
        return {PoolStatus::busy};
    if (architecture_size != p.architecture.size() ||
        std::memcmp(at, p.architecture.data(), p.architecture.size()) != 0 ||
        h_floats != static_cast<std::uint64_t>(p.L * p.H_out) || c_floats != static_cast<std::uint64_t>(p.L * p.C))
        return {PoolStatus::other_model};
    if (weights != p.weights_digest())
        return {PoolStatus::other_weights};
    at += architecture_size;
    Index slot;
    const StreamId opened = p.take_slot(slot);
    if (opened == free_slot)
        return {PoolStatus::full};
    get_floats(at, p.h_of(slot), static_cast<std::size_t>(h_floats));
    get_floats(at, p.c_of(slot), static_cast<std::size_t>(c_floats));
    *id = opened;
    return {};
}

void Pool::set_flush_denormals(bool flush) noexcept { impl_->flush_denormals = flush; }
bool Pool::flush_denormals() const noexcept { return impl_->flush_denormals; }

const char* pool_status_text(PoolStatus status) noexcept
{
    switch (status) {
    case PoolStatus::ok: return "ok";
    case PoolStatus::busy: return "another thread is stepping this pool, which is for one stepping thread at a time";
    case PoolStatus::unknown_id: return "no open stream of this pool has this id (closed, or never opened)";
    case PoolStatus::repeated_id: return "an id is named twice";
    case PoolStatus::full: return "every slot of the pool is taken: close a stream, or make a larger pool";
    case PoolStatus::bad_snapshot: return "not a snapshot of a pool's stream: truncated, corrupt or of another version";
    case PoolStatus::other_model: return "a snapshot of a model of another architecture than this pool's";
    case PoolStatus::other_weights: return "a snapshot of a model with other weights than this pool's";
    }
    return "unknown status";
}

}  // namespace streamrnn
