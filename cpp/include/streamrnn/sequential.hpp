// cpp/include/streamrnn/sequential.hpp: Sequential, a whole model (Linear layers and element-wise
// functions before, between and after recurrent stacks) run as one, and SequentialStream, which
// steps it with one call. Part of streamrnn, MIT licence.
#pragma once

#include "blocks.hpp"
#include "model.hpp"
#include "spec.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace streamrnn {

/// One block of a Sequential: a Linear layer, an element-wise function, or a recurrent model.
struct Block {
    enum class Kind { linear, function, recurrent };

    Kind kind = Kind::function;
    std::shared_ptr<Linear> linear;  ///< kind linear
    /// Kind function: Tanh, Sigmoid, Relu, LeakyRelu (alpha: the negative slope), Elu (alpha),
    /// Softsign, Gelu, or Affine with alpha 1 and beta 0 (the identity).
    ActivationFunction function;
    std::shared_ptr<Model> recurrent;  ///< kind recurrent: a layer (not a cell)

    static Block of(std::shared_ptr<Linear> linear);
    static Block of(ActivationFunction function);
    static Block of(std::shared_ptr<Model> recurrent);

    /// Features in and out per step and row; -1 for a function (any).
    int input_size() const;
    int output_size() const;
    /// "Linear", "Tanh", "LSTM", ...: PyTorch's class names, for messages and files.
    std::string name() const;
};

/// The block function called `name` (Block::name: "Tanh", "LeakyReLU", ...) with `alpha` where it
/// takes one (LeakyReLU's negative slope, ELU's alpha); false for another name.
bool block_function(const std::string& name, float alpha, ActivationFunction& function);
/// Whether the function `name` takes an alpha.
bool block_function_takes_alpha(const std::string& name);

/// A recurrent block's state for B rows: h [L * D, B, H_out], c [L * D, B, H] (LSTM; else null),
/// as Model::forward takes it.
struct StateRef {
    float* h = nullptr;
    float* c = nullptr;
};

/// Blocks run one after another on every step. Its layout is its recurrent blocks' (time-major,
/// or batch-first when they are); Linear layers and functions act on every step and row alike.
/// The blocks' weights are their own (shared with whoever else holds the blocks): a Sequential
/// adds none.
///
/// Threads: forward() may run on any number of threads at once, as a Model's; the training
/// record (forward_train, backward) is for one call at a time, and one that overlaps another on a
/// second thread raises ConcurrencyError. The blocks' own records are part of it: a block shared
/// with another Sequential must not train in both at once.
class Sequential {
public:
    /// Throws ArgumentError with problem(blocks) when there is one.
    explicit Sequential(std::vector<Block> blocks);
    /// What is wrong with `blocks`, naming the block: none, a null block, sizes that do not
    /// chain, a cell, recurrent blocks of different layouts, a function that is not a block's;
    /// empty when nothing is.
    static std::string problem(const std::vector<Block>& blocks);
    Sequential(Sequential&&) noexcept;
    Sequential& operator=(Sequential&&) noexcept;
    ~Sequential();

    const std::vector<Block>& blocks() const { return blocks_; }
    int input_size() const { return input_size_; }
    int output_size() const { return output_size_; }
    bool batch_first() const { return batch_first_; }
    /// Whether a block runs in both directions: then it runs whole sequences only.
    bool bidirectional() const;
    /// The indices in blocks() of the recurrent blocks, in order.
    const std::vector<std::size_t>& recurrent_blocks() const { return recurrent_; }

    /// Whole-sequence forward: x, T x B rows of input_size() -> y, T x B rows of output_size(), in
    /// the layout. `states`: one per recurrent block, in and out as Model::forward's; or null for
    /// every recurrent block from its initial state (and its final state not kept). `lengths` as
    /// Model::forward's; steps at or past a row's length give zeros in y. Throws as
    /// Model::forward.
    void forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y,
                 const StateRef* states = nullptr, int threads = 1) const;

    /// forward() that keeps what backward() reads. With null `states`, or `from_initial_state`
    /// (which fills them first), every recurrent block starts from its initial state and gives it
    /// gradients where it is learned.
    void forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y,
                       const StateRef* states = nullptr, int threads = 1, bool from_initial_state = false);

    /// Backpropagation through the last forward_train. dy: like y. `final_gradients`: per
    /// recurrent block, dL/d(its final state) (null parts, or a null array: zeros); dx: out, like
    /// x, or null; `initial_gradients`: per recurrent block, out, dL/d(its initial state), or
    /// null. Weight gradients add into each block's gradients(). Throws ArgumentError without a
    /// training forward.
    void backward(const float* dy, const StateRef* final_gradients, float* dx, const StateRef* initial_gradients,
                  int threads = 1);
    /// Steps and rows of the last forward_train; ArgumentError without one.
    Index recorded_steps() const;
    Index recorded_batch() const;

private:
    struct Record;
    std::vector<Block> blocks_;
    std::vector<std::size_t> recurrent_;
    int input_size_ = 0;
    int output_size_ = 0;
    bool batch_first_ = false;
    std::unique_ptr<Record> record_;
};

/// Steps a Sequential of unidirectional blocks, one step or one chunk per call, each block's state
/// carried: as a Stream does a Model, with the same rules (every buffer made by the constructor;
/// step, process, reset and the state copies allocate nothing, take no lock and throw nothing;
/// one thread at a time, an overlapping call refused with false; the blocks' weights may change
/// while it steps, each step reading one version of each).
///
/// The state is every recurrent block's, one after another: h is the blocks' h [L_k, B, H_out_k]
/// in order, c their c [L_k, B, H_k] (LSTM blocks only).
class SequentialStream {
public:
    /// Throws ArgumentError for a bidirectional block or a batch outside [1, 2^24];
    /// std::bad_alloc when its buffers do not fit. Starts from the blocks' initial states.
    SequentialStream(std::shared_ptr<const Sequential> model, Index batch);
    SequentialStream(SequentialStream&&) noexcept;
    SequentialStream& operator=(SequentialStream&&) noexcept;
    ~SequentialStream();

    const Sequential& model() const;
    Index batch() const;
    /// Floats of the state: every recurrent block's h, and every LSTM block's c.
    std::size_t h_size() const;
    std::size_t c_size() const;

    /// x: [B, I] -> y: [B, O], both contiguous.
    STREAMRNN_REALTIME bool step(const float* x, float* y) noexcept;
    /// x: T x B rows of I -> y: T x B rows of O, in the model's layout.
    STREAMRNN_REALTIME bool process(const float* x, float* y, Index T) noexcept;
    /// Every row, or row i (0 <= i < batch(); else nothing), back to the initial states.
    STREAMRNN_REALTIME bool reset() noexcept;
    STREAMRNN_REALTIME bool reset(Index i) noexcept;
    /// Copies the state out, or in (h_size() and c_size() floats); a null part is not copied.
    STREAMRNN_REALTIME bool get_state(float* h, float* c) const noexcept;
    STREAMRNN_REALTIME bool set_state(const float* h, const float* c) noexcept;
    /// As Stream's.
    const char* busy_with() const noexcept;
    void set_flush_denormals(bool flush) noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace streamrnn
