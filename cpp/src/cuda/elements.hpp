// cpp/src/cuda/elements.hpp: the element-wise part of a recurrent step on the GPU, one element per
// CUDA thread: where each element of a step reads and writes, around the cells' own equations
// (cells/lstm.hpp, gru.hpp, rnn.hpp), which the CPU engine runs too. nvcc compiles it for the
// kernels (kernels.cu), the host compiler for the tests that run the GPU's plan on the CPU.
// Part of streamrnn, MIT licence.
#pragma once

#include "cells/functions.hpp"
#include "cells/gru.hpp"
#include "cells/lstm.hpp"
#include "cells/rnn.hpp"
#include "seq_view.hpp"

#include <cstdint>

namespace streamrnn::gpu {

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
    /// A training forward's record of this step (RecordView's rows of step t), or null: the
    /// activated gates [B, G], h and (LSTM) c before and after, and `extra` [B, H].
    float* keep_gates = nullptr;
    float* keep_h_prev = nullptr;
    float* keep_c_prev = nullptr;
    float* keep_c_next = nullptr;
    float* keep_extra = nullptr;
    /// ONNX's options (the elements' `options` instances read them): the layer and direction's
    /// functions and clip, its peepholes [3, H] (rows i, f, o) or null, and the record's
    /// pre-activations [B, G] (before clipping), or null.
    CellOptions options;
    const float* peephole = nullptr;
    float* keep_pre = nullptr;

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
        const long long at = (long long)b * H_out + j;
        if (keep_h_prev)
            keep_h_prev[at] = h[at];
        const bool keep = valid(b);
        if (keep)
            h[at] = value;
        y[b * y_b_pitch + j] = keep ? value : 0.0f;
    }
    STREAMRNN_HD void keep_gate(int b, long long col, float value) const
    {
        if (keep_gates)
            keep_gates[b * G + col] = value;
    }
    /// Function `index` of the options at the pre-activation `value` of gate column `col`, which a
    /// record keeps (before clipping) for the backward's slopes.
    STREAMRNN_HD float activate(int index, int b, long long col, float value) const
    {
        if (keep_pre)
            keep_pre[b * G + col] = value;
        return cells::activate(options.functions[index], cells::clipped(value, options.clip));
    }
};

/// What one backward step of one layer and direction reads and writes, over B rows: the record of
/// forward step t (StepArgs' keep_* rows), the gradients carried down the steps, and the
/// gradients of this step's pre-activations, from which the caller's products make the rest.
struct BackStepArgs {
    int B = 0;
    int H = 0;
    int H_out = 0;
    long long G = 0;
    const float* gates = nullptr;   ///< [B, G]: activated
    const float* h_prev = nullptr;  ///< [B, H_out]
    const float* c_prev = nullptr;  ///< [B, H] (LSTM)
    const float* c_next = nullptr;  ///< [B, H] (LSTM)
    const float* extra = nullptr;   ///< [B, H] (see StepArgs::keep_extra)
    /// dL/d(this step's output): row b at d_out + b * d_out_b_pitch.
    const float* d_out = nullptr;
    long long d_out_b_pitch = 0;
    float* dh = nullptr;        ///< [B, H_out]: carried; in, dL/d(h after the step); out, before it
    float* dh_total = nullptr;  ///< [B, H_out]: dh plus d_out (valid rows)
    float* dh_kept = nullptr;   ///< [B, H_out]: dh_total of valid rows, for dW_hr (projection), or null
    /// [B, H]: LSTM with projection, dh_total W_hr; GRU reset-before [B, H_out], dL/d(r * h).
    const float* dm = nullptr;
    float* dc = nullptr;    ///< [B, H] (LSTM): carried, updated in place
    float* da_x = nullptr;  ///< [B, G]: dL/d(W_ih x + b_ih)
    float* da_h = nullptr;  ///< [B, G]: dL/d(W_hh h + b_hh); da_x itself for LSTM and RNN
    /// [B, H_out]: the part of dL/dh that does not go through W_hh (GRU: dh z, and d(r h) r for
    /// reset-before); null for LSTM and RNN.
    float* dh_direct = nullptr;
    const float* dh_rec = nullptr;  ///< [B, H_out]: da_h W_hh, made by the caller's product
    const std::int64_t* lengths = nullptr;
    long long t = 0;
    /// ONNX's options, as StepArgs has them: the forward's pre-activations [B, G] (the record's).
    CellOptions options;
    const float* pre = nullptr;
    const float* peephole = nullptr;

