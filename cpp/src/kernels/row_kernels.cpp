// cpp/src/kernels/row_kernels.cpp: the one-row steps of row_kernels.hpp for one instruction set,
// at every vector width it has (4, 8 and, with AVX-512, 16 floats), so that a model of 8 units
// steps in vectors of 8 rather than in padded or scalar ones. Built once per set beside
// panel_kernels.cpp and under the same rule: everything is in an unnamed namespace but the table
// (STREAMRNN_ROW_KERNELS_NAME), and only the intrinsics are included.
// Part of streamrnn, MIT licence.
#include "kernels/row_kernels.hpp"

#include <immintrin.h>

namespace streamrnn {

namespace {

using Index = std::ptrdiff_t;

// A step is one function: every helper goes into it, so that vectors stay in registers (a helper
// called out of line passes them through memory).
#define STREAMRNN_ROW_INLINE inline __attribute__((always_inline))

// ---- Vectors of W floats: the same operations at every width, so that every width (and both
// instruction sets) computes the same numbers.
template <int W>
struct Vec;

template <>
struct Vec<4> {
    __m128 v;
    static Vec zero() { return {_mm_setzero_ps()}; }
    static Vec set(float a) { return {_mm_set1_ps(a)}; }
    static Vec load(const float* p) { return {_mm_loadu_ps(p)}; }
    static Vec broadcast(const float* p) { return {_mm_broadcast_ss(p)}; }
    void store(float* p) const { _mm_storeu_ps(p, v); }
    static __m128i mask(Index n) { return _mm_cmpgt_epi32(_mm_set1_epi32(int(n)), _mm_setr_epi32(0, 1, 2, 3)); }
    /// The first n < W lanes from p, zeros after.
    static Vec load_first(const float* p, Index n) { return {_mm_maskload_ps(p, mask(n))}; }
    void store_first(float* p, Index n) const { _mm_maskstore_ps(p, mask(n), v); }
    friend Vec operator+(Vec a, Vec b) { return {_mm_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm_mul_ps(a.v, b.v)}; }
    friend Vec reciprocal(Vec a) { return {_mm_div_ps(_mm_set1_ps(1.0f), a.v)}; }
    /// a * b + c, fused.
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm_min_ps(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm_max_ps(a.v, b.v)}; }
    friend Vec bits_xor(Vec a, Vec b) { return {_mm_xor_ps(a.v, b.v)}; }
    friend Vec round(Vec a) { return {_mm_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    /// a * 2^n, n a whole number, the result normal.
    friend Vec scale(Vec a, Vec n)
    {
        const __m128i exponent = _mm_slli_epi32(_mm_cvtps_epi32(n.v), 23);
        return {_mm_castsi128_ps(_mm_add_epi32(_mm_castps_si128(a.v), exponent))};
    }
};

template <>
struct Vec<8> {
    __m256 v;
    static Vec zero() { return {_mm256_setzero_ps()}; }
    static Vec set(float a) { return {_mm256_set1_ps(a)}; }
    static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
    static Vec broadcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
    void store(float* p) const { _mm256_storeu_ps(p, v); }
    static __m256i mask(Index n)
    {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static Vec load_first(const float* p, Index n) { return {_mm256_maskload_ps(p, mask(n))}; }
    void store_first(float* p, Index n) const { _mm256_maskstore_ps(p, mask(n), v); }
    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
    friend Vec reciprocal(Vec a) { return {_mm256_div_ps(_mm256_set1_ps(1.0f), a.v)}; }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
    friend Vec bits_xor(Vec a, Vec b) { return {_mm256_xor_ps(a.v, b.v)}; }
    friend Vec round(Vec a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    friend Vec scale(Vec a, Vec n)
    {
        const __m256i exponent = _mm256_slli_epi32(_mm256_cvtps_epi32(n.v), 23);
        return {_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(a.v), exponent))};
    }
};

#if defined(__AVX512F__)
template <>
struct Vec<16> {
    __m512 v;
    static Vec zero() { return {_mm512_setzero_ps()}; }
    static Vec set(float a) { return {_mm512_set1_ps(a)}; }
    static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
    static Vec broadcast(const float* p) { return {_mm512_set1_ps(*p)}; }
    void store(float* p) const { _mm512_storeu_ps(p, v); }
    static __mmask16 mask(Index n) { return static_cast<__mmask16>((1u << n) - 1u); }
    static Vec load_first(const float* p, Index n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
    void store_first(float* p, Index n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
    friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
    /// 1 / a: the 14-bit estimate and a Newton step (within an ulp), not a division, whose
    /// throughput on 16 lanes is a fraction of the multiply-adds'.
    friend Vec reciprocal(Vec a)
    {
        const __m512 estimate = _mm512_rcp14_ps(a.v);
        return {_mm512_fmadd_ps(estimate, _mm512_fnmadd_ps(a.v, estimate, _mm512_set1_ps(1.0f)), estimate)};
    }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
    friend Vec bits_xor(Vec a, Vec b)
    {
        return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_castps_si512(b.v)))};
    }
    friend Vec round(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    friend Vec scale(Vec a, Vec n) { return {_mm512_scalef_ps(a.v, n.v)}; }
};
#endif

}  // namespace

namespace cells {

// ---- The activations, vectorised, as the cells' equations call them (cells::sigmoid, ...): the
// sigmoid within 3 float32 ulps of the exact function, tanh within 5 (tests/cpp/test_row_step.cpp
// checks them against double precision), with no division under AVX-512.

/// e^a for a in [-87, 88]: a = n ln 2 + r (ln 2 in two parts, so that r is exact to float
/// precision), |r| <= ln 2 / 2, e^r = 1 + r + r^2 q(r) with q a least-squares fit of degree 5
/// (within an ulp), then times 2^n.
template <int W>
STREAMRNN_ROW_INLINE Vec<W> exp_of(Vec<W> a)
{
    using V = Vec<W>;
    const V n = round(a * V::set(1.44269504f));
    V r = fma(n, V::set(-0.693359375f), a);
    r = fma(n, V::set(2.12194440e-4f), r);
    V q = V::set(1.98948124e-4f);
    q = fma(q, r, V::set(1.39295717e-3f));
    q = fma(q, r, V::set(8.33330397e-3f));
    q = fma(q, r, V::set(4.16665040e-2f));
    q = fma(q, r, V::set(1.66666672e-1f));
    q = fma(q, r, V::set(0.5f));
    return scale(fma(r * r, q, r) + V::set(1.0f), n);
}

/// 1 / (1 + e^-a); e^-a's argument clamped where the result is 0 or 1 in float32 anyway.
template <int W>
STREAMRNN_ROW_INLINE Vec<W> sigmoid(Vec<W> a)
{
    using V = Vec<W>;
    // The limits as first operands: a NaN passes through min and max (they return the second).
    const V e = exp_of(min(V::set(88.0f), max(V::set(-87.0f), bits_xor(a, V::set(-0.0f)))));
    return reciprocal(V::set(1.0f) + e);
}

/// tanh a = a P(a^2) / Q(a^2) for |a| <= 9, a rational fit (tools/fit_tanh.py: 1.3e-9 relative
/// before rounding) whose chain of operations is half that of
/// one through e^2a: a step's latency waits on two activations, one of them a tanh. P and Q in
/// Estrin's form (pairs joined through a^4). Past 9 the result is +-1 (tanh is 1 there in float32):
/// a - x (0 within the fit) pushes it past the final clamp. Within 5 float32 ulps, as Eigen's tanh
/// (4.65), which the whole-sequence forward runs.
template <int W>
STREAMRNN_ROW_INLINE Vec<W> tanh(Vec<W> a)
{
    using V = Vec<W>;
    const V x = min(V::set(9.0f), max(V::set(-9.0f), a));  // limits first: a NaN passes through
    const V y = x * x, y2 = y * y;
    const V p = fma(y2,
                    fma(y2, fma(V::set(-1.22503379e-11f), y, V::set(3.06481773e-8f)),
                        fma(V::set(2.80337026e-5f), y, V::set(3.86962760e-3f))),
                    fma(V::set(1.36809528e-1f), y, V::set(1.0f)));
    const V q = fma(y2,
                    fma(y2, V::set(1.28920078e-6f), fma(V::set(3.94092349e-4f), y, V::set(2.72505954e-2f))),
                    fma(V::set(4.70142841e-1f), y, V::set(1.0f)));
    const V t = fma(a - x, V::set(1e30f), (x * p) * reciprocal(q));
    return min(V::set(1.0f), max(V::set(-1.0f), t));
}

template <int W>
STREAMRNN_ROW_INLINE Vec<W> relu(Vec<W> a)
{
    return max(Vec<W>::zero(), a);  // zero first: a NaN passes through
}

}  // namespace cells

}  // namespace streamrnn

// The cells' equations, over the vectors above.
#define STREAMRNN_CELLS_WITHOUT_EIGEN
#include "cells/gru.hpp"
#include "cells/lstm.hpp"
#include "cells/rnn.hpp"

namespace streamrnn {

namespace {

using cells::Gru;
using cells::Lstm;

// ---- The step.

/// acc[b] += a [K] times rows of B vectors `pitch` floats apart from p: one broadcast of a per row,
/// k split `ways` ways for independent chains of multiply-adds (summed into acc at the end).
template <int W, int B, int ways>
STREAMRNN_ROW_INLINE void accumulate(Vec<W> (&acc)[B], const float* a, Index K, const float* p, Index pitch) noexcept
{
    using V = Vec<W>;
    V part[ways - 1][B];
#pragma GCC unroll 8
    for (int q = 0; q < ways - 1; ++q)
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b)
            part[q][b] = V::zero();
    Index k = 0;
    for (; k + ways <= K; k += ways, p += ways * pitch) {
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b)
            acc[b] = fma(V::load(p + b * W), V::broadcast(a + k), acc[b]);
#pragma GCC unroll 8
        for (int q = 1; q < ways; ++q)
#pragma GCC unroll 8
            for (int b = 0; b < B; ++b)
                part[q - 1][b] = fma(V::load(p + q * pitch + b * W), V::broadcast(a + k + q), part[q - 1][b]);
    }
    for (; k < K; ++k, p += pitch)
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b)
            acc[b] = fma(V::load(p + b * W), V::broadcast(a + k), acc[b]);
#pragma GCC unroll 8
    for (int q = 0; q < ways - 1; ++q)
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b)
            acc[b] = acc[b] + part[q][b];
}

