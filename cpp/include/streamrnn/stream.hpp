// cpp/include/streamrnn/stream.hpp: Stream, a model's state for B live streams and every buffer
// that stepping it needs. Part of streamrnn, MIT licence.
#pragma once

#include "model.hpp"

#include <memory>

namespace streamrnn {

/// Steps a unidirectional model through time, one step or one chunk per call, carrying state.
/// Everything is allocated by the constructor: step, process and reset allocate nothing, take no
/// lock and throw nothing. The model's weights are read on every call, so loading new weights
/// into the model takes effect on the next step.
class Stream {
public:
    /// Steps per internal block of process(): chunks longer than this run block by block.
    static constexpr Index block_steps = 64;

    /// Throws ArgumentError for a bidirectional model or a batch outside [1, 2^24];
    /// std::length_error (a 32-bit host) or std::bad_alloc when its buffers do not fit in memory.
    Stream(std::shared_ptr<const Model> model, Index batch);

    const Model& model() const { return *model_; }
    Index batch() const { return batch_; }

    /// x: [B, I] -> y: [B, H_out], both contiguous.
    STREAMRNN_REALTIME void step(const float* x, float* y) noexcept;
    /// x: T x B rows of I -> y: T x B rows of H_out, both in the model's layout (batch-first when
    /// the spec says so).
    STREAMRNN_REALTIME void process(const float* x, float* y, Index T) noexcept;
    /// Zeros the state of every stream.
    STREAMRNN_REALTIME void reset() noexcept;
    /// Zeros the state of stream i, 0 <= i < batch(); other streams are untouched. An i out of
    /// range changes nothing (the Python face raises IndexError before it gets here).
    STREAMRNN_REALTIME void reset(Index i) noexcept;

    /// Whether step and process flush subnormal floats to zero while they run (on by default):
    /// a state decaying towards zero then costs no more per step than any other. The thread's
    /// floating point mode is restored before they return. Off, results are bit for bit those of
    /// Model::forward also below 1.2e-38.
    void set_flush_denormals(bool flush) noexcept { flush_denormals_ = flush; }
    bool flush_denormals() const noexcept { return flush_denormals_; }

    /// [L, B, H_out] and (LSTM) [L, B, H]; c is empty for other kinds.
    float* h() { return h_.data(); }
    float* c() { return c_.data(); }
    const float* h() const { return h_.data(); }
    const float* c() const { return c_.data(); }

private:
    std::shared_ptr<const Model> model_;
    Index batch_;
    Buffer h_;
    Buffer c_;
    Workspace workspace_;
    bool flush_denormals_ = true;
};

}  // namespace streamrnn
