// cpp/src/blocks.cpp: Linear, Embedding, Dropout and the losses, forward next to backward.
// Part of streamrnn, MIT licence.
#include "streamrnn/blocks.hpp"

#include "streamrnn/errors.hpp"

#include "views.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace streamrnn {

namespace {

constexpr int max_size = 1 << 24;

int checked_size(const char* name, int value)
{
    if (value < 1 || value > max_size)
        raise(ErrorKind::argument,
              std::string(name) + ": expected an integer in [1, " + std::to_string(max_size) + "], got " +
                  std::to_string(value));
    return value;
}

std::vector<TensorInfo> linear_tensors(int in, int out, bool bias)
{
    std::vector<TensorInfo> tensors{{"weight", {checked_size("out_features", out), checked_size("in_features", in)}}};
    if (bias)
        tensors.push_back({"bias", {out}});
    return tensors;
}

}  // namespace

// ---- Linear: y = x W^T + b ----------------------------------------------------------------

Linear::Linear(int in_features, int out_features, bool bias, std::uint64_t seed)
    : Trainable(linear_tensors(in_features, out_features, bias)), in_(in_features), out_(out_features), bias_(bias)
{
    // kaiming_uniform(a = sqrt(5)) for the weight and uniform(+-1/sqrt(in)) for the bias: both
    // bounds come to 1/sqrt(in).
    std::mt19937_64 engine(seed);
    const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
    Update initial = update();
    for (const TensorInfo& tensor : tensors_)
        fill_uniform(initial.data(), tensor, bound, engine);
    initial.commit();
}

void Linear::forward(const float* x, Index N, float* y) const
{
    const Weights weights = this->weights();  // one version throughout, whatever other threads write
    auto out = mat(y, N, out_);
    out.noalias() = mat(x, N, in_) * mat(weights.data(), out_, in_).transpose();
    if (bias_)
        out.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(weights.data() + Index(out_) * in_, out_);
}

void Linear::forward_train(const float* x, Index N, float* y)
{
    input_.assign(x, x + N * in_);
    rows_ = N;
    forward(x, N, y);
}

Index Linear::recorded_rows() const
{
    if (rows_ < 0)
        raise_no_training_forward("Linear");
    return rows_;
}

void Linear::backward(const float* dy, float* dx)
{
    const ConstMatMap d_out = mat(dy, recorded_rows(), out_);
    GradientLease lease = lease_gradients("backward");
    float* grads = lease.make();
    mat(grads, out_, in_).noalias() += d_out.transpose() * mat(input_.data(), rows_, in_);
    if (bias_)
        mat(grads + Index(out_) * in_, 1, out_) += d_out.colwise().sum();
    if (dx)
        mat(dx, rows_, in_).noalias() = d_out * mat(weights().data(), out_, in_);
}

// ---- Embedding: y = W[ids] ----------------------------------------------------------------

