// cpp/src/optim.cpp: gradient clipping, SGD and Adam(W), each update as PyTorch writes it.
// Part of streamrnn, MIT licence.
#include "streamrnn/optim.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace streamrnn {

namespace {

void require(bool ok, const std::string& message)
{
    if (!ok)
        raise(ErrorKind::argument, message);
}

/// Optimizer state is per block, so the blocks must be the same ones at every step.
void check_blocks(std::size_t known, const std::vector<ParameterBlock>& blocks)
{
    require(known == blocks.size(), "step: the optimizer was made for " + std::to_string(known) +
                                        " parameter blocks, got " + std::to_string(blocks.size()));
}

/// A state buffer for a block of `size`: created zero on first use; a size that changed means
/// another module took the block's place.
void size_state(Buffer& buffer, std::size_t size)
{
    if (buffer.empty())
        buffer.assign(size, 0.0f);
    require(buffer.size() == size, "step: a parameter block changed size from " + std::to_string(buffer.size()) +
                                       " to " + std::to_string(size));
}

/// The gradients of `modules`, held for the call `call`, as blocks (values null). ArgumentError for a
/// module named twice.
struct HeldGradients {
    HeldGradients(const Modules& modules, const char* call)
    {
        for (std::size_t k = 0; k < modules.size(); ++k) {
            require(modules[k] != nullptr, std::string(call) + ": module " + std::to_string(k) + " is null");
            for (std::size_t j = 0; j < k; ++j)
                require(modules[j] != modules[k], std::string(call) + ": module " + std::to_string(k) +
                                                      " is module " + std::to_string(j) + " again");
        }
        leases.reserve(modules.size());
        for (Trainable* module : modules) {
            leases.push_back(module->lease_gradients(call));
            blocks.push_back({nullptr, leases.back().data(), module->parameter_count()});
        }
    }
    std::vector<Trainable::GradientLease> leases;
    std::vector<ParameterBlock> blocks;
};

/// One step of `optimizer` over `modules`: each module's new weights made in a copy of its own
/// and published whole once the step is done.
template <typename Optimizer>
void step_modules(Optimizer& optimizer, const Modules& modules)
{
    HeldGradients held(modules, "optimizer step");
    std::vector<Trainable::Update> updates;
    updates.reserve(modules.size());
    for (std::size_t k = 0; k < modules.size(); ++k)
        if (held.blocks[k].grads) {  // a module without gradients is left alone
            updates.push_back(modules[k]->update());
            held.blocks[k].values = updates.back().data();
        }
    optimizer.step(held.blocks);
    for (Trainable::Update& update : updates)
        update.commit();
}

}  // namespace

double clip_grad_norm(const Modules& modules, double max_norm, double norm_type)
{
    HeldGradients held(modules, "clip_grad_norm");
    return clip_grad_norm(held.blocks, max_norm, norm_type);
}

void clip_grad_value(const Modules& modules, double clip_value)
{
    HeldGradients held(modules, "clip_grad_value");
    clip_grad_value(held.blocks, clip_value);
}

void SGD::step(const Modules& modules) { step_modules(*this, modules); }
void Adam::step(const Modules& modules) { step_modules(*this, modules); }

double clip_grad_norm(const std::vector<ParameterBlock>& blocks, double max_norm, double norm_type)
{
    require(norm_type > 0.0, "norm_type: expected a positive number, got " + std::to_string(norm_type));
    require(max_norm >= 0.0, "max_norm: expected a non-negative number, got " + std::to_string(max_norm));
    const bool infinity = std::isinf(norm_type);
    double total = 0.0;
    for (const ParameterBlock& block : blocks) {
        if (!block.grads)
            continue;
        for (std::size_t i = 0; i < block.size; ++i) {
            const double g = std::abs(static_cast<double>(block.grads[i]));
            total = infinity ? std::max(total, g) : total + std::pow(g, norm_type);
        }
    }
    const double norm = infinity ? total : std::pow(total, 1.0 / norm_type);
    const double coefficient = max_norm / (norm + 1e-6);
    if (coefficient < 1.0)
        for (const ParameterBlock& block : blocks)
            if (block.grads)
                for (std::size_t i = 0; i < block.size; ++i)
                    block.grads[i] = static_cast<float>(block.grads[i] * coefficient);
    return norm;
}

void clip_grad_value(const std::vector<ParameterBlock>& blocks, double clip_value)
{
    require(clip_value >= 0.0, "clip_value: expected a non-negative number, got " + std::to_string(clip_value));
    const auto clip = static_cast<float>(clip_value);
    for (const ParameterBlock& block : blocks)
        if (block.grads)
            for (std::size_t i = 0; i < block.size; ++i)
                block.grads[i] = std::clamp(block.grads[i], -clip, clip);
}