/// The first n <= W floats at p: a whole vector where n == W, else the masked load (zeros after).
template <int W>
STREAMRNN_ROW_INLINE Vec<W> load_part(const float* p, Index n) noexcept
{
    return n == W ? Vec<W>::load(p) : Vec<W>::load_first(p, n);
}
template <int W>
STREAMRNN_ROW_INLINE void store_part(Vec<W> v, float* p, Index n) noexcept
{
    if (n == W)
        v.store(p);
    else
        v.store_first(p, n);
}

template <int W, int B>
STREAMRNN_ROW_INLINE void load_row(Vec<W> (&acc)[B], const float* p) noexcept
{
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b)
        acc[b] = Vec<W>::load(p + b * W);
}

/// The floats of one row of a step's scratch (row_scratch_floats): `width` rounded up to 16.
Index scratch_row(Index width) { return (width + 15) / 16 * 16; }

/// One layer's step: in [I] and h [H_out] -> next [H_out]; c [H] in place (LSTM). `work`: 3 rows
/// of `row` floats (at least H, padded) for what a cell keeps between passes over its chunks.
template <int W, RowCell cell>
STREAMRNN_ROW_INLINE void layer_step(const RowLayer& layer, const float* in, const float* h, float* c, float* next,
                                     float* work, Index row) noexcept
{
    using V = Vec<W>;
    constexpr int B = row_blocks(cell);
    const Index I = layer.input_size, H = layer.hidden_size, H_out = layer.output_size;
    const Index chunks = (H + W - 1) / W;
    const Index pitch = B * W;
    const Index panel = (I + H_out) * pitch;
    for (Index j = 0; j < chunks; ++j) {
        const float* p = layer.panels + j * panel;
        const Index first = j * W, n = H - first < W ? H - first : W;
        if constexpr (cell == RowCell::lstm || cell == RowCell::lstm_options) {
            V acc[4];
            load_row(acc, layer.bias + j * pitch);
            accumulate<W, 4, 2>(acc, in, I, p, pitch);
            accumulate<W, 4, 2>(acc, h, H_out, p + I * pitch, pitch);
            V i, f, g, o, c_next;
            if constexpr (cell == RowCell::lstm) {
                i = Lstm::gate(acc[0]), f = Lstm::gate(acc[1]), g = Lstm::cell_input(acc[2]);
                o = Lstm::gate(acc[3]);
                c_next = Lstm::next_cell(f, load_part<W>(c + first, n), i, g);
            } else {
                // ONNX's options, as the general step (cells/lstm.cpp) has them: peepholes into
                // the pre-activations, each clipped, f = 1 - i where coupled.
                const V c_prev = load_part<W>(c + first, n);
                const float* peephole = layer.peephole;
                const V bound = V::set(layer.clip > 0.0f ? layer.clip : 3.4e38f);
                const V low = bits_xor(bound, V::set(-0.0f));
                auto clipped = [&](V a) { return max(low, min(bound, a)); };
                if (peephole) {
                    acc[0] = fma(load_part<W>(peephole + first, n), c_prev, acc[0]);
                    acc[1] = fma(load_part<W>(peephole + H + first, n), c_prev, acc[1]);
                }
                i = Lstm::gate(clipped(acc[0]));
                f = layer.input_forget ? V::set(1.0f) - i : Lstm::gate(clipped(acc[1]));
                g = Lstm::cell_input(clipped(acc[2]));
                c_next = Lstm::next_cell(f, c_prev, i, g);
                if (peephole)
                    acc[3] = fma(load_part<W>(peephole + 2 * H + first, n), c_next, acc[3]);
                o = Lstm::gate(clipped(acc[3]));
            }
            store_part(c_next, c + first, n);
            const V m = Lstm::output(o, c_next);
            if (layer.projection)
                m.store(work + first);  // padded: the projection reads whole chunks
            else
                store_part(m, next + first, n);
        } else if constexpr (cell == RowCell::gru_reset_after) {
            // r and z from the sum of their two parts; n from x's and, through r, h's.
            const float* bias = layer.bias + j * 4 * W;
            V from_x[3], from_h[3] = {V::zero(), V::zero(), V::load(bias + 3 * W)};
            load_row(from_x, bias);
            accumulate<W, 3, 1>(from_x, in, I, p, pitch);
            accumulate<W, 3, 1>(from_h, h, H_out, p + I * pitch, pitch);
            const V r = Gru::gate(from_x[0] + from_h[0]), z = Gru::gate(from_x[1] + from_h[1]);
            const V n_gate = Gru::candidate_reset_after(from_x[2], r, from_h[2]);
            store_part(Gru::next_state(n_gate, z, load_part<W>(h + first, n)), next + first, n);
        } else if constexpr (cell == RowCell::gru_reset_before) {
            // r and z first, for every chunk: the n block multiplies r h, all of it.
            const float* bias = layer.bias + j * 4 * W;
            V from_x[3], from_h[2] = {V::zero(), V::zero()};
            load_row(from_x, bias);
            accumulate<W, 3, 1>(from_x, in, I, p, pitch);
            accumulate<W, 2, 1>(from_h, h, H_out, p + I * pitch, pitch);
            const V r = Gru::gate(from_x[0] + from_h[0]), z = Gru::gate(from_x[1] + from_h[1]);
            Gru::reset_state(r, load_part<W>(h + first, n)).store(work + first);  // padded with zeros
            z.store(work + row + first);
            from_x[2].store(work + 2 * row + first);
        } else {
            V acc[1];
            load_row(acc, layer.bias + j * pitch);
            accumulate<W, 1, 4>(acc, in, I, p, pitch);
            accumulate<W, 1, 4>(acc, h, H_out, p + I * pitch, pitch);
            store_part(cells::Rnn<cell == RowCell::rnn_relu>::activate(acc[0]), next + first, n);
        }
    }
    if constexpr (cell == RowCell::gru_reset_before) {
        // n from x's part and W_hn (r h) + b_hn, with every chunk's r h made.
        for (Index j = 0; j < chunks; ++j) {
            const Index first = j * W, n = H - first < W ? H - first : W;
            V acc[1] = {V::load(layer.bias + j * 4 * W + 3 * W)};
            accumulate<W, 1, 4>(acc, work, H, layer.panels + j * panel + I * pitch + 2 * W, pitch);
            const V n_gate = Gru::candidate_reset_before(V::load(work + 2 * row + first), acc[0]);
            store_part(Gru::next_state(n_gate, V::load(work + row + first), load_part<W>(h + first, n)), next + first, n);
        }
    }
    if constexpr (cell == RowCell::lstm || cell == RowCell::lstm_options) {
        if (layer.projection) {
            //  h' = W_hr m
            for (Index first = 0; first < H_out; first += W) {
                const Index n = H_out - first < W ? H_out - first : W;
                V acc[1] = {V::zero()};
                accumulate<W, 1, 4>(acc, work, H, layer.projection + first * H, W);
                store_part(acc[0], next + first, n);
            }
        }
    }
}

