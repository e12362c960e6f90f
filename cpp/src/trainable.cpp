// cpp/src/trainable.cpp: Trainable's parameter table and gradient buffer.
// Part of streamrnn, MIT licence.
#include "streamrnn/trainable.hpp"

#include "sizes.hpp"

#include <algorithm>
#include <limits>

namespace streamrnn {

Trainable::Trainable(std::vector<TensorInfo> tensors) : tensors_(std::move(tensors))
{
    // Checked: on a 32-bit host one weight of sizes that each pass their checks (W_ih of an LSTM
    // with I = H = 2^16) has more floats than size_t counts. Shapes are made from ints.
    Index offset = 0;
    for (TensorInfo& tensor : tensors_) {
        Index size = 1;
        for (long long n : tensor.shape)
            size = checked_size({size, static_cast<Index>(n)});
        if (size > std::numeric_limits<Index>::max() - offset)
            raise_too_large("the buffer of all weights");
        tensor.size = static_cast<std::size_t>(size);
        tensor.offset = static_cast<std::size_t>(offset);
        offset += size;
    }
    parameters_.assign(static_cast<std::size_t>(offset), 0.0f);
}

const TensorInfo* Trainable::find(const std::string& name) const
{
    for (const TensorInfo& info : tensors_)
        if (info.name == name)
            return &info;
    return nullptr;
}

float* Trainable::gradient_buffer()
{
    if (gradients_.empty())
        gradients_.assign(parameters_.size(), 0.0f);
    return gradients_.data();
}

void Trainable::zero_grad() { std::fill(gradients_.begin(), gradients_.end(), 0.0f); }

void Trainable::add_gradients(const float* values)
{
    float* gradients = gradient_buffer();
    for (std::size_t i = 0; i < parameters_.size(); ++i)
        gradients[i] += values[i];
}

ParameterBlock Trainable::block()
{
    ++version_;
    return {parameters_.data(), gradients_.empty() ? nullptr : gradients_.data(), parameters_.size()};
}

}  // namespace streamrnn