    STREAMRNN_HD bool valid(int b) const { return !lengths || t < lengths[b]; }
    /// The slope of function `index` of the options at gate column `col`'s kept pre-activation.
    STREAMRNN_HD float slope(int index, int b, long long col) const
    {
        return cells::slope(options.functions[index], pre[b * G + col], options.clip);
    }
    /// Writes the gradient of gate column `col`: zero past the row's length, where the step did
    /// not happen.
    STREAMRNN_HD void set_da(float* da, int b, long long col, float value) const
    {
        da[b * G + col] = valid(b) ? value : 0.0f;
    }
};

/// Each element type: count(args) elements, apply(args, i) for each; i = b * width + j. Those of
/// the cells have an `options` instance, which runs ONNX's options (the args' CellOptions: any
/// function, clipping, peepholes, coupled gates) where the other runs the cell's own equations.
template <bool relu, bool options = false>
struct RnnElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        float h;
        if constexpr (options)
            h = a.activate(0, b, j, a.pre(b, j));
        else
            h = cells::Rnn<relu>::activate(a.pre(b, j));
        a.keep_gate(b, j, h);
        a.emit(b, j, h);
    }
};

template <bool relu, bool options = false>
struct RnnBackElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        const int b = int(i / a.H), j = int(i % a.H);
        if constexpr (options)
            a.set_da(a.da_x, b, j, a.dh_total[i] * a.slope(0, b, j));
        else
            a.set_da(a.da_x, b, j, cells::Rnn<relu>::d_pre(a.dh_total[i], a.gates[b * a.G + j]));
    }
};

/// The start of every backward step: dh_total = dh + d_out on valid rows.
struct BackStartElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H_out; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        const int b = int(i / a.H_out), j = int(i % a.H_out);
        const bool valid = a.valid(b);
        const float total = a.dh[i] + (valid ? a.d_out[b * a.d_out_b_pitch + j] : 0.0f);
        a.dh_total[i] = total;
        if (a.dh_kept)
            a.dh_kept[i] = valid ? total : 0.0f;
    }
};

/// The end of every backward step: dh = da_h W_hh (+ dh_direct), or, past the row's length, dh as
/// it came (the step carried the state through).
struct BackFinishElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H_out; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        if (a.valid(int(i / a.H_out)))
            a.dh[i] = a.dh_rec[i] + (a.dh_direct ? a.dh_direct[i] : 0.0f);
    }
};

