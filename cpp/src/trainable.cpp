// cpp/src/trainable.cpp: Trainable's tensor table, its versions of the weights, and the gradients'
// lease. Part of streamrnn, MIT licence.
#include "streamrnn/trainable.hpp"

#include "exclusive.hpp"
#include "sizes.hpp"
#include "weight_store.hpp"

#include <algorithm>
#include <limits>

namespace streamrnn {

namespace detail {

struct TrainableState {
    explicit TrainableState(std::size_t count) : store(Buffer(count, 0.0f)) {}

    WeightStore store;
    Buffer gradients;
    Exclusive gradient_use;
};

}  // namespace detail

namespace {

/// The offsets of `tensors`, assigned in order; the total count.
std::size_t lay_out(std::vector<TensorInfo>& tensors)
{
    // Checked: on a 32-bit host one weight of sizes that each pass their checks (W_ih of an LSTM
    // with I = H = 2^16) has more floats than size_t counts. Shapes are made from ints.
    Index offset = 0;
    for (TensorInfo& tensor : tensors) {
        Index size = 1;
        for (long long n : tensor.shape)
            size = checked_size({size, static_cast<Index>(n)});
        if (size > std::numeric_limits<Index>::max() - offset)
            raise_too_large("the buffer of all weights");
        tensor.size = static_cast<std::size_t>(size);
        tensor.offset = static_cast<std::size_t>(offset);
        offset += size;
    }
    return static_cast<std::size_t>(offset);
}

}  // namespace

Trainable::Trainable(std::vector<TensorInfo> tensors) : tensors_(std::move(tensors))
{
    count_ = lay_out(tensors_);
    state_ = std::make_unique<detail::TrainableState>(count_);
}

Trainable::~Trainable() = default;
Trainable::Trainable(Trainable&&) noexcept = default;
Trainable& Trainable::operator=(Trainable&&) noexcept = default;

const TensorInfo* Trainable::find(const std::string& name) const
{
    for (const TensorInfo& info : tensors_)
        if (info.name == name)
            return &info;
    return nullptr;
}

detail::WeightStore& Trainable::store() const { return state_->store; }

const float* Trainable::Weights::data() const noexcept { return set_->values.data(); }
std::size_t Trainable::Weights::size() const noexcept { return set_->values.size(); }
std::uint64_t Trainable::Weights::version() const noexcept { return set_->version; }

Trainable::Weights Trainable::weights() const
{
    Weights weights;
    weights.set_ = state_->store.current();
    return weights;
}

const float* Trainable::parameters() const noexcept { return state_->store.latest().values.data(); }
std::uint64_t Trainable::version() const noexcept { return state_->store.latest().version; }

void Trainable::set_parameters(const float* values)
{
    state_->store.publish(Buffer(values, values + count_));
}

Trainable::Update::Update(detail::WeightStore& store, Buffer values) : store_(&store), values_(std::move(values)) {}
Trainable::Update::Update(Update&&) noexcept = default;
Trainable::Update& Trainable::Update::operator=(Update&&) noexcept = default;
Trainable::Update::~Update() = default;

void Trainable::Update::commit()
{
    if (!values_.empty())
        store_->publish(std::move(values_));
    values_ = Buffer();
}

Trainable::Update Trainable::update()
{
    // The copy is taken from a version held for it: a write committing meanwhile cannot tear it.
    const std::shared_ptr<const detail::WeightSet> now = state_->store.current();
    return Update(state_->store, Buffer(now->values.begin(), now->values.end()));
}

Trainable::GradientLease::GradientLease(detail::TrainableState& state) : state_(&state) {}
Trainable::GradientLease::GradientLease(GradientLease&& other) noexcept : state_(other.state_)
{
    other.state_ = nullptr;
}
Trainable::GradientLease::~GradientLease()
{
    if (state_)
        state_->gradient_use.release();
}
float* Trainable::GradientLease::data() noexcept
{
    return state_->gradients.empty() ? nullptr : state_->gradients.data();
}
float* Trainable::GradientLease::make()
{
    if (state_->gradients.empty())
        state_->gradients.assign(state_->store.latest().values.size(), 0.0f);
    return state_->gradients.data();
}
std::size_t Trainable::GradientLease::size() const noexcept { return state_->store.latest().values.size(); }

Trainable::GradientLease Trainable::lease_gradients(const char* call)
{
    Exclusive::Hold hold(state_->gradient_use, call, "this model's gradients");
    GradientLease lease(*state_);
    hold.pass_on();  // the lease releases them
    return lease;
}

const Buffer& Trainable::gradients() const { return state_->gradients; }

void Trainable::zero_grad()
{
    GradientLease lease = lease_gradients("zero_grad");
    std::fill(state_->gradients.begin(), state_->gradients.end(), 0.0f);
}

void Trainable::add_gradients(const float* values)
{
    GradientLease lease = lease_gradients("add_gradients");
    float* gradients = lease.make();
    for (std::size_t i = 0; i < count_; ++i)
        gradients[i] += values[i];
}

}  // namespace streamrnn