SGD::SGD(const SGDOptions& options) : options_(options)
{
    require(options.lr >= 0.0, "lr: expected a non-negative learning rate, got " + std::to_string(options.lr));
    require(options.momentum >= 0.0, "momentum: expected a non-negative value, got " + std::to_string(options.momentum));
    require(options.weight_decay >= 0.0,
            "weight_decay: expected a non-negative value, got " + std::to_string(options.weight_decay));
    require(!options.nesterov || (options.momentum > 0.0 && options.dampening == 0.0),
            "nesterov: needs momentum > 0 and dampening == 0");
}

void SGD::step(const std::vector<ParameterBlock>& blocks)
{
    if (buffers_.empty())
        buffers_.resize(blocks.size());
    check_blocks(buffers_.size(), blocks);
    const auto lr = static_cast<float>(options_.lr);
    const auto momentum = static_cast<float>(options_.momentum);
    const auto dampening = static_cast<float>(options_.dampening);
    const auto weight_decay = static_cast<float>(options_.weight_decay);
    for (std::size_t k = 0; k < blocks.size(); ++k) {
        const ParameterBlock& block = blocks[k];
        if (!block.grads)
            continue;
        Buffer& buffer = buffers_[k];
        const bool first = buffer.empty();
        if (momentum != 0.0f)
            size_state(buffer, block.size);
        for (std::size_t i = 0; i < block.size; ++i) {
            float g = options_.maximize ? -block.grads[i] : block.grads[i];
            if (weight_decay != 0.0f)
                g += weight_decay * block.values[i];
            if (momentum != 0.0f) {
                buffer[i] = first ? g : momentum * buffer[i] + (1.0f - dampening) * g;
                g = options_.nesterov ? g + momentum * buffer[i] : buffer[i];
            }
            block.values[i] -= lr * g;
        }
    }
}

Adam::Adam(const AdamOptions& options) : options_(options)
{
    require(options.lr >= 0.0, "lr: expected a non-negative learning rate, got " + std::to_string(options.lr));
    require(options.eps >= 0.0, "eps: expected a non-negative value, got " + std::to_string(options.eps));
    require(options.beta1 >= 0.0 && options.beta1 < 1.0,
            "betas: expected beta1 in [0, 1), got " + std::to_string(options.beta1));
    require(options.beta2 >= 0.0 && options.beta2 < 1.0,
            "betas: expected beta2 in [0, 1), got " + std::to_string(options.beta2));
    require(options.weight_decay >= 0.0,
            "weight_decay: expected a non-negative value, got " + std::to_string(options.weight_decay));
}

void Adam::step(const std::vector<ParameterBlock>& blocks)
{
    if (state_.empty())
        state_.resize(blocks.size());
    check_blocks(state_.size(), blocks);
    const AdamOptions& o = options_;
    for (std::size_t k = 0; k < blocks.size(); ++k) {
        const ParameterBlock& block = blocks[k];
        if (!block.grads)
            continue;
        BlockState& s = state_[k];
        size_state(s.exp_avg, block.size);
        size_state(s.exp_avg_sq, block.size);
        if (o.amsgrad)
            size_state(s.max_exp_avg_sq, block.size);
        ++s.steps;
        // The scalars in double, the elements in float, as PyTorch computes them.
        const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(s.steps));
        const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(s.steps));
        const auto step_size = static_cast<float>(o.lr / bias_correction1);
        const auto bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
        const auto decay = static_cast<float>(o.weight_decay);
        const auto one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
        const auto beta2 = static_cast<float>(o.beta2);
        const auto one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
        const auto eps = static_cast<float>(o.eps);
        const auto shrink = static_cast<float>(1.0 - o.lr * o.weight_decay);
        for (std::size_t i = 0; i < block.size; ++i) {
            float& p = block.values[i];
            float g = o.maximize ? -block.grads[i] : block.grads[i];
            if (decay != 0.0f) {
                if (o.decoupled_weight_decay)
                    p *= shrink;
                else
                    g += decay * p;
            }
            float& m = s.exp_avg[i];
            float& v = s.exp_avg_sq[i];
            // torch.lerp's two forms, by the side of 0.5 the weight is on
            m = one_minus_beta1 < 0.5f ? m + one_minus_beta1 * (g - m) : g - (g - m) * (1.0f - one_minus_beta1);
            v = v * beta2 + one_minus_beta2 * g * g;
            float second = v;
            if (o.amsgrad) {
                s.max_exp_avg_sq[i] = std::max(s.max_exp_avg_sq[i], v);
                second = s.max_exp_avg_sq[i];
            }
            p -= step_size * (m / (std::sqrt(second) / bias_correction2_sqrt + eps));
        }
    }
}

}  // namespace streamrnn
