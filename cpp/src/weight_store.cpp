// cpp/src/weight_store.cpp: publishing versions of the weights, and reclaiming the old ones once
// no reader holds them. Part of streamrnn, MIT licence.
#include "weight_store.hpp"

#include <algorithm>

namespace streamrnn::detail {

namespace {

#if STREAMRNN_THREADS
using Lock = std::lock_guard<std::mutex>;
#define STREAMRNN_LOCK(mutex) const Lock lock(mutex)
#else
#define STREAMRNN_LOCK(mutex) (void)0
#endif

}  // namespace

WeightStore::WeightStore(Buffer initial) : owner_(std::make_shared<WeightSet>())
{
    owner_->values = std::move(initial);
    current_.store(owner_.get(), std::memory_order_release);
}

WeightStore::~WeightStore() = default;

std::shared_ptr<const WeightSet> WeightStore::current() const
{
    STREAMRNN_LOCK(mutex_);
    return owner_;
}

std::unique_ptr<const DerivedCopies> WeightStore::make_derived(const WeightSet& set, int kind) const
{
    return derive_ ? derive_(set, kind) : nullptr;
}

void WeightStore::publish(Buffer values)
{
    auto next = std::make_shared<WeightSet>();
    next->values = std::move(values);
    STREAMRNN_LOCK(mutex_);
    next->initial = owner_->initial;
    publish_locked(std::move(next));
}

void WeightStore::publish_initial(Buffer initial)
{
    auto next = std::make_shared<WeightSet>();
    next->initial = std::move(initial);
    STREAMRNN_LOCK(mutex_);
    next->values = owner_->values;
    publish_locked(std::move(next));
}

void WeightStore::publish_locked(std::shared_ptr<WeightSet> next)
{
    next->version = owner_->version + 1;
    // Real-time readers switch to it on their next call: their copies are made before they can.
    for (int kind = 0; kind < WeightSet::kinds; ++kind)
        if (readers_[static_cast<std::size_t>(kind)] > 0) {
            next->owned[static_cast<std::size_t>(kind)] = make_derived(*next, kind);
            next->derived[static_cast<std::size_t>(kind)].store(next->owned[static_cast<std::size_t>(kind)].get(),
                                                               std::memory_order_relaxed);
        }
    retired_.reserve(retired_.size() + 1);  // the one step below that could throw, before any change
    current_.store(next.get(), std::memory_order_seq_cst);
    retired_.push_back(std::move(owner_));
    owner_ = std::move(next);
    reclaim_locked();
}

const DerivedCopies* WeightStore::derived(const WeightSet& set, int kind) const
{
    const auto k = static_cast<std::size_t>(kind);
    if (const DerivedCopies* made = set.derived[k].load(std::memory_order_acquire))
        return made;
    STREAMRNN_LOCK(mutex_);
    if (!set.owned[k]) {
        set.owned[k] = make_derived(set, kind);
        set.derived[k].store(set.owned[k].get(), std::memory_order_release);
    }
    return set.owned[k].get();
}

void WeightStore::reclaim_locked() const
{
    // seq_cst, paired with the readers' hazard stores and their second read of current_: a reader
    // that has stored a version here before this scan keeps it, and one that stores it after will
    // read current_ again, see the newer version and move to it.
    auto held = [&](const WeightSet* set) {
        return std::any_of(hazards_.begin(), hazards_.end(),
                           [&](const std::atomic<const WeightSet*>* hazard) {
                               return hazard->load(std::memory_order_seq_cst) == set;
                           });
    };
    // A handle may hold one still: it frees it when it lets go.
    retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                  [&](const std::shared_ptr<WeightSet>& set) { return !held(set.get()); }),
                   retired_.end());
}

WeightStore::Reader::Reader(const WeightStore& store, int kind) : store_(&store), kind_(kind)
{
    STREAMRNN_LOCK(store.mutex_);
    store.hazards_.reserve(store.hazards_.size() + 1);
    if (kind >= 0) {
        const WeightSet& set = *store.owner_;
        const auto k = static_cast<std::size_t>(kind);
        if (!set.owned[k]) {
            set.owned[k] = store.make_derived(set, kind);
            set.derived[k].store(set.owned[k].get(), std::memory_order_release);
        }
        ++store.readers_[k];
    }
    held_ = store.owner_.get();
    hazard_.store(held_, std::memory_order_seq_cst);
    store.hazards_.push_back(&hazard_);
}

WeightStore::Reader::~Reader()
{
    STREAMRNN_LOCK(store_->mutex_);
    auto& hazards = store_->hazards_;
    hazards.erase(std::find(hazards.begin(), hazards.end(), &hazard_));
    if (kind_ >= 0)
        --store_->readers_[static_cast<std::size_t>(kind_)];
    store_->reclaim_locked();
}

const WeightSet& WeightStore::Reader::switch_to(const WeightSet* now) noexcept
{
    for (;;) {
        hazard_.store(now, std::memory_order_seq_cst);
        const WeightSet* again = store_->current_.load(std::memory_order_seq_cst);
        if (again == now) {  // named before any writer could retire it and scan the slots
            held_ = now;
            return *held_;
        }
        now = again;
    }
}

}  // namespace streamrnn::detail
