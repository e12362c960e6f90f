// cpp/src/weight_store.hpp: the versions of a Trainable's weights, each immutable once published,
// and how readers on other threads (whole-sequence calls, real-time streams) hold one while writers
// publish the next. Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/types.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#if STREAMRNN_THREADS
#include <mutex>
#endif

namespace streamrnn::detail {

/// Copies of one version of the weights that its user derives from it (a recurrent model's
/// transposed and packed weights), made once per version and kind.
struct DerivedCopies {
    virtual ~DerivedCopies() = default;
};

/// One version of the weights. Its values never change once it is published: a write publishes a
/// new version instead, so that whoever holds one reads it whole.
struct WeightSet {
    static constexpr int kinds = 16;

    Buffer values;
    /// A recurrent model's initial state when it is set but not learned (Model::set_initial_state):
    /// [L * D, H_out] then [L * D, H], carried from version to version; empty: none.
    Buffer initial;
    std::uint64_t version = 0;
    /// The copies derived from `values`, by kind: each made at most once, under the store's lock,
    /// and read without one. Owned by `owned`.
    mutable std::array<std::atomic<const DerivedCopies*>, kinds> derived{};
    mutable std::array<std::unique_ptr<const DerivedCopies>, kinds> owned;
};

/// The current version of the weights, the versions still held, and the registry of real-time
/// readers. Threads: every member may be called from any thread at any time; only
/// Reader::acquire is for a real-time thread (no lock, no allocation, no free).
///
/// Reclaiming: a write retires the version it replaces. A retired version is freed once no Reader
/// holds it (each Reader publishes the version it uses in a hazard slot, which writers scan) and
/// no handle does (shared ownership): always on a thread that writes or lets go, never in
/// Reader::acquire.
class WeightStore {
public:
    /// Makes the copies of `kind` of a version (DerivedCopies); null for a store without any.
    using Derive = std::function<std::unique_ptr<const DerivedCopies>(const WeightSet&, int kind)>;

    explicit WeightStore(Buffer initial);
    WeightStore(const WeightStore&) = delete;
    WeightStore& operator=(const WeightStore&) = delete;
    ~WeightStore();

    /// Set once, before any reader: what derived() and new versions make copies with.
    void set_derive(Derive derive) { derive_ = std::move(derive); }

    /// The current version, held for as long as the pointer lives. Takes the lock.
    std::shared_ptr<const WeightSet> current() const;
    /// The current version, unheld: valid until the next write (for single-threaded use).
    const WeightSet& latest() const noexcept { return *current_.load(std::memory_order_acquire); }

    /// Publishes `values` as the next version, with the copies of every kind that a Reader uses
    /// made first (so that readers never wait for them), and the current version's initial
    /// state. On failure (no memory) nothing changes.
    void publish(Buffer values);
    /// Publishes the current values again with `initial` as the initial state, as publish does.
    void publish_initial(Buffer initial);

    /// The copies of `kind` of `set`, made now if they were not (under the lock).
    const DerivedCopies* derived(const WeightSet& set, int kind) const;

    /// How a real-time thread reads the weights: registered once (off that thread), it then
    /// gives the current version on every call without a lock, an allocation or a free. The
    /// version it gives stays valid until its next acquire() or its end.
    class Reader {
    public:
        /// Registers with `store` for copies of `kind` (or -1: none): they are made now for the
        /// current version and before any later version is published. Allocates, locks.
        Reader(const WeightStore& store, int kind);
        ~Reader();
        Reader(const Reader&) = delete;
        Reader& operator=(const Reader&) = delete;

        /// The current version. Lock-free: a write published between its two reads makes it read
        /// again. STREAMRNN_REALTIME. Inline, for the common case of no write since the last call:
        /// one load (the slot names held_ already, and a writer frees nothing a slot names).
        const WeightSet& acquire() noexcept
        {
            const WeightSet* now = store_->current_.load(std::memory_order_seq_cst);
            return now == held_ ? *held_ : switch_to(now);
        }
        int kind() const noexcept { return kind_; }

    private:
        /// acquire() once a write has published `now`.
        const WeightSet& switch_to(const WeightSet* now) noexcept;

        const WeightStore* store_;
        int kind_;
        const WeightSet* held_ = nullptr;
        std::atomic<const WeightSet*> hazard_{nullptr};
    };

private:
    /// Publishes `next` (its values and initial state filled in, the rest not), under the lock.
    void publish_locked(std::shared_ptr<WeightSet> next);
    /// Frees the retired versions that nobody holds. Under the lock.
    void reclaim_locked() const;
    std::unique_ptr<const DerivedCopies> make_derived(const WeightSet& set, int kind) const;

#if STREAMRNN_THREADS
    mutable std::mutex mutex_;
#endif
    Derive derive_;
    std::shared_ptr<WeightSet> owner_;             ///< the current version
    std::atomic<const WeightSet*> current_{nullptr};  ///< owner_.get(), for lock-free readers
    mutable std::vector<std::shared_ptr<WeightSet>> retired_;
    mutable std::vector<const std::atomic<const WeightSet*>*> hazards_;
    mutable std::array<int, WeightSet::kinds> readers_{};  ///< Readers of each kind
};

}  // namespace streamrnn::detail