/// to [n] = from [n] (+ add [n], where given).
template <int W>
STREAMRNN_ROW_INLINE void copy_row(const float* from, const float* add, float* to, Index n) noexcept
{
    using V = Vec<W>;
    Index k = 0;
    for (; k + W <= n; k += W)
        (add ? V::load(from + k) + V::load(add + k) : V::load(from + k)).store(to + k);
    if (k < n)
        (add ? V::load_first(from + k, n - k) + V::load_first(add + k, n - k) : V::load_first(from + k, n - k))
            .store_first(to + k, n - k);
}

template <int W, RowCell cell>
void row_step(const RowLayer* layers, int count, const float* x, float* y, float* h, float* c, float* scratch) noexcept
{
    // scratch: next h [row], the cell's work [3 rows], two layer outputs [row each] (residual).
    Index widest = 0;
    for (int l = 0; l < count; ++l)
        widest = layers[l].hidden_size > widest ? layers[l].hidden_size : widest,
        widest = layers[l].output_size > widest ? layers[l].output_size : widest;
    const Index row = scratch_row(widest);
    float* const next = scratch;
    float* const work = scratch + row;
    float* const outputs[2] = {scratch + 4 * row, scratch + 5 * row};
    const float* in = x;
    for (int l = 0; l < count; ++l) {
        const RowLayer& layer = layers[l];
        layer_step<W, cell>(layer, in, h, c, next, work, row);
        const Index H_out = layer.output_size;
        copy_row<W>(next, nullptr, h, H_out);
        const bool last = l + 1 == count;
        if (layer.residual) {
            float* out = last ? y : outputs[l % 2];
            copy_row<W>(next, in, out, H_out);
            in = out;
        } else if (last) {
            copy_row<W>(next, nullptr, y, H_out);
        } else {
            in = h;
        }
        h += H_out;
        if (c)
            c += layer.hidden_size;
    }
}

