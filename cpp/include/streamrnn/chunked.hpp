// cpp/include/streamrnn/chunked.hpp: latency-controlled chunks of a bidirectional model (LC-BLSTM,
// Zhang et al. 2016): the reverse direction runs over each chunk and a short look-ahead only, so
// that the model's outputs come a bounded delay after its inputs. Part of streamrnn, MIT licence.
#pragma once

#include "model.hpp"

#include <cstdint>
#include <memory>

namespace streamrnn {

/// How a sequence is cut: chunks of `chunk` steps (>= 1), each with the `lookahead` steps (>= 0)
/// after it.
struct Chunking {
    Index chunk = 1;
    Index lookahead = 0;
};

/// The whole-sequence forward of a bidirectional model, chunked. Per layer and chunk: the forward
/// direction carries its state from the end of the previous chunk, runs over the chunk, then over
/// the look-ahead steps from the chunk's end state without keeping that state; the reverse
/// direction starts from zeros at the last look-ahead step and runs back over the look-ahead and
/// the chunk. The next layer's inputs on the look-ahead steps are this layer's outputs there;
/// only the chunk's own steps are outputs. Each row is chunked over its own length.
///   x, y, lengths: as Model::forward's.
///   h [L * D, B, H_out], c [L * D, B, H] (LSTM, else null): in, the forward directions' initial
///   state (the reverse entries are not read); out, the forward directions' state after each
///   row's last step, and the reverse directions' at the end of their last run (the first step of
///   the row's last chunk).
///   threads: as Model::forward's, the batch split across them (at most B).
/// With chunk >= T it is Model::forward. A unidirectional model is run by Model::forward (the
/// chunks change nothing there). Layer 0's forward direction runs once over every step (its
/// look-ahead run is the next chunk's run); at B <= 2 windows run in groups of 32 rows, whose
/// reverse directions and look-ahead runs make one product per step.
/// Throws ArgumentError for a chunk < 1, a lookahead < 0 or a length outside [0, T];
/// std::bad_alloc when the buffers of a group of windows do not fit in memory.
void forward_chunked(const Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                     Chunking chunking, float* y, float* h, float* c, int threads = 1);

/// Training forward of forward_chunked: Model::forward_train with the chunks (its record replaced,
/// dropout between layers), for Model::backward, so that a model is trained with the chunking it
/// streams with. The record keeps every window, chunk and look-ahead: (chunk + lookahead) / chunk
/// times a whole-sequence record. It runs one window after another on one thread (its outputs are
/// forward_chunked's to float32 rounding). Throws as forward_chunked, and ConcurrencyError as
/// Model::forward_train; `from_initial_state` as Model::forward_train's.
void forward_train_chunked(Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                           Chunking chunking, float* y, float* h, float* c, bool from_initial_state = false);

/// Streams a model in chunks with a look-ahead: forward_chunked, fed a few steps at a time. A
/// chunk's outputs are complete once the `lookahead` steps after it have arrived, or at flush();
/// so each output comes at most chunk + lookahead - 1 steps after its input. Every buffer (the
/// window of chunk + lookahead steps of input, the state) is made by the constructor: process,
/// flush, reset and the state copies allocate nothing, take no lock and throw nothing.
///
/// Threads: as a Stream's: one thread at a time, an overlapping call is refused (false, or -1).
class ChunkedStream {
public:
    /// Throws ArgumentError for a batch outside [1, 2^24], a chunk < 1 or a lookahead < 0.
    ChunkedStream(std::shared_ptr<const Model> model, Index batch, Chunking chunking);
    ChunkedStream(ChunkedStream&&) noexcept;
    ChunkedStream& operator=(ChunkedStream&&) noexcept;
    ~ChunkedStream();

    const Model& model() const;
    Index batch() const;
    Chunking chunking() const;
    /// Floats of the state, as forward_chunked's h [L * D, B, H_out] and c [L * D, B, H].
    std::size_t h_size() const;
    std::size_t c_size() const;

    /// Steps that arrived and whose outputs are not yet returned (fewer than chunk + lookahead).
    Index pending() const noexcept;
    /// The output steps that process() of T more steps returns: every chunk completed by then.
    Index completed_by(Index T) const noexcept;
    /// Appends T steps, x: T x B rows of I in the model's layout; writes the completed chunks'
    /// outputs, completed_by(T) steps of B rows of D * H_out in the model's layout, into y.
    /// Returns that count; -1 (and nothing done) when another thread holds the stream.
    STREAMRNN_REALTIME Index process(const float* x, Index T, float* y) noexcept;
    /// End of input: the outputs of the pending() steps into y (as process writes them), each
    /// chunk with the look-ahead that arrived; then the stream starts afresh, as after reset().
    STREAMRNN_REALTIME Index flush(float* y) noexcept;
    /// Zeros the state and drops the pending steps, of every row.
    STREAMRNN_REALTIME bool reset() noexcept;
    /// Zeros row i's state; the steps it has pending then start its new sequence.
    STREAMRNN_REALTIME bool reset(Index i) noexcept;
    /// The state: the forward directions' as carried to the next chunk, the reverse directions'
    /// at the end of their last run; set_state sets it (the reverse entries are not read).
    STREAMRNN_REALTIME bool get_state(float* h, float* c) const noexcept;
    STREAMRNN_REALTIME bool set_state(const float* h, const float* c) noexcept;
    const char* busy_with() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace streamrnn