/// The LSTM's step: the gates, c' and m = o tanh(c') (or, with a projection, m into `hidden`
/// first, for ProjectionElement after the product).
template <bool options = false>
struct LstmElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        using cells::Lstm;
        const int b = int(i / a.H), j = int(i % a.H);
        const long long H = a.H;
        float& c = a.c[i];
        float in, forget, cell, out, c_next, m;
        if constexpr (options) {
            // Peepholes: i and f see c, o sees c'. f = 1 - i where coupled.
            const float* p = a.peephole;
            in = a.activate(0, b, j, a.pre(b, j) + (p ? p[j] * c : 0.0f));
            const float pre_f = a.pre(b, H + j) + (p ? p[H + j] * c : 0.0f);
            forget = a.options.input_forget ? 1.0f - in : a.activate(0, b, H + j, pre_f);
            cell = a.activate(1, b, 2 * H + j, a.pre(b, 2 * H + j));
            c_next = Lstm::next_cell(forget, c, in, cell);
            out = a.activate(0, b, 3 * H + j, a.pre(b, 3 * H + j) + (p ? p[2 * H + j] * c_next : 0.0f));
            m = out * cells::activate(a.options.functions[2], c_next);
        } else {
            in = Lstm::gate(a.pre(b, j));
            forget = Lstm::gate(a.pre(b, H + j));
            cell = Lstm::cell_input(a.pre(b, 2 * H + j));
            out = Lstm::gate(a.pre(b, 3 * H + j));
            c_next = Lstm::next_cell(forget, c, in, cell);
            m = Lstm::output(out, c_next);
        }
        a.keep_gate(b, j, in);
        a.keep_gate(b, H + j, forget);
        a.keep_gate(b, 2 * H + j, cell);
        a.keep_gate(b, 3 * H + j, out);
        if (a.keep_c_prev)
            a.keep_c_prev[i] = c;
        if (a.valid(b))
            c = c_next;
        if (a.keep_c_next)
            a.keep_c_next[i] = c;
        if (a.hidden) {
            a.hidden[i] = m;  // ProjectionElement writes h and y
            if (a.keep_extra)
                a.keep_extra[i] = m;
            return;
        }
        a.emit(b, j, m);
    }
};

template <bool options = false>
struct LstmBackElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        using cells::Lstm;
        const int b = int(i / a.H), j = int(i % a.H);
        const long long H = a.H;
        const float* gates = a.gates + b * a.G;
        const float in = gates[j], forget = gates[H + j], cell = gates[2 * H + j], out = gates[3 * H + j];
        const float dm = a.dm ? a.dm[i] : a.dh_total[i];
        if constexpr (options) {
            // As the CPU's general step (cells/lstm.cpp) has it.
            const float c_prev = a.c_prev[i], c_next = a.c_next[i];
            const float* p = a.peephole;
            const ActivationFunction& h_fn = a.options.functions[2];
            const float d_out = dm * cells::activate(h_fn, c_next) * a.slope(0, b, 3 * H + j);
            float dc = a.dc[i] + dm * out * cells::slope(h_fn, c_next, 0.0f) + (p ? d_out * p[2 * H + j] : 0.0f);
            float d_in, d_forget = 0.0f;
            if (a.options.input_forget) {
                d_in = dc * (cell - c_prev) * a.slope(0, b, j);
            } else {
                d_in = dc * cell * a.slope(0, b, j);
                d_forget = dc * c_prev * a.slope(0, b, H + j);
            }
            a.set_da(a.da_x, b, j, d_in);
            a.set_da(a.da_x, b, H + j, d_forget);
            a.set_da(a.da_x, b, 2 * H + j, dc * in * a.slope(1, b, 2 * H + j));
            a.set_da(a.da_x, b, 3 * H + j, d_out);
            if (a.valid(b))
                a.dc[i] = dc * forget + (p ? d_in * p[j] + d_forget * p[H + j] : 0.0f);
        } else {
            const float tanh_c = cells::tanh(a.c_next[i]);
            const float dc = Lstm::cell_gradient(a.dc[i], dm, out, tanh_c);
            a.set_da(a.da_x, b, j, Lstm::d_input(dc, cell, in));
            a.set_da(a.da_x, b, H + j, Lstm::d_forget(dc, a.c_prev[i], forget));
            a.set_da(a.da_x, b, 2 * H + j, Lstm::d_cell_input(dc, in, cell));
            a.set_da(a.da_x, b, 3 * H + j, Lstm::d_output(dm, tanh_c, out));
            if (a.valid(b))
                a.dc[i] = Lstm::d_cell_prev(dc, forget);
        }
    }
};

/// The peepholes' gradient terms of one step row: [rows, 3H] = dA_i c, dA_f c, dA_o c' (the
/// caller sums them over rows with a product, as the biases').
struct PeepholeTermsArgs {
    const float* da = nullptr;      ///< [rows, G]
    const float* c_prev = nullptr;  ///< [rows, H]
    const float* c_next = nullptr;  ///< [rows, H]
    float* terms = nullptr;         ///< [rows, 3H]
    long long rows = 0;
    int H = 0;
};

