// cpp/include/streamrnn/optim.hpp: gradient clipping and the SGD and Adam(W) optimizers.
// Part of streamrnn, MIT licence.
#pragma once

#include "trainable.hpp"
#include "types.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace streamrnn {

/// A block of trainable values and their accumulated gradients, in memory the caller owns for
/// the call. grads is null while the block has no gradient yet; optimizers then leave it alone,
/// and values may be null for calls that read gradients only (clipping).
struct ParameterBlock {
    float* values = nullptr;
    float* grads = nullptr;
    std::size_t size = 0;
};

/// The modules a clipping call or an optimizer step works on, each at most once. The overloads
/// that take them hold each module's gradients for the call (Trainable::lease_gradients:
/// ConcurrencyError when a backward or another such call on another thread holds them) and
/// publish each module's new weights whole (Trainable::Update): the safe way to train models that
/// other threads run. The overloads that take blocks do neither: the caller owns the memory.
using Modules = std::vector<Trainable*>;

/// The `norm_type`-norm of all gradients together (infinity: the largest magnitude); when it
/// exceeds max_norm, every gradient is scaled by max_norm / (norm + 1e-6). Returns the norm before
/// clipping, as torch.nn.utils.clip_grad_norm_. ArgumentError for a max_norm that is negative or
/// NaN, or a norm_type that is not positive.
double clip_grad_norm(const std::vector<ParameterBlock>& blocks, double max_norm, double norm_type = 2.0);
double clip_grad_norm(const Modules& modules, double max_norm, double norm_type = 2.0);

/// Clamps every gradient to [-clip_value, clip_value], as torch.nn.utils.clip_grad_value_.
void clip_grad_value(const std::vector<ParameterBlock>& blocks, double clip_value);
void clip_grad_value(const Modules& modules, double clip_value);

/// torch.optim.SGD's update, block by block:
///   g = grad + weight_decay * p;  buf = g (first step) or momentum * buf + (1 - dampening) * g;
///   g = nesterov ? g + momentum * buf : buf (with momentum);  p -= lr * g  (+= when maximize).
struct SGDOptions {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
    bool maximize = false;
};

class SGD {
public:
    /// Throws ArgumentError for a negative rate, momentum or weight decay, or nesterov without
    /// momentum or with dampening (PyTorch's rules).
    explicit SGD(const SGDOptions& options);
    /// The same blocks, in the same order, at every step (ArgumentError otherwise).
    void step(const std::vector<ParameterBlock>& blocks);
    void step(const Modules& modules);

    const SGDOptions& options() const { return options_; }
    /// Per block: the momentum buffer, empty before the block's first step with momentum.
    std::vector<Buffer>& momentum_buffers() { return buffers_; }

private:
    SGDOptions options_;
    std::vector<Buffer> buffers_;
};

/// torch.optim.Adam's update (AdamW's with decoupled_weight_decay), block by block, at step t:
///   p *= 1 - lr * weight_decay (decoupled), or g = grad + weight_decay * p;
///   m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2  (amsgrad: v_max = max(v_max, v));
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool amsgrad = false;
    bool decoupled_weight_decay = false;
    bool maximize = false;
};

class Adam {
public:
    /// Throws ArgumentError for a negative rate, eps or weight decay, or betas outside [0, 1).
    explicit Adam(const AdamOptions& options);
    /// The same blocks, in the same order, at every step (ArgumentError otherwise).
    void step(const std::vector<ParameterBlock>& blocks);
    void step(const Modules& modules);

    const AdamOptions& options() const { return options_; }
    /// Per block: steps taken, first and second moments (and their running maximum with amsgrad),
    /// the moments empty before the block's first step.
    struct BlockState {
        std::int64_t steps = 0;
        Buffer exp_avg;
        Buffer exp_avg_sq;
        Buffer max_exp_avg_sq;
    };
    std::vector<BlockState>& state() { return state_; }

private:
    AdamOptions options_;
    std::vector<BlockState> state_;
};

}  // namespace streamrnn
