// cpp/src/stack.cpp: the CPU engine's backend of the stack (stack.hpp): its scans (layer.cpp),
// residual joins, dropout and copies, as Eigen passes. Part of streamrnn, MIT licence.
#include "layer.hpp"

#include "sizes.hpp"

namespace streamrnn {

namespace {

/// to(t, b) += from(t, b) at every valid step: the residual join, and its gradient on the way
/// back. Padded steps stay zero, and pass nothing back.
void add_valid_steps(ConstSeqView from, SeqView to, Index T, Index B, const std::int64_t* lengths)
{
    for (Index t = 0; t < T; ++t)
        for (Index b = 0; b < B; ++b)
            if (!lengths || t < lengths[b])
                mat(to.row(t, b), 1, to.width).noalias() += mat(from.row(t, b), 1, from.width);
}

/// Steps [0, T) of B rows from one view to another: a change of layout.
void copy_steps(ConstSeqView from, SeqView to, Index T, Index B)
{
    for (Index t = 0; t < T; ++t)
        step_rows(to, t, B) = step_rows(from, t, B);
}

struct CpuForward {
    const RunWeights& weights;
    Workspace& ws;
    std::mt19937_64* rng;

    float* between(int i) { return ws.layer_out[i].data(); }
    void scan(int layer, int direction, ConstSeqView in, SeqView out, Index T, Index B, const std::int64_t* lengths,
              float* h, float* c, RecordView::Cell* kept)
    {
        scan_layer(weights, layer, direction, in, out, T, B, lengths, h, c, ws, kept);
    }
    void add_residual(ConstSeqView in, SeqView out, Index T, Index B, const std::int64_t* lengths)
    {
        add_valid_steps(in, out, T, B, lengths);
    }
    void drop_out(float* data, float* mask, Index count, int)
    {
        // Inverted dropout, as PyTorch's: keep with probability 1 - p, scaled by 1 / (1 - p).
        const double keep = 1.0 - weights.spec.dropout;
        const float scale = keep > 0.0 ? static_cast<float>(1.0 / keep) : 0.0f;
        std::bernoulli_distribution kept(keep);
        for (Index i = 0; i < count; ++i)
            mask[i] = kept(*rng) ? scale : 0.0f;
        mat(data, 1, count).array() *= mat(static_cast<const float*>(mask), 1, count).array();
    }
    void copy_steps(ConstSeqView from, SeqView to, Index T, Index B) { streamrnn::copy_steps(from, to, T, B); }
};

struct CpuBackward {
    const BackwardPass& pass;
    int threads;

    void zero(float* data, Index count) { std::fill(data, data + count, 0.0f); }
    void copy(float* to, const float* from, Index count) { std::copy(from, from + count, to); }
    void scan_back(int layer, int direction, ConstSeqView d_out, float* d_in, float* dh, float* dc,
                   const RecordView::Cell&)
    {
        backward_layer(pass, layer, direction, d_out, d_in, dh, dc, threads);
    }
    void add_residual(ConstSeqView from, SeqView to, Index T_, Index B_, const std::int64_t* lengths_)
    {
        add_valid_steps(from, to, T_, B_, lengths_);
    }
    void scale(float* data, const float* by, Index count)
    {
        mat(data, 1, count).array() *= mat(by, 1, count).array();
    }
    void copy_steps(ConstSeqView from, SeqView to, Index T_, Index B_) { streamrnn::copy_steps(from, to, T_, B_); }
};

}  // namespace

void run_stack(const RunWeights& weights, ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths,
               float* h, float* c, Workspace& ws, RecordView* record, std::mt19937_64* rng)
{
    CpuForward backend{weights, ws, rng};
    forward_stack(backend, weights.spec, x, y, T, B, lengths, h, c, record);
}

namespace {

/// Whether a chunked forward runs layer `layer`'s forward direction over a window's look-ahead: its
/// outputs there are the next layer's inputs, and the last layer has none (only the chunk's own
/// steps are outputs, and the state carried is the chunk's).
bool runs_ahead(const ModelSpec& spec, int layer) { return layer + 1 < spec.num_layers; }

/// The CPU's scans of one window of a chunked forward (chunked.hpp): the forward directions run
/// the chunk's steps with the carried state, then the look-ahead's from a copy of it (layer 0's
/// outputs are the window's first_forward, where given; the last layer's look-ahead outputs are not
/// made, runs_ahead); the reverse directions start from zeros (in the rows the window reaches).
struct CpuChunkForward : CpuForward {
    const ChunkWindow& window;