struct PeepholeTermsElement {
    STREAMRNN_HD static long long count(const PeepholeTermsArgs& a) { return a.rows * 3 * a.H; }
    STREAMRNN_HD static void apply(const PeepholeTermsArgs& a, long long i)
    {
        const long long H = a.H, r = i / (3 * H), k = i % (3 * H), row = k / H, j = k % H;
        const long long gate = row == 2 ? 3 : row;  // P's rows i, f, o; the gates' i, f, g, o
        a.terms[i] = a.da[r * 4 * H + gate * H + j] * (row == 2 ? a.c_next : a.c_prev)[r * H + j];
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

/// GRU reset-before, first half: r, and hidden = r h, the input of W_hn's product.
template <bool options = false>
struct ResetElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        using cells::Gru;
        const int b = int(i / a.H), j = int(i % a.H);
        const float r = options ? a.activate(0, b, j, a.pre(b, j)) : Gru::gate(a.pre(b, j));
        a.keep_gate(b, j, r);
        a.hidden[i] = Gru::reset_state(r, a.h[(long long)b * a.H_out + j]);
        if (a.keep_extra)
            a.keep_extra[i] = a.hidden[i];
    }
};

/// The GRU's step: z, n and h' (reset-after also r; reset-before took r from ResetElement, and
/// rec's n block is W_hn (r h)).
template <bool reset_after, bool options = false>
struct GruElement {
    STREAMRNN_HD static long long count(const StepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const StepArgs& a, long long i)
    {
        using cells::Gru;
        const int b = int(i / a.H), j = int(i % a.H);
        const long long n_col = 2LL * a.H + j;
        const float z = options ? a.activate(0, b, a.H + j, a.pre(b, a.H + j)) : Gru::gate(a.pre(b, a.H + j));
        float x_n = a.xw[b * a.xw_b_pitch + n_col];
        float h_n = a.rec[b * a.G + n_col];
        if (a.b_ih) {
            x_n += a.b_ih[n_col];
            h_n += a.b_hh[n_col];
        }
        float n;
        if (reset_after) {
            const float r = options ? a.activate(0, b, j, a.pre(b, j)) : Gru::gate(a.pre(b, j));
            n = options ? a.activate(1, b, n_col, x_n + r * h_n) : Gru::candidate_reset_after(x_n, r, h_n);
            a.keep_gate(b, j, r);
            if (a.keep_extra)
                a.keep_extra[i] = h_n;
        } else {
            n = options ? a.activate(1, b, n_col, x_n + h_n) : Gru::candidate_reset_before(x_n, h_n);
        }
        a.keep_gate(b, a.H + j, z);
        a.keep_gate(b, n_col, n);
        a.emit(b, j, Gru::next_state(n, z, a.h[(long long)b * a.H_out + j]));
    }
};

/// Back through h' = n + z (h - n): the z and n gates of both sides, and dh's direct part.
/// Reset-after also the r gate (extra = h_n); reset-before leaves r to GruResetBackElement, after
/// the caller's product dm = d_n W_hn.
template <bool reset_after, bool options = false>
struct GruBackElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        using cells::Gru;
        const int b = int(i / a.H), j = int(i % a.H);
        const float* gates = a.gates + b * a.G;
        const float r = gates[j], z = gates[a.H + j], n = gates[2 * a.H + j];
        const float h = a.h_prev[(long long)b * a.H_out + j];
        const float dh = a.dh_total[i];
        const float dn = options ? dh * (1.0f - z) * a.slope(1, b, 2 * a.H + j) : Gru::d_candidate(dh, z, n);
        const float dz = options ? dh * (h - n) * a.slope(0, b, a.H + j) : Gru::d_update(dh, h, n, z);
        a.set_da(a.da_x, b, a.H + j, dz);
        a.set_da(a.da_h, b, a.H + j, dz);
        a.set_da(a.da_x, b, 2 * a.H + j, dn);
        a.dh_direct[i] = Gru::d_state_direct(dh, z);
        if (reset_after) {
            const float dr = options ? dn * a.extra[i] * a.slope(0, b, j) : Gru::d_reset(dn, a.extra[i], r);
            a.set_da(a.da_x, b, j, dr);
            a.set_da(a.da_h, b, j, dr);
            a.set_da(a.da_h, b, 2 * a.H + j, Gru::d_recurrent_candidate(dn, r));
        } else {
            a.set_da(a.da_h, b, 2 * a.H + j, dn);
        }
    }
};

