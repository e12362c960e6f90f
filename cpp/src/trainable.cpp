// cpp/src/trainable.cpp: Trainable's parameter table and gradient buffer.
// Part of streamrnn, MIT licence.
#include "streamrnn/trainable.hpp"

#include <algorithm>

namespace streamrnn {

Trainable::Trainable(std::vector<TensorInfo> tensors) : tensors_(std::move(tensors))
{
    std::size_t offset = 0;
    for (TensorInfo& tensor : tensors_) {
        tensor.size = 1;
        for (long long n : tensor.shape)
            tensor.size *= static_cast<std::size_t>(n);
        tensor.offset = offset;
        offset += tensor.size;
    }
    parameters_.assign(offset, 0.0f);
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

ParameterBlock Trainable::block()
{
    ++version_;
    return {parameters_.data(), gradients_.empty() ? nullptr : gradients_.data(), parameters_.size()};
}

}  // namespace streamrnn
