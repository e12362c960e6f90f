// cpp/include/streamrnn/model.hpp: Model, the weights of a stack of layers and directions, and its forward.
// Part of streamrnn, MIT licence.
#pragma once

#include "cell.hpp"
#include "spec.hpp"
#include "trainable.hpp"
#include "types.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace streamrnn {

/// What a training forward keeps of one layer and direction for backward: time-major [T, B, ...]
/// rows, indexed by the time step (not the order of processing).
struct LayerRecord {
    Buffer gates;   ///< [T, B, G]: activated gates
    Buffer h_prev;  ///< [T, B, H_out]: the state each step started from
    Buffer c_prev;  ///< [T, B, H] (LSTM)
    Buffer c_next;  ///< [T, B, H] (LSTM)
    Buffer extra;   ///< [T, B, H]: StepRecord::extra of each step (LSTM projection, GRU)
};

/// Everything backward reads of the training forward before it.
struct ForwardRecord {
    Index T = 0;
    Index B = 0;
    std::vector<std::int64_t> lengths;        ///< [B], or empty: every row T steps long
    std::vector<Buffer> inputs;   ///< per layer: its input [T, B, I_l], time-major
    std::vector<Buffer> masks;    ///< per layer: the dropout scale of its input (0 or 1/(1-p)), or empty
    std::vector<LayerRecord> layers;          ///< [L * D]
    /// A training forward whose batch threads split: rows [first, first + record->B) of each part
    /// in a record of their own; this one then keeps only T, B and lengths.
    struct Part {
        Index first = 0;
        std::unique_ptr<ForwardRecord> record;
    };
    std::vector<Part> parts;
};

/// The weights of one layer and direction inside a buffer laid out as a Model's parameters (host
/// or device memory: only pointers are computed).
CellWeights cell_weights(const ModelSpec& spec, const float* parameters, int layer, int direction);

/// Raises ArgumentError unless every one of the B lengths (or none: null) is in [0, T].
void check_lengths(Index T, Index B, const std::int64_t* lengths);

/// Copies of the weights that a Workspace keeps, where they make its products faster.
struct WeightCopies {
    /// W_hh^T (CellWeights::w_hh_t): for one row (B = 1) of small weights, where a row times W^T
    /// column by column beats short dot products per gate row; large weights are memory-bound
    /// either way and would only be stored twice.
    bool transposed = false;
    /// W_ih^T (CellWeights::w_ih_t) as well, for the one-step input projections of a stream of
    /// one row.
    bool transposed_input = false;
    /// W_ih, and W_hh for B > 1, packed for the matrix kernel (CellWeights::w_ih_packed), on CPUs
    /// that have one (AVX2, AVX-512): packed once, they serve every step and every chunk.
    bool packed = false;
};

/// The copies that pay for runs of T steps over B rows: a stream's (`streaming`, chunk by chunk
/// for life) or one whole-sequence call's.
WeightCopies weight_copies_for(const ModelSpec& spec, Index T, Index B, bool streaming);

struct DerivedWeights;

/// Buffers for running a stack over up to max_steps x batch rows; a Stream owns one for life,
/// a whole-sequence call makes one sized to its input.
class Workspace {
public:
    /// `recording`: for a training forward, whose gates and layer outputs go to a ForwardRecord.
    /// `copies`: the copies of the weights to keep (made from the model on its first run, and
    /// again whenever its weights change). `threads`: for a whole-sequence call's input
    /// projections.
    Workspace(const ModelSpec& spec, Index max_steps, Index batch, bool recording = false, WeightCopies copies = {},
              int threads = 1);
    Workspace(Workspace&&) noexcept;
    Workspace& operator=(Workspace&&) noexcept;
    ~Workspace();

    Index max_steps() const { return max_steps_; }
    Index batch() const { return batch_; }

private:
    friend class Model;
    /// With copies of the weights shared with other workspaces (Model::shared_copies).
    Workspace(const ModelSpec& spec, Index max_steps, Index batch, bool recording,
              std::shared_ptr<DerivedWeights> copies, int threads);
    Index max_steps_;
    Index batch_;
    /// [T_p, B, G], time-major: the input projections of T_p = projected_steps_ steps, all T where
    /// a second thread projects ahead of the scan, else a chunk that stays in cache for the scan.
    Buffer gates_;
    Index projected_steps_ = 0;
    Buffer layer_out_[2]; ///< [T, B, D * H_out] each: outputs of alternate layers
    Buffer state_[2];    ///< [B, H_out + H]: h and c before and after a step
    Buffer recurrent_;   ///< [B, G]
    Buffer hidden_;      ///< [B, H]
    std::unique_ptr<GemmSpace> gemm_; ///< packing space for every product of a run
    std::shared_ptr<DerivedWeights> copies_;  ///< the copies of the weights (WeightCopies) it runs with
    int threads_ = 1;  ///< threads for the input projection of all steps (whole-sequence calls)
};

/// The weights of a recurrent model and everything that runs them. Its tensors are PyTorch's:
/// weight_ih_l{k}[_reverse] [G, I_l], weight_hh [G, H_out], bias_ih and bias_hh [G], weight_hr [P, H].
class Model : public Trainable {
public:
    /// Weights drawn from uniform(-1/sqrt(H), 1/sqrt(H)), PyTorch's initialisation, from `seed`.
    Model(const ModelSpec& spec, std::uint64_t seed);
    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();
    /// Zero weights, to be filled by a loader. Both constructors throw ArgumentError for a spec
    /// that fails validate(), and std::length_error for weights too large to address (a 32-bit
    /// host).
    explicit Model(const ModelSpec& spec);