template <int W>
RowStep step_at(RowCell cell)
{
    switch (cell) {
    case RowCell::lstm: return row_step<W, RowCell::lstm>;
    case RowCell::lstm_options: return row_step<W, RowCell::lstm_options>;
    case RowCell::gru_reset_after: return row_step<W, RowCell::gru_reset_after>;
    case RowCell::gru_reset_before: return row_step<W, RowCell::gru_reset_before>;
    case RowCell::rnn_tanh: return row_step<W, RowCell::rnn_tanh>;
    case RowCell::rnn_relu: return row_step<W, RowCell::rnn_relu>;
    }
    return nullptr;
}

#if defined(__AVX512F__)
constexpr int widest_lanes = 16;
#else
constexpr int widest_lanes = 8;
#endif

RowStep step_of(RowCell cell, int lanes)
{
    switch (lanes) {
    case 4: return step_at<4>(cell);
    case 8: return step_at<8>(cell);
#if defined(__AVX512F__)
    case 16: return step_at<16>(cell);
#endif
    default: return nullptr;
    }
}

/// f over x [n] in vectors of eight, the last one masked.
template <RowFunction f>
void squash_row(float* x, Index n) noexcept
{
    using V = Vec<8>;
    auto apply = [](V v) { return f == RowFunction::tanh ? cells::tanh(v) : cells::sigmoid(v); };
    Index i = 0;
    for (; i + 8 <= n; i += 8)
        apply(V::load(x + i)).store(x + i);
    if (i < n)
        apply(V::load_first(x + i, n - i)).store_first(x + i, n - i);
}

void squash(RowFunction f, float* x, std::ptrdiff_t n) noexcept
{
    if (f == RowFunction::tanh)
        squash_row<RowFunction::tanh>(x, n);
    else
        squash_row<RowFunction::sigmoid>(x, n);
}

}  // namespace

extern const RowKernels STREAMRNN_ROW_KERNELS_NAME;
const RowKernels STREAMRNN_ROW_KERNELS_NAME = {widest_lanes, step_of, squash};

}  // namespace streamrnn
