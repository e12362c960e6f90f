// cpp/include/streamrnn/model.hpp: Model, the weights of a stack of layers and directions, and its forward.
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"
#include "spec.hpp"
#include "types.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace streamrnn {

/// One named tensor of a Model: PyTorch's name and shape, and where it sits in parameters().
struct TensorInfo {
    std::string name;              ///< "weight_ih_l0", "bias_hh_l1_reverse", "weight_hr_l0", ...
    std::vector<long long> shape;  ///< [G, I_l], [G, H_out], [G], [P, H]
    std::size_t offset = 0;        ///< in floats
    std::size_t size = 0;          ///< in floats
};

/// Buffers for running a stack over up to max_steps x batch rows; a Stream owns one for life,
/// a whole-sequence call makes one sized to its input.
class Workspace {
public:
    Workspace(const ModelSpec& spec, Index max_steps, Index batch);
    Workspace(Workspace&&) noexcept;
    Workspace& operator=(Workspace&&) noexcept;
    ~Workspace();

    Index max_steps() const { return max_steps_; }
    Index batch() const { return batch_; }

private:
    friend class Model;
    Index max_steps_;
    Index batch_;
    std::vector<float> gates_;       ///< [T, B, G], time-major
    std::vector<float> layer_out_[2]; ///< [T, B, D * H_out] each: outputs of alternate layers
    std::vector<float> state_[2];    ///< [B, H_out + H]: h and c before and after a step
    std::vector<float> recurrent_;   ///< [B, G]
    std::vector<float> hidden_;      ///< [B, H]
    std::unique_ptr<GemmSpace> gemm_; ///< packing space for every product of a run
};

/// The weights of a model and everything that runs them. Weights live in one contiguous buffer
/// in state_dict order, so that gradients and optimizer state can share its layout.
class Model {
public:
    /// Weights drawn from uniform(-1/sqrt(H), 1/sqrt(H)), PyTorch's initialisation, from `seed`.
    Model(const ModelSpec& spec, std::uint64_t seed);
    /// Zero weights, to be filled by a loader. Both constructors throw ArgumentError for a spec
    /// that fails validate().
    explicit Model(const ModelSpec& spec);

    const ModelSpec& spec() const { return spec_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    /// The tensor called `name`, or null.
    const TensorInfo* find(const std::string& name) const;
    float* parameters() { return parameters_.data(); }
    const float* parameters() const { return parameters_.data(); }
    std::size_t parameter_count() const { return parameters_.size(); }
    CellWeights weights(int layer, int direction) const;

    /// Whole-sequence forward.
    ///   x: T x B rows of I; y: T x B rows of D * H_out; both in the spec's layout (time-major, or
    ///      batch-first when spec().batch_first).
    ///   h: [L * D, B, H_out] and c: [L * D, B, H] (LSTM; null otherwise): in, the initial state;
    ///      out, the final state.
    ///   lengths: [B] or null; each in [0, T]. Steps at or past a row's length give zeros in y and
    ///      leave its state alone; the reverse direction starts at the row's last valid step.
    /// Throws ArgumentError for a length outside [0, T].
    void forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                 float* c) const;

    /// Runs every layer over steps [0, T) of x into y with ws, T <= ws.max_steps(), B == ws.batch();
    /// h, c as in forward. Unidirectional models only when used by a Stream (chunks of a longer
    /// sequence); allocates nothing.
    void run(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h, float* c,
             Workspace& ws) const noexcept;

private:
    void run_layer(int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                   const std::int64_t* lengths, float* h, float* c, Workspace& ws) const noexcept;

    ModelSpec spec_;
    std::vector<TensorInfo> tensors_;
    std::vector<float> parameters_;
};

}  // namespace streamrnn