Embedding::Embedding(int num_embeddings, int embedding_dim, int padding_idx, std::uint64_t seed)
    : Trainable({{"weight", {checked_size("num_embeddings", num_embeddings), checked_size("embedding_dim", embedding_dim)}}}),
      num_(num_embeddings), dim_(embedding_dim), padding_idx_(padding_idx)
{
    if (padding_idx < -1 || padding_idx >= num_embeddings)
        raise(ErrorKind::argument,
              "padding_idx: expected an id in [0, " + std::to_string(num_embeddings) + ") or none, got " +
                  std::to_string(padding_idx));
    // N(0, 1) by Box-Muller over uniform floats made by hand, the same on every platform.
    std::mt19937_64 engine(seed);
    auto uniform = [&] { return (static_cast<double>(engine() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
    Update initial = update();
    for (std::size_t i = 0; i < initial.size(); ++i)
        initial.data()[i] =
            static_cast<float>(std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()));
    if (padding_idx >= 0)
        mat(initial.data() + Index(padding_idx) * dim_, 1, dim_).setZero();
    initial.commit();
}

void Embedding::check_ids(const std::int64_t* ids, Index N) const
{
    for (Index i = 0; i < N; ++i)
        if (ids[i] < 0 || ids[i] >= num_)
            raise(ErrorKind::range,
                  "ids: expected ids in [0, " + std::to_string(num_) + ") (num_embeddings), got " +
                      std::to_string(ids[i]) + " at position " + std::to_string(i));
}

void Embedding::forward(const std::int64_t* ids, Index N, float* y) const
{
    const Weights weights = this->weights();
    for (Index i = 0; i < N; ++i)
        mat(y + i * dim_, 1, dim_) = mat(weights.data() + ids[i] * dim_, 1, dim_);
}

void Embedding::forward_train(const std::int64_t* ids, Index N, float* y)
{
    ids_.assign(ids, ids + N);
    recorded_ = true;
    forward(ids, N, y);
}

Index Embedding::recorded_rows() const
{
    if (!recorded_)
        raise_no_training_forward("Embedding");
    return static_cast<Index>(ids_.size());
}

void Embedding::backward(const float* dy)
{
    recorded_rows();
    GradientLease lease = lease_gradients("backward");
    float* grads = lease.make();
    for (std::size_t i = 0; i < ids_.size(); ++i)
        if (ids_[i] != padding_idx_)
            mat(grads + ids_[i] * dim_, 1, dim_) += mat(dy + Index(i) * dim_, 1, dim_);
}

// ---- Dropout --------------------------------------------------------------------------------

Dropout::Dropout(double p, std::uint64_t seed) : p_(p), engine_(seed)
{
    if (!(p >= 0.0 && p <= 1.0))
        raise(ErrorKind::argument, "p: expected a probability in [0, 1], got " + std::to_string(p));
}

void Dropout::forward_train(const float* x, Index n, float* y)
{
    mask_.resize(static_cast<std::size_t>(n));
    const double keep = 1.0 - p_;
    const float scale = keep > 0.0 ? static_cast<float>(1.0 / keep) : 0.0f;
    std::bernoulli_distribution kept(keep);
    for (Index i = 0; i < n; ++i) {
        mask_[static_cast<std::size_t>(i)] = kept(engine_) ? scale : 0.0f;
        y[i] = x[i] * mask_[static_cast<std::size_t>(i)];
    }
    recorded_ = true;
}

Index Dropout::recorded_size() const
{
    if (!recorded_)
        raise_no_training_forward("Dropout");
    return static_cast<Index>(mask_.size());
}

void Dropout::backward(const float* dy, float* dx) const
{
    recorded_size();
    for (std::size_t i = 0; i < mask_.size(); ++i)
        dx[i] = dy[i] * mask_[i];
}

// ---- Losses ---------------------------------------------------------------------------------

double cross_entropy(const float* logits, Index N, Index C, const std::int64_t* targets, std::int64_t ignore_index,
                     const float* mask, float* dlogits)
{
    auto weight_of = [&](Index i) { return targets[i] == ignore_index ? 0.0f : mask ? mask[i] : 1.0f; };
    double total_weight = 0.0;
    for (Index i = 0; i < N; ++i) {
        if (weight_of(i) == 0.0f)
            continue;
        if (targets[i] < 0 || targets[i] >= C)
            raise(ErrorKind::range,
                  "targets: expected class ids in [0, " + std::to_string(C) + ") or ignore_index, got " +
                      std::to_string(targets[i]) + " at position " + std::to_string(i));
        total_weight += weight_of(i);
    }
    // loss_i = logsumexp(x_i) - x_i[t_i];  dL/dx_i = w_i (softmax(x_i) - onehot(t_i)) / sum w
    double total = 0.0;
    for (Index i = 0; i < N; ++i) {
        const auto row = mat(logits + i * C, 1, C).array();
        auto d_row = mat(dlogits + i * C, 1, C).array();
        const float weight = weight_of(i);
        if (weight == 0.0f) {
            d_row.setZero();
            continue;
        }
        const float peak = row.maxCoeff();
        d_row = (row - peak).exp();
        const float sum = d_row.sum();
        total += weight * (std::log(static_cast<double>(sum)) + peak - logits[i * C + targets[i]]);
        const auto scale = static_cast<float>(weight / total_weight);
        d_row *= scale / sum;
        dlogits[i * C + targets[i]] -= scale;
    }
    return total / total_weight;
}

double mse_loss(const float* prediction, const float* target, Index n, float* dprediction)
{
    double total = 0.0;
    const float scale = 2.0f / static_cast<float>(n);
    for (Index i = 0; i < n; ++i) {
        const float difference = prediction[i] - target[i];
        total += static_cast<double>(difference) * difference;
        dprediction[i] = scale * difference;
    }
    return total / static_cast<double>(n);
}

}  // namespace streamrnn
