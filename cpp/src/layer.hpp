// cpp/src/layer.hpp: the CPU engine's scan of one layer and direction over the steps of a sequence
// (whole sequences and a stream's chunks), the one-row path of a stream's step, and the backward
// scan; and the workspace they run in. Part of streamrnn, MIT licence.
#pragma once

#include "cells/cell.hpp"
#include "stack.hpp"
#include "weights.hpp"

#include <memory>

namespace streamrnn {

/// The weights a run multiplies: one version's parameters and the copies made of them (or null).
struct RunWeights {
    const ModelSpec& spec;
    const float* parameters;
    const DerivedWeights* copies;

    CellWeights cell(int layer, int direction, Index B) const noexcept
    {
        return run_weights(spec, parameters, copies, layer, direction, B);
    }
};

/// Buffers for running a stack over up to max_steps x batch rows; a Stream owns one for life,
/// a whole-sequence call makes one sized to its input.
struct Workspace {
    /// `recording`: for a training forward, whose gates and layer outputs go to its record.
    /// `threads`: for a whole-sequence call's input projections. Allocates.
    Workspace(const ModelSpec& spec, Index max_steps, Index batch, bool recording, int threads = 1);
    Workspace(Workspace&&) noexcept;
    ~Workspace();

    Index max_steps;
    Index batch;
    /// [T_p, B, G], time-major: the input projections of T_p = projected_steps steps, all T where
    /// a second thread projects ahead of the scan, else a chunk that stays in cache for the scan.
    Buffer gates;
    Index projected_steps = 0;
    Buffer layer_out[2];  ///< [T, B, D * H_out] each: outputs of alternate layers
    Buffer state[2];      ///< [B, H_out + H]: h and c before and after a step
    Buffer recurrent;     ///< [B, G]
    Buffer hidden;        ///< [B, H]
    std::unique_ptr<GemmSpace> gemm;  ///< packing space for every product of a run
    int threads = 1;
};

/// Runs one layer and direction over steps [0, T) of x into y (its H_out columns), T <= ws.max_steps,
/// B == ws.batch; h [B, H_out] and c [B, H] (LSTM; else null) hold the initial state and receive
/// the final one. Steps at or past a row's length (lengths [B] or null) give zeros and leave its
/// state alone. With `kept`, each step's gates and states go there. Allocates only where
/// ws.threads > 1 (a second thread, for one row).
void scan_layer(const RunWeights& weights, int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                const std::int64_t* lengths, float* h, float* c, Workspace& ws, RecordView::Cell* kept);

/// scan_layer for one step of one row through every layer of a unidirectional model (a Stream of
/// batch 1), without the views and chunks of a longer run: x [I] -> y [H_out], h [L, H_out] and
/// c [L, H] in place. `cells`: each layer's weights as RunWeights::cell(layer, 0, 1) gives them,
/// which a stream works out once per version of the weights; `step`: forward_step_of(spec).
/// Allocates nothing.
void step_row(const ModelSpec& spec, ForwardStep step, const CellWeights* cells, const float* x, float* y, float* h,
              float* c, Workspace& ws) noexcept;

/// Back through one layer and direction of the pass's record: d_out (columns of the layer's output
/// gradient) -> d_in [T, B, I_l] (added to), dh and dc carried down the steps in place; weight
/// gradients added into the pass's, `threads` sharing their products. Allocates.
void backward_layer(const BackwardPass& pass, int layer, int direction, ConstSeqView d_out, float* d_in, float* dh,
                    float* dc, int threads);

}  // namespace streamrnn

#include <random>

namespace streamrnn {

/// forward_stack (stack.hpp) on the CPU: every layer over steps [0, T) of x into y, with ws; with a
/// record, dropout drawn from `rng`. Allocates only where scan_layer does.
void run_stack(const RunWeights& weights, ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths,
               float* h, float* c, Workspace& ws, RecordView* record = nullptr, std::mt19937_64* rng = nullptr);

/// What windows of a chunked forward (chunked.hpp) add to a run of their T steps: their B rows are
/// B / rows windows of `rows` rows each, one after another, which start together and whose chunks
/// are their first chunk_steps steps; each row's valid steps in its chunk and in the look-ahead
/// after it; and room for a copy of one layer's forward state [B, H_out] and [B, H], which the
/// look-ahead runs from.
struct ChunkWindow {
    Index chunk_steps;
    const std::int64_t* chunk_lengths;
    const std::int64_t* lookahead_lengths;
    float* h_lookahead;
    float* c_lookahead;
    /// [T, B, H_out], time-major: layer 0's forward outputs over the windows, run already (a
    /// chunked forward runs them once over every step: chunked.cpp's FirstForward), or null.
    const float* first_forward;
    Index rows;
};

/// forward_stack over windows of a chunked forward: x, y, lengths (each row's valid steps in its
/// window), ws, record and rng as run_stack's (a record: of one window); h, c [L * D, B, ...]: the
/// forward directions' state, in the first window's rows carried from the chunk before it, and out
/// in every window's rows the state at the end of its chunk (the next window's rows start from
/// it); the reverse directions' at the end of their run (rows a window reaches start from zeros).
/// Allocates nothing.
void run_stack_chunk(const RunWeights& weights, ConstSeqView x, SeqView y, Index T, Index B,
                     const std::int64_t* lengths, const ChunkWindow& window, float* h, float* c, Workspace& ws,
                     RecordView* record = nullptr, std::mt19937_64* rng = nullptr);

/// backward_stack over one window's record (pass: its T steps, lengths as run_stack_chunk's):
/// dh_n, dc_n, the gradient of the state after the window, the forward directions' at the chunk's
/// end; out, dh0 and dc0 of the state before it. d_out and d_in as backward_stack's; `window`'s
/// state buffers serve as scratch. Allocates.
void run_backward_chunk(const BackwardPass& pass, const ChunkWindow& window, ConstSeqView dy, const float* dh_n,
                        const float* dc_n, SeqView dx, float* dh0, float* dc0, float* d_out, float* d_in);

/// backward_stack (stack.hpp) on the CPU. Allocates.
void run_backward(const BackwardPass& pass, ConstSeqView dy, const float* dh_n, const float* dc_n, SeqView dx,
                  float* dh0, float* dc0, int threads);

}  // namespace streamrnn
