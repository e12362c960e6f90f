// cpp/include/streamrnn/stream.hpp: Stream, a model's state for B live streams and every buffer
// that stepping it needs. Part of streamrnn, MIT licence.
#pragma once

#include "model.hpp"

#include <cstddef>
#include <memory>

namespace streamrnn {

/// Steps a unidirectional model through time, one step or one chunk per call, carrying state.
/// Everything is allocated by the constructor: step, process, reset and the state copies
/// allocate nothing, free nothing, take no lock and throw nothing.
///
/// Threads: a stream is for one thread at a time. A call that overlaps another call on the same
/// stream from a second thread does nothing and returns false (busy_with() names the call in the
/// way); calls on different streams may run at once. The model's weights may change while the
/// stream steps (Trainable): each step reads one whole version, the one current when it starts,
/// so weights loaded into the model take effect on the next step, and the step still takes no
/// lock and frees nothing (the version it let go is freed by the next writer).
class Stream {
public:
    /// Steps per internal block of process(): chunks longer than this run block by block.
    static constexpr Index block_steps = 64;

    /// Starts from the model's initial state. Throws ArgumentError for a bidirectional model or a
    /// batch outside [1, 2^24]; std::length_error (a 32-bit host) or std::bad_alloc when its
    /// buffers do not fit in memory.
    Stream(std::shared_ptr<const Model> model, Index batch);
    Stream(Stream&&) noexcept;
    Stream& operator=(Stream&&) noexcept;
    ~Stream();

    const Model& model() const;
    Index batch() const;
    /// Floats of the state: h [L, B, H_out], and (LSTM) c [L, B, H] (0 for other kinds).
    std::size_t h_size() const;
    std::size_t c_size() const;

    /// x: [B, I] -> y: [B, H_out], both contiguous.
    STREAMRNN_REALTIME bool step(const float* x, float* y) noexcept;
    /// x: T x B rows of I -> y: T x B rows of H_out, both in the model's layout (batch-first when
    /// the spec says so).
    STREAMRNN_REALTIME bool process(const float* x, float* y, Index T) noexcept;
    /// Every stream back to the model's initial state (Model::initial_state: zeros unless set).
    STREAMRNN_REALTIME bool reset() noexcept;
    /// Stream i, 0 <= i < batch(), back to the initial state; other streams are untouched. An i
    /// out of range changes nothing (the Python face raises IndexError before it gets here).
    STREAMRNN_REALTIME bool reset(Index i) noexcept;
    /// Copies the state out: h_size() floats into h, c_size() into c; either may be null (that
    /// part is not copied).
    STREAMRNN_REALTIME bool get_state(float* h, float* c) const noexcept;
    /// Copies the state in, as get_state lays it out; a null part is left as it is.
    STREAMRNN_REALTIME bool set_state(const float* h, const float* c) noexcept;
    /// The call ("step", "process", ...) holding the stream when a call of this thread was just
    /// refused; null when none holds it now. For messages only: it may have finished since.
    const char* busy_with() const noexcept;

    /// Whether step and process flush subnormal floats to zero while they run (on by default):
    /// a state decaying towards zero then costs no more per step than any other. The thread's
    /// floating point mode is restored before they return. Off, results are bit for bit those of
    /// Model::forward also below 1.2e-38.
    void set_flush_denormals(bool flush) noexcept;
    bool flush_denormals() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace streamrnn
