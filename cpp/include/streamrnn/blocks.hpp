// cpp/include/streamrnn/blocks.hpp: the blocks around a recurrent model: Linear, Embedding, Dropout.
// Part of streamrnn, MIT licence.
#pragma once

#include "trainable.hpp"
#include "types.hpp"

#include <cstdint>
#include <random>
#include <vector>

namespace streamrnn {

/// y = x W^T + b, as torch.nn.Linear: tensors weight [out, in] and bias [out].
/// Threads: forward() may run on any number of threads (it holds one version of the weights); the
/// training record (forward_train, backward) is for one thread at a time, as Embedding's and
/// Dropout's are.
class Linear : public Trainable {
public:
    /// Weight and bias from uniform(-1/sqrt(in), 1/sqrt(in)), PyTorch's initialisation.
    /// Throws ArgumentError for a size outside [1, 2^24].
    Linear(int in_features, int out_features, bool bias, std::uint64_t seed);

    int in_features() const { return in_; }
    int out_features() const { return out_; }
    bool has_bias() const { return bias_; }

    /// x [N, in] -> y [N, out].
    void forward(const float* x, Index N, float* y) const;
    /// forward(), keeping x for backward().
    void forward_train(const float* x, Index N, float* y);
    /// dy [N, out] -> dx [N, in] (null: not wanted); dW += dy^T x, db += the column sums of dy.
    /// Throws ArgumentError without a training forward.
    void backward(const float* dy, float* dx);
    /// Rows of the last training forward; ArgumentError without one.
    Index recorded_rows() const;

private:
    int in_;
    int out_;
    bool bias_;
    Buffer input_;
    Index rows_ = -1;
};

/// Rows of a table looked up by integer id, as torch.nn.Embedding: tensor weight [num, dim].
class Embedding : public Trainable {
public:
    /// Weight from N(0, 1), PyTorch's initialisation; the padding row (if padding_idx >= 0) is
    /// zero and gets no gradient. Throws ArgumentError for sizes outside [1, 2^24] or a
    /// padding_idx outside [-1, num).
    Embedding(int num_embeddings, int embedding_dim, int padding_idx, std::uint64_t seed);

    int num_embeddings() const { return num_; }
    int embedding_dim() const { return dim_; }
    int padding_idx() const { return padding_idx_; }

    /// Throws std::out_of_range naming the first id outside [0, num).
    void check_ids(const std::int64_t* ids, Index N) const;
    /// ids [N] -> y [N, dim]; ids must have passed check_ids.
    void forward(const std::int64_t* ids, Index N, float* y) const;
    /// forward(), keeping the ids for backward().
    void forward_train(const std::int64_t* ids, Index N, float* y);
    /// dW[id] += dy[row] for each row but the padding id's. Throws ArgumentError without a
    /// training forward.
    void backward(const float* dy);
    /// Ids of the last training forward; ArgumentError without one.
    Index recorded_rows() const;

private:
    int num_;
    int dim_;
    int padding_idx_;
    std::vector<std::int64_t> ids_;
    bool recorded_ = false;
};

/// Inverted dropout, as torch.nn.Dropout: in training each element is kept with probability
/// 1 - p and scaled by 1 / (1 - p); outside training it is the identity.
class Dropout {
public:
    /// Throws ArgumentError for p outside [0, 1].
    Dropout(double p, std::uint64_t seed);
    double p() const { return p_; }
    /// x [n] -> y [n] with a new mask, kept for backward().
    void forward_train(const float* x, Index n, float* y);
    /// dy [n] -> dx [n] through the last mask. Throws ArgumentError without a training forward.
    void backward(const float* dy, float* dx) const;
    /// Elements of the last training forward; ArgumentError without one.
    Index recorded_size() const;

private:
    double p_;
    std::mt19937_64 engine_;
    Buffer mask_;
    bool recorded_ = false;
};

/// Mean cross-entropy of logits [N, C] against class ids [N], as torch.nn.functional.cross_entropy:
/// rows whose target is ignore_index, or whose weight (mask [N], or null for all 1) is 0, count
/// for nothing, and the mean is over the weights of the others (0 / 0 = NaN when none counts).
/// Writes dL/dlogits [N, C]. Throws std::out_of_range for a counted target outside [0, C).
double cross_entropy(const float* logits, Index N, Index C, const std::int64_t* targets, std::int64_t ignore_index,
                     const float* mask, float* dlogits);

/// Mean squared error over n elements, as torch.nn.functional.mse_loss; writes dL/dprediction.
double mse_loss(const float* prediction, const float* target, Index n, float* dprediction);

}  // namespace streamrnn
