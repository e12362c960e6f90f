// cpp/cuda/elements.hpp: the element-wise part of a recurrent step (gates, state update, output),
// one function per element, compiled for the GPU by nvcc and for the host by the C++ tests.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/spec.hpp"

#include <cstdint>
#include <math.h>

#if defined(__CUDACC__)
#define STREAMRNN_HD __host__ __device__ __forceinline__
#else
#define STREAMRNN_HD inline
#endif

namespace streamrnn::gpu {

/// T x B rows of `width` floats, row (t, b) at data + t * t_pitch + b * b_pitch: time-major or
/// batch-first, as SeqView, but plain data that a kernel can take by value.
struct Rows {
    float* data = nullptr;
    long long width = 0;
    long long t_pitch = 0;
    long long b_pitch = 0;

    STREAMRNN_HD float* row(long long t, long long b) const { return data + t * t_pitch + b * b_pitch; }
};

/// What the element-wise part of one step of one layer and direction reads and writes, over B
/// rows of H units. All pointers are in the memory the step runs in.
struct StepArgs {
    int B = 0;
    int H = 0;
    int H_out = 0;
    long long G = 0;
    /// This step's input projection x W_ih^T (no bias): row b at xw + b * xw_b_pitch.
    const float* xw = nullptr;
    long long xw_b_pitch = 0;
    /// [B, G]: h W_hh^T (no bias). GRU reset-before: its n block holds W_hn (r * h).
    const float* rec = nullptr;
    const float* b_ih = nullptr;  ///< [G] or null
    const float* b_hh = nullptr;  ///< [G] or null
    float* h = nullptr;           ///< [B, H_out]: the state, updated in place
    float* c = nullptr;           ///< [B, H] (LSTM)
    /// [B, H]: LSTM with projection o * tanh(c'), the projection's input; GRU reset-before r * h.
    float* hidden = nullptr;
    const float* projected = nullptr;  ///< [B, H_out]: hidden W_hr^T (LSTM with projection)
    float* y = nullptr;  ///< this step's output: row b at y + b * y_b_pitch
    long long y_b_pitch = 0;
    /// [B] or null: rows with t >= lengths[b] keep their state and output zeros.
    const std::int64_t* lengths = nullptr;
    long long t = 0;
    bool relu = false;  ///< RNN: relu rather than tanh

    STREAMRNN_HD bool valid(int b) const { return !lengths || t < lengths[b]; }
    /// The pre-activation of gate column `col` of row b: x and h terms with both biases.
    STREAMRNN_HD float pre(int b, long long col) const
    {
        float v = xw[b * xw_b_pitch + col] + rec[b * G + col];
        if (b_ih)
            v += b_ih[col] + b_hh[col];
        return v;
    }
    /// Writes the new h of row b, unit j, or leaves the state and outputs zero past its length.
    STREAMRNN_HD void emit(int b, int j, float value) const
    {
        const bool keep = valid(b);
        if (keep)
            h[b * H_out + j] = value;
        y[b * y_b_pitch + j] = keep ? value : 0.0f;
    }
};

STREAMRNN_HD float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/// Each element type: count(args) elements, apply(args, i) for each; i = b * width + j.
struct RnnElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        const float v = a.pre(b, j);
        a.emit(b, j, a.relu ? fmaxf(v, 0.0f) : tanhf(v));
    }
};

/// c' = f * c + i * g; h' = o * tanh(c') (or, with a projection, that into `hidden` first).
struct LstmElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        const float in = sigmoid(a.pre(b, j));
        const float forget = sigmoid(a.pre(b, a.H + j));
        const float cell = tanhf(a.pre(b, 2 * a.H + j));
        const float out = sigmoid(a.pre(b, 3 * a.H + j));
        float& c = a.c[(long long)b * a.H + j];
        const float c_next = forget * c + in * cell;
        const float m = out * tanhf(c_next);
        if (a.hidden) {
            a.hidden[(long long)b * a.H + j] = m;  // ProjectionElement writes h and y
            if (a.valid(b))
                c = c_next;
            return;
        }
        if (a.valid(b))
            c = c_next;
        a.emit(b, j, m);
    }
};

/// h = W_hr (o * tanh(c')), computed into `projected` by a product, becomes the state and output.
struct ProjectionElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H_out; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H_out), j = int(i % a.H_out);
        a.emit(b, j, a.projected[i]);
    }
};

/// GRU reset-before, first half: hidden = r * h, the input of W_hn's product.
struct ResetElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        a.hidden[i] = sigmoid(a.pre(b, j)) * a.h[(long long)b * a.H_out + j];
    }
};

/// h' = (1 - z) * n + z * h, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) (reset-after, PyTorch's)
/// or tanh(W_in x + b_in + W_hn (r * h) + b_hn) (reset-before: rec's n block is W_hn (r * h)).
template <bool reset_after>
struct GruElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        const long long n_col = 2LL * a.H + j;
        const float z = sigmoid(a.pre(b, a.H + j));
        float x_n = a.xw[b * a.xw_b_pitch + n_col];
        float h_n = a.rec[b * a.G + n_col];
        if (a.b_ih) {
            x_n += a.b_ih[n_col];
            h_n += a.b_hh[n_col];
        }
        const float n = tanhf(reset_after ? x_n + sigmoid(a.pre(b, j)) * h_n : x_n + h_n);
        const float h = a.h[(long long)b * a.H_out + j];
        a.emit(b, j, n + z * (h - n));
    }
};

/// The residual connection: out += in over rows (t, b) that are valid (rows past a sequence's
/// length stay zero, as the layer wrote them).
struct ResidualArgs {
    Rows in;
    Rows out;
    long long T = 0;
    long long B = 0;
    const std::int64_t* lengths = nullptr;
};

struct ResidualElement {
    STREAMRNN_HD static long long count(const ResidualArgs& a) { return a.T * a.B * a.out.width; }
    STREAMRNN_HD static void apply(const ResidualArgs& a, long long i)
    {
        const long long j = i % a.out.width, row = i / a.out.width;
        const long long t = row / a.B, b = row % a.B;
        if (!a.lengths || t < a.lengths[b])
            a.out.row(t, b)[j] += a.in.row(t, b)[j];
    }
};

}  // namespace streamrnn::gpu
