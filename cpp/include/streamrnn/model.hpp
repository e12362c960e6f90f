// cpp/include/streamrnn/model.hpp: Model, the weights of a stack of recurrent layers and
// directions, its whole-sequence forward, and its training forward and backward (BPTT).
// Part of streamrnn, MIT licence.
#pragma once

#include "spec.hpp"
#include "trainable.hpp"
#include "types.hpp"

#include <cstdint>
#include <memory>

namespace streamrnn {

struct ModelAccess;
struct TrainingState;

/// The weights of a recurrent model and everything that runs them. Its tensors are PyTorch's:
/// weight_ih_l{k}[_reverse] [G, I_l], weight_hh [G, H_out], bias_ih and bias_hh [G], weight_hr [P, H].
///
/// Threads (the README's "Threads" says it for the whole library):
/// - forward() may run on any number of threads at once, beside streams stepping and writes of
///   the weights: each call holds the version of the weights it started with (Trainable).
/// - The training record is for one call at a time: forward_train() and backward() each hold it,
///   and one that overlaps another on a second thread raises ConcurrencyError naming both.
///   backward() also holds the gradients (Trainable), against zero_grad, clipping and
///   optimizer steps.
/// - Built without threads (STREAMRNN_THREADS=0), calls on one model must not overlap at all.
class Model : public Trainable {
public:
    /// Weights drawn from uniform(-1/sqrt(H), 1/sqrt(H)), PyTorch's initialisation, from `seed`.
    Model(const ModelSpec& spec, std::uint64_t seed);
    /// Zero weights, to be filled by a loader. Both constructors throw ArgumentError for a spec
    /// that fails validate(), and std::length_error for weights too large to address (a 32-bit
    /// host).
    explicit Model(const ModelSpec& spec);
    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model() override;

    const ModelSpec& spec() const { return spec_; }

    /// The state every row starts from where no state is given (a training forward told so,
    /// new streams and pools' streams, their resets): h0 [L * D, H_out] and (LSTM) c0
    /// [L * D, H]. With spec().learn_initial_state it is the tensors initial_h and initial_c;
    /// else it is what set_initial_state() set, or zeros. Part of the weights' versions: a
    /// stream's reset reads it as its steps read the weights.
    bool has_initial_state() const;
    /// Copies it out (zeros when there is none); a null part is not copied.
    void initial_state(float* h0, float* c0) const;
    /// Sets it: h0 and c0 as initial_state() lays them out, a null c0 zeros (and ignored but for
    /// an LSTM). Both null: back to zeros, and has_initial_state() is false unless learned. A
    /// write of the weights, published as a new version.
    void set_initial_state(const float* h0, const float* c0);
    /// Writes it into the state of B rows: h [L * D, B, H_out], c [L * D, B, H] (LSTM; else
    /// ignored); a null part is not written.
    void fill_initial_state(Index B, float* h, float* c) const;

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
    /// The copies of the weights that speed up its products (packed, transposed) are kept with
    /// the version of the weights they were made from, for the calls after it until the weights
    /// change: as much memory again as the weights.
    /// Throws ArgumentError for a length outside [0, T]; std::length_error (a 32-bit host) or
    /// std::bad_alloc when the buffers for T x B rows do not fit in memory.
    void forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                 int threads = 1) const;

    /// Training forward: forward() that also keeps what backward() reads (replacing what an
    /// earlier training forward kept; a call that fails keeps that one), with dropout
    /// (spec().dropout) between layers. `threads` split a wide enough batch, or else share the
    /// products over all steps; which units dropout drops depends on how the batch was split.
    /// `from_initial_state`: h and c are filled with the initial state first, and a backward
    /// adds the gradient of every row's initial state into initial_h's and initial_c's (when
    /// learned).
    void forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                       int threads = 1, bool from_initial_state = false);

    /// Backpropagation through time over the last forward_train (or forward_train_chunked,
    /// chunked.hpp), with the weights it ran with.
    ///   dy: like y; dh_n, dc_n: dL/d(final state), like h and c, or null for zeros.
    ///   dx: out, like x; dh0, dc0: out, dL/d(initial state), like h and c (dc0 null unless LSTM).
    ///   steps, batch: the record's sizes that the arrays were made for (recorded_steps(),
    ///   recorded_batch()), or -1 for whatever they are: a record that a forward_train on another
    ///   thread replaced in between is refused with ConcurrencyError.
    /// Weight gradients add into gradients(), `threads` sharing their products. Throws
    /// ArgumentError without a training forward.
    void backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                  int threads = 1, Index steps = -1, Index batch = -1);
    /// The steps and rows of the last forward_train; ArgumentError without one. They read the
    /// record, so they hold it too, for `call` (the call they are part of, for the message):
    /// ConcurrencyError while a training forward runs on another thread.
    Index recorded_steps(const char* call = "recorded_steps") const;
    Index recorded_batch(const char* call = "recorded_batch") const;

private:
    friend struct ModelAccess;  // the engine's streams and runs (cpp/src)
    ModelSpec spec_;
    std::unique_ptr<TrainingState> training_;
};

}  // namespace streamrnn