    const ModelSpec& spec() const { return spec_; }
    CellWeights weights(int layer, int direction) const;

    /// Whole-sequence forward.
    ///   x: T x B rows of I; y: T x B rows of D * H_out; both in the spec's layout (time-major, or
    ///      batch-first when spec().batch_first).
    ///   h: [L * D, B, H_out] and c: [L * D, B, H] (LSTM; null otherwise): in, the initial state;
    ///      out, the final state.
    ///   lengths: [B] or null; each in [0, T]. Steps at or past a row's length give zeros in y and
    ///      leave its state alone; the reverse direction starts at the row's last valid step.
    ///   threads: the batch is split across this many threads (at most B), each running the whole
    ///      stack on its rows; for one row a second thread projects the inputs ahead of the scan
    ///      (sequences of 384 steps or more), or the threads share the product of all steps.
    /// The copies of the weights that speed up its products (packed, transposed) are kept for the
    /// calls after it until the weights change: as much memory again as the weights. Calls from
    /// several threads at once may share the model (in a build without threads, STREAMRNN_THREADS
    /// = 0, no lock guards those copies: calls on one model must not overlap).
    /// Throws ArgumentError for a length outside [0, T]; std::length_error (a 32-bit host) or
    /// std::bad_alloc when the buffers for T x B rows do not fit in memory.
    void forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                 int threads = 1) const;

    /// Training forward: forward() that also keeps what backward() reads (replacing what an
    /// earlier training forward kept), with dropout (spec().dropout) between layers. `threads`
    /// split a wide enough batch, or else share the products over all steps; which units dropout
    /// drops depends on how the batch was split.
    void forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                       int threads = 1);

    /// Backpropagation through time over the last forward_train.
    ///   dy: like y; dh_n, dc_n: dL/d(final state), like h and c, or null for zeros.
    ///   dx: out, like x; dh0, dc0: out, dL/d(initial state), like h and c (dc0 null unless LSTM).
    /// Weight gradients add into gradients(), `threads` sharing their products. Throws
    /// ArgumentError without a training forward.
    void backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                  int threads = 1);
    /// What the last forward_train kept; ArgumentError without one.
    const ForwardRecord& record() const;

    /// Runs every layer over steps [0, T) of x into y with ws, T <= ws.max_steps(), B == ws.batch();
    /// h, c as in forward. Unidirectional models only when used by a Stream (chunks of a longer
    /// sequence); allocates nothing.
    void run(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h, float* c,
             Workspace& ws) const noexcept;

    /// run() for one step of one row of a unidirectional model (a Stream of batch 1), without the
    /// views and chunks that a longer run needs. Allocates nothing.
    void step_row(const float* x, float* y, float* h, float* c, Workspace& ws) const noexcept;

private:
    /// run(), and with a record: every layer's input, gates and states kept, dropout drawn from rng.
    void run_recorded(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h, float* c,
                      Workspace& ws, ForwardRecord* record, std::mt19937_64* rng) const noexcept;
    /// Parts a training forward splits its batch into on `threads` threads (1: none).
    static Index training_parts(Index T, Index B, int threads);
    /// Sizes `record` for T steps of B rows, reusing its buffers.
    void prepare_record(ForwardRecord& record, Index T, Index B, const std::int64_t* lengths) const;
    /// The training forward of B rows into a prepared record.
    void run_training(ConstSeqView x, SeqView y, Index T, Index B, float* h, float* c, Workspace& ws,
                      ForwardRecord& record, std::mt19937_64& rng) const;
    /// Makes `copies` those of the weights' current version (no allocation).
    void refresh_copies(DerivedWeights& copies) const noexcept;
    /// Copies of the weights of the current version, shared by the whole-sequence calls that want
    /// the same ones (made on the first, and again after the weights change): packing them is a
    /// pass over the weights that a call need not repeat.
    std::shared_ptr<DerivedWeights> shared_copies(WeightCopies which) const;
    /// The weights of a layer and direction as a run over B rows multiplies them: with the copies
    /// that ws keeps, and b_hh folded into b_ih where they keep the sum.
    CellWeights run_weights(int layer, int direction, const Workspace& ws, Index B) const noexcept;
    void run_layer(int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                   const std::int64_t* lengths, float* h, float* c, Workspace& ws, LayerRecord* record) const noexcept;
    /// backward() over the rows of one record (the whole batch's, or a part's), weight gradients
    /// added into `gradients` (laid out as gradients()).
    void backward_rows(const ForwardRecord& record, ConstSeqView dy, const float* dh_n, const float* dc_n, SeqView dx,
                       float* dh0, float* dc0, float* gradients, int threads) const;
    /// Back through one layer and direction of `record`: d_out [T, B, H_out] (columns of the
    /// layer's output gradient) -> d_in [T, B, I_l] (added to), weight gradients added into
    /// `gradients`, state gradients in dh, dc.
    void backward_layer(const ForwardRecord& record, int layer, int direction, ConstSeqView d_out, float* d_in,
                        float* dh, float* dc, float* gradients, int threads) const;

    struct CopyCache;

    ModelSpec spec_;
    std::unique_ptr<ForwardRecord> record_;
    std::mt19937_64 dropout_rng_;
    std::unique_ptr<CopyCache> copy_cache_;
};

}  // namespace streamrnn