/// GRU reset-before, the r gate: dm = dL/d(r h) = d_n W_hn.
template <bool options = false>
struct GruResetBackElement {
    STREAMRNN_HD static long long count(const BackStepArgs& a) { return (long long)a.B * a.H; }
    STREAMRNN_HD static void apply(const BackStepArgs& a, long long i)
    {
        using cells::Gru;
        const int b = int(i / a.H), j = int(i % a.H);
        const float r = a.gates[b * a.G + j];
        const float d_reset_h = a.dm[i];
        const float h = a.h_prev[(long long)b * a.H_out + j];
        const float dr = options ? d_reset_h * h * a.slope(0, b, j) : Gru::d_reset(d_reset_h, h, r);
        a.set_da(a.da_x, b, j, dr);
        a.set_da(a.da_h, b, j, dr);
        a.dh_direct[i] += Gru::d_state_through_reset(d_reset_h, r);
    }
};

/// Dropout between layers, as PyTorch's (inverted): data *= mask, each mask value 1 / keep with
/// probability keep, else 0, drawn from a counter-based hash of (seed, i), so that any thread of
/// any executor draws the same mask.
struct DropoutArgs {
    float* data = nullptr;
    float* mask = nullptr;
    long long count = 0;
    std::uint64_t seed = 0;
    float keep = 1.0f;
};

struct DropoutElement {
    STREAMRNN_HD static long long count(const DropoutArgs& a) { return a.count; }
    STREAMRNN_HD static void apply(const DropoutArgs& a, long long i)
    {
        // splitmix64 of the seed and the index: 24 random bits for a uniform in [0, 1).
        std::uint64_t v = a.seed + 0x9E3779B97F4A7C15ULL * (std::uint64_t(i) + 1);
        v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ULL;
        v = (v ^ (v >> 27)) * 0x94D049BB133111EBULL;
        v ^= v >> 31;
        const float uniform = float(v >> 40) * (1.0f / 16777216.0f);
        a.mask[i] = uniform < a.keep ? 1.0f / a.keep : 0.0f;
        a.data[i] *= a.mask[i];
    }
};

/// to *= by, element by element (the dropout mask on a gradient); or to = value where by is null.
struct ScaleArgs {
    float* to = nullptr;
    const float* by = nullptr;
    long long count = 0;
    float value = 0.0f;
};

struct ScaleElement {
    STREAMRNN_HD static long long count(const ScaleArgs& a) { return a.count; }
    STREAMRNN_HD static void apply(const ScaleArgs& a, long long i)
    {
        if (a.by)
            a.to[i] *= a.by[i];
        else
            a.to[i] = a.value;
    }
};

/// Copies T x B rows between two layouts (batch-first to time-major and back).
struct CopyArgs {
    ConstSeqView from;
    SeqView to;
    long long T = 0;
    long long B = 0;
};

struct CopyElement {
    STREAMRNN_HD static long long count(const CopyArgs& a) { return a.T * a.B * a.to.width; }
    STREAMRNN_HD static void apply(const CopyArgs& a, long long i)
    {
        const long long j = i % a.to.width, row = i / a.to.width;
        a.to.row(row / a.B, row % a.B)[j] = a.from.row(row / a.B, row % a.B)[j];
    }
};

/// The residual connection: out += in over rows (t, b) that are valid (rows past a sequence's
/// length stay zero, as the layer wrote them).
struct ResidualArgs {
    ConstSeqView in;
    SeqView out;
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
