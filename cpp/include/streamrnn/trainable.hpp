// cpp/include/streamrnn/trainable.hpp: Trainable, named weights published whole, version by
// version, and the gradients accumulated for them. Part of streamrnn, MIT licence.
#pragma once

#include "types.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace streamrnn {

struct ModelAccess;

namespace detail {
struct WeightSet;
class WeightStore;
struct TrainableState;
}  // namespace detail

/// One named tensor: PyTorch's name and shape, and where it sits in the parameter buffer.
struct TensorInfo {
    std::string name;              ///< "weight_ih_l0", "bias_hh_l1_reverse", "weight", ...
    std::vector<long long> shape;  ///< e.g. [G, I_l]
    std::size_t offset = 0;        ///< in floats
    std::size_t size = 0;          ///< in floats
};

/// Anything with trainable weights (a recurrent Model, Linear, Embedding): its tensors laid out
/// one after another in one buffer, in state_dict order, and the gradients accumulated for them
/// in a second buffer of the same layout, so that optimizers and clipping see one block.
///
/// Threads: the weights change only by whole versions. A write (set_parameters, an Update's
/// commit, an optimizer step) publishes a new version at once; every call that reads the weights
/// (a forward, a stream's step, a save) holds one version from start to end, so it sees the old
/// weights or the new ones, never a mix, and writes may come from any thread at any time. The
/// gradients are for one call at a time: backward, zero_grad, add_gradients, clipping and
/// optimizer steps each hold them while they run, and one that overlaps another on a second
/// thread raises ConcurrencyError naming both.
class Trainable {
public:
    virtual ~Trainable();
    Trainable(Trainable&&) noexcept;
    Trainable& operator=(Trainable&&) noexcept;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    /// The tensor called `name`, or null.
    const TensorInfo* find(const std::string& name) const;
    std::size_t parameter_count() const { return count_; }

    /// One version of the weights, unchanged for as long as the handle lives.
    class Weights {
    public:
        const float* data() const noexcept;
        std::size_t size() const noexcept;
        /// Goes up by one with each version (see Trainable::version).
        std::uint64_t version() const noexcept;

    private:
        friend class Trainable;
        std::shared_ptr<const detail::WeightSet> set_;
    };
    /// The current version, held. Takes a lock: not for a real-time thread.
    Weights weights() const;
    /// The current version's values: valid until the next write. Where another thread may
    /// write, hold weights() instead.
    const float* parameters() const noexcept;
    /// The current version's number: 0 at construction, one more with every write.
    std::uint64_t version() const noexcept;

    /// Replaces every weight with `values`, parameter_count() floats laid out as tensors(), as one
    /// new version.
    void set_parameters(const float* values);

    /// A write of some weights: a private copy of the current version to change, published whole
    /// by commit() and dropped otherwise. Writers on several threads commit one after another,
    /// each publishing its own copy: the last commit wins.
    class Update {
    public:
        Update(Update&&) noexcept;
        Update& operator=(Update&&) noexcept;
        ~Update();
        float* data() noexcept { return values_.data(); }
        std::size_t size() const noexcept { return values_.size(); }
        /// Publishes the copy as the next version; the update is empty after.
        void commit();

    private:
        friend class Trainable;
        Update(detail::WeightStore& store, Buffer values);
        detail::WeightStore* store_;
        Buffer values_;
    };
    Update update();

    /// The gradients for the call `call` ("backward", "zero_grad", ...), held until the lease
    /// ends; ConcurrencyError naming both calls when another call holds them.
    class GradientLease {
    public:
        GradientLease(GradientLease&&) noexcept;
        GradientLease& operator=(GradientLease&&) = delete;
        ~GradientLease();
        /// The gradients, laid out as the parameters; null before the first backward unless made.
        float* data() noexcept;
        /// Makes the gradient buffer (zeros) if there is none yet, and returns it.
        float* make();
        std::size_t size() const noexcept;

    private:
        friend class Trainable;
        explicit GradientLease(detail::TrainableState& state);
        detail::TrainableState* state_;
    };
    GradientLease lease_gradients(const char* call);

    /// Accumulated gradients: empty until the first backward. Reading them while another thread
    /// runs a backward races: hold lease_gradients() for that.
    const Buffer& gradients() const;
    void zero_grad();
    /// Adds parameter_count() gradients, laid out as the parameters (computed elsewhere: on a GPU).
    void add_gradients(const float* values);

protected:
    friend struct ModelAccess;  // the engine's streams read the store (cpp/src)

    /// Zero parameters for `tensors`, whose offsets it assigns in order.
    explicit Trainable(std::vector<TensorInfo> tensors);

    /// The store of the weights' versions (cpp/src/weight_store.hpp), for the engine's readers.
    detail::WeightStore& store() const;

    /// uniform(-bound, bound) for every float of `tensor`, from `engine`, the same on every
    /// platform; into `values`, laid out as the parameters.
    template <typename Engine>
    static void fill_uniform(float* values, const TensorInfo& tensor, float bound, Engine& engine)
    {
        for (std::size_t i = 0; i < tensor.size; ++i) {
            const float unit = static_cast<float>(engine() >> 40) * (1.0f / 16777216.0f);
            values[tensor.offset + i] = (2.0f * unit - 1.0f) * bound;
        }
    }

    std::vector<TensorInfo> tensors_;

private:
    std::size_t count_ = 0;
    std::unique_ptr<detail::TrainableState> state_;
};

}  // namespace streamrnn
