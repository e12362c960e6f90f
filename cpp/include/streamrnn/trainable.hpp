// cpp/include/streamrnn/trainable.hpp: Trainable, named weights in one buffer and their gradients.
// Part of streamrnn, MIT licence.
#pragma once

#include "optim.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace streamrnn {

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
class Trainable {
public:
    virtual ~Trainable() = default;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    /// The tensor called `name`, or null.
    const TensorInfo* find(const std::string& name) const;
    /// Writable access counts as a change of the weights (see version()).
    float* parameters()
    {
        ++version_;
        return parameters_.data();
    }
    const float* parameters() const { return parameters_.data(); }
    std::size_t parameter_count() const { return parameters_.size(); }

    /// Accumulated gradients: empty until the first backward.
    const Buffer& gradients() const { return gradients_; }
    /// The gradient buffer, made (zero) on first use; backward passes add into it.
    float* gradient_buffer();
    void zero_grad();
    /// Adds parameter_count() gradients, laid out as the parameters (computed elsewhere: on a GPU).
    void add_gradients(const float* values);
    /// The parameters and gradients for an optimizer (grads null before the first backward);
    /// counts as a change of the weights.
    ParameterBlock block();
    /// Goes up with every writable access to the weights (parameters(), block()): what a Stream
    /// compares to know when to refresh the copies of the weights it keeps.
    std::uint64_t version() const { return version_; }

protected:
    /// Zero parameters for `tensors`, whose offsets it assigns in order.
    explicit Trainable(std::vector<TensorInfo> tensors);
    Trainable(Trainable&&) noexcept = default;
    Trainable& operator=(Trainable&&) noexcept = default;

    /// uniform(-bound, bound) for every float of `tensor`, from `engine`, the same on every platform.
    template <typename Engine>
    void fill_uniform(const TensorInfo& tensor, float bound, Engine& engine)
    {
        for (std::size_t i = 0; i < tensor.size; ++i) {
            const float unit = static_cast<float>(engine() >> 40) * (1.0f / 16777216.0f);
            parameters_[tensor.offset + i] = (2.0f * unit - 1.0f) * bound;
        }
    }

    std::vector<TensorInfo> tensors_;
    Buffer parameters_;
    Buffer gradients_;
    std::uint64_t version_ = 0;
};

}  // namespace streamrnn