    void scan(int layer, int direction, ConstSeqView in, SeqView out, Index T, Index B, const std::int64_t* lengths,
              float* h, float* c, RecordView::Cell* kept)
    {
        const Index C = window.chunk_steps, H_out = weights.spec.output_size(), H = weights.spec.hidden_size;
        if (layer == 0 && direction == 0 && window.first_forward) {
            copy_steps(ConstSeqView::time_major(window.first_forward, B, H_out, H_out), out, T, B);
            return;
        }
        if (direction == 0) {
            // Each window's chunk from the state its predecessor's ends with, then all windows'
            // look-aheads in one run.
            const Index R = window.rows;
            for (Index first = 0; first < B; first += R) {
                if (first > 0) {
                    std::copy_n(h + (first - R) * H_out, R * H_out, h + first * H_out);
                    if (c)
                        std::copy_n(c + (first - R) * H, R * H, c + first * H);
                }
                scan_layer(weights, layer, 0, in.from_row(first), out.from_row(first), C, R,
                           window.chunk_lengths + first, h + first * H_out, c ? c + first * H : nullptr, ws, kept);
            }
            if (T == C || !runs_ahead(weights.spec, layer))
                return;
            std::copy_n(h, B * H_out, window.h_lookahead);
            if (c)
                std::copy_n(c, B * H, window.c_lookahead);
            RecordView::Cell kept_ahead = kept ? kept->from_step(weights.spec, C, B) : RecordView::Cell{};
            scan_layer(weights, layer, 0, in.from_step(C), out.from_step(C), T - C, B, window.lookahead_lengths,
                       window.h_lookahead, c ? window.c_lookahead : nullptr, ws, kept ? &kept_ahead : nullptr);
            return;
        }
        for (Index b = 0; b < B; ++b) {
            if (lengths && lengths[b] == 0)
                continue;  // a row the window does not reach keeps its last run's state
            std::fill_n(h + b * H_out, H_out, 0.0f);
            if (c)
                std::fill_n(c + b * H, H, 0.0f);
        }
        scan_layer(weights, layer, direction, in, out, T, B, lengths, h, c, ws, kept);
    }
};

}  // namespace

void run_stack_chunk(const RunWeights& weights, ConstSeqView x, SeqView y, Index T, Index B,
                     const std::int64_t* lengths, const ChunkWindow& window, float* h, float* c, Workspace& ws,
                     RecordView* record, std::mt19937_64* rng)
{
    CpuChunkForward backend{{weights, ws, rng}, window};
    forward_stack(backend, weights.spec, x, y, T, B, lengths, h, c, record);
}

namespace {

/// Back through one window of a chunked forward: a forward direction through its look-ahead run
/// (whose end state went nowhere), then through the chunk, with the gradient of the chunk's end
/// state from both the look-ahead run and the chunks after it.
struct CpuChunkBackward : CpuBackward {
    const ChunkWindow& window;

    void scan_back(int layer, int direction, ConstSeqView d_out, float* d_in, float* dh, float* dc,
                   const RecordView::Cell& kept)
    {
        const Index T = pass.T, C = window.chunk_steps, B = pass.B;
        const ModelSpec& spec = pass.spec;
        if (direction != 0) {
            CpuBackward::scan_back(layer, direction, d_out, d_in, dh, dc, kept);
            return;
        }
        if (T > C && runs_ahead(spec, layer)) {
            const Index H_out = spec.output_size(), H = spec.hidden_size, I = spec.layer_input_size(layer);
            std::copy_n(dh, B * H_out, window.h_lookahead);
            std::fill_n(dh, B * H_out, 0.0f);
            if (dc) {
                std::copy_n(dc, B * H, window.c_lookahead);
                std::fill_n(dc, B * H, 0.0f);
            }
            const RecordView ahead_record = pass.record.from_step(spec, C, B);
            const BackwardPass ahead{spec, pass.parameters, pass.gradients, ahead_record, T - C, B,
                                     window.lookahead_lengths};
            backward_layer(ahead, layer, 0, d_out.from_step(C), d_in + C * B * I, dh, dc, threads);
            mat(dh, B, H_out) += mat(static_cast<const float*>(window.h_lookahead), B, H_out);
            if (dc)
                mat(dc, B, H) += mat(static_cast<const float*>(window.c_lookahead), B, H);
        }
        const BackwardPass chunk{spec, pass.parameters, pass.gradients, pass.record, C, B, window.chunk_lengths};
        backward_layer(chunk, layer, 0, d_out, d_in, dh, dc, threads);
    }
};

}  // namespace

void run_backward_chunk(const BackwardPass& pass, const ChunkWindow& window, ConstSeqView dy, const float* dh_n,
                        const float* dc_n, SeqView dx, float* dh0, float* dc0, float* d_out, float* d_in)
{
    CpuChunkBackward backend{{pass, 1}, window};
    backward_stack(backend, pass, dy, dh_n, dc_n, dx, dh0, dc0, d_out, d_in);
}

void run_backward(const BackwardPass& pass, ConstSeqView dy, const float* dh_n, const float* dc_n, SeqView dx,
                  float* dh0, float* dc0, int threads)
{
    Buffer d_out(static_cast<std::size_t>(backward_buffer_size(pass.spec, pass.T, pass.B)));
    Buffer d_in(d_out.size());
    CpuBackward backend{pass, threads};
    backward_stack(backend, pass, dy, dh_n, dc_n, dx, dh0, dc0, d_out.data(), d_in.data());
}

}  // namespace streamrnn
