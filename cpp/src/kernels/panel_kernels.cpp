// cpp/src/kernels/panel_kernels.cpp: the kernels of PackedWeights and row_times for one instruction set,
// c (+)= a W^T over W packed in panels, and one row times a transposed copy of small weights.
// Built once per set (cpp/CMakeLists.txt: AVX-512, and AVX2 with FMA), its table named by
// STREAMRNN_KERNELS_NAME. Everything else here is in an unnamed namespace and it includes only
// the intrinsics: see PanelKernels. Part of streamrnn, MIT licence.
#include "kernels/panel_kernels.hpp"

#include <immintrin.h>

namespace streamrnn {

namespace {

using Index = std::ptrdiff_t;

Index smaller(Index a, Index b) { return a < b ? a : b; }

// One vector of floats. A tile of c is `tile_rows` rows by 2 vectors: 24 accumulators under
// AVX-512 (of 32 registers), 12 under AVX2 (of 16), each fed by two loads of W and one broadcast
// of a per row and step of k.
#if defined(__AVX512F__)
struct Vector {
    static constexpr const char* name = "avx512";
    static constexpr Index width = 16;
    static constexpr int tile_rows = 12;
    __m512 v;
    static Vector zero() { return {_mm512_setzero_ps()}; }
    static Vector load(const float* p) { return {_mm512_loadu_ps(p)}; }
    static Vector broadcast(const float* p) { return {_mm512_set1_ps(*p)}; }
    void store(float* p) const { _mm512_storeu_ps(p, v); }
    void multiply_add(Vector a, Vector b) { v = _mm512_fmadd_ps(a.v, b.v, v); }
    void add(Vector a) { v = _mm512_add_ps(v, a.v); }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct Vector {
    static constexpr const char* name = "avx2";
    static constexpr Index width = 8;
    static constexpr int tile_rows = 6;
    __m256 v;
    static Vector zero() { return {_mm256_setzero_ps()}; }
    static Vector load(const float* p) { return {_mm256_loadu_ps(p)}; }
    static Vector broadcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
    void store(float* p) const { _mm256_storeu_ps(p, v); }
    void multiply_add(Vector a, Vector b) { v = _mm256_fmadd_ps(a.v, b.v, v); }
    void add(Vector a) { v = _mm256_add_ps(v, a.v); }
};
#else
#error "panel_kernels.cpp is built with AVX-512 or with AVX2 and FMA flags"
#endif

constexpr Index panel = 2 * Vector::width;

/// Where a tile's accumulators start: c's rows when accumulating, else zero; plus the bias, a
/// row of `panel` (or null).
struct Start {
    bool accumulate;
    const float* bias;

    void load(const float* c, Vector& low, Vector& high) const
    {
        low = accumulate ? Vector::load(c) : Vector::zero();
        high = accumulate ? Vector::load(c + Vector::width) : Vector::zero();
        if (bias) {
            low.add(Vector::load(bias));
            high.add(Vector::load(bias + Vector::width));
        }
    }
};

/// c [R, panel] = start + a [R, K] P^T for one panel P ([K][panel]); a's element (r, k) at
/// a[r * a_pitch + k * a_step], c's rows `c_pitch` apart.
template <int R>
void tile(const float* a, Index a_pitch, Index a_step, const float* p, Index K, float* c, Index c_pitch,
          Start start) noexcept
{
    // The row loops unrolled at any optimisation level, so that the tile stays in registers.
    Vector low[R], high[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
        start.load(c + r * c_pitch, low[r], high[r]);
    for (Index k = 0; k < K; ++k, p += panel, a += a_step) {
        const Vector w_low = Vector::load(p), w_high = Vector::load(p + Vector::width);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const Vector x = Vector::broadcast(a + r * a_pitch);
            low[r].multiply_add(w_low, x);
            high[r].multiply_add(w_high, x);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        low[r].store(c + r * c_pitch);
        high[r].store(c + r * c_pitch + Vector::width);
    }
}

/// One row: c [1, panel] = start + a [1, K] P^T for one panel P. A tile of one row is bound by
/// the latency of its two accumulators' multiply-adds; splitting k four ways gives 8 independent
/// chains, and the panel is still read in order (one stream, as the prefetcher likes it).
void row_tile(const float* a, Index a_step, const float* p, Index K, float* c, Start start) noexcept
{
    constexpr int ways = 4;
    Vector low[ways], high[ways];
#pragma GCC unroll 4
    for (int q = 1; q < ways; ++q)
        low[q] = high[q] = Vector::zero();
    start.load(c, low[0], high[0]);
    Index k = 0;
    for (; k + ways <= K; k += ways, p += ways * panel, a += ways * a_step) {
#pragma GCC unroll 4
        for (int q = 0; q < ways; ++q) {
            const Vector x = Vector::broadcast(a + q * a_step);
            low[q].multiply_add(Vector::load(p + q * panel), x);
            high[q].multiply_add(Vector::load(p + q * panel + Vector::width), x);
        }
    }
    for (; k < K; ++k, p += panel, a += a_step) {
        const Vector x = Vector::broadcast(a);
        low[0].multiply_add(Vector::load(p), x);
        high[0].multiply_add(Vector::load(p + Vector::width), x);
    }
    low[0].add(low[1]);
    low[2].add(low[3]);
    low[0].add(low[2]);
    high[0].add(high[1]);
    high[2].add(high[3]);
    high[0].add(high[2]);
    low[0].store(c);
    high[0].store(c + Vector::width);
}

/// tile<R> for the R < tile_rows rows left at the end of a.
template <int R = 1>
void short_tile(int rows, const float* a, Index a_pitch, Index a_step, const float* p, Index K, float* c,
                Index c_pitch, Start start) noexcept
{
    if constexpr (R < Vector::tile_rows) {
        if (rows == R)
            tile<R>(a, a_pitch, a_step, p, K, c, c_pitch, start);
        else
            short_tile<R + 1>(rows, a, a_pitch, a_step, p, K, c, c_pitch, start);
    }
}

/// c [rows, panel] = start + a [rows, K] P^T, rows <= tile_rows.
void any_tile(Index rows, const float* a, Index a_pitch, Index a_step, const float* p, Index K, float* c,
              Index c_pitch, Start start) noexcept
{
    if (rows == Vector::tile_rows)
        tile<Vector::tile_rows>(a, a_pitch, a_step, p, K, c, c_pitch, start);
    else
        short_tile(static_cast<int>(rows), a, a_pitch, a_step, p, K, c, c_pitch, start);
}

void multiply(const float* panels, Index K, const float* a, Index a_row_stride, Index a_col_stride, Index first,
              Index M, Index cols, float* c, Index c_pitch, bool accumulate, const float* bias)
{
    // Blocks of a small enough to stay in L2 while every panel passes by them once; a long depth
    // in slices, so that a tile's slice of a and of the panel stay in L1.
    constexpr Index block_rows = 8 * Vector::tile_rows;
    constexpr Index depth_slice = 256;
    for (Index k0 = 0; k0 < K; k0 += depth_slice) {
        const Index depth = smaller(depth_slice, K - k0);
        // The bias goes in with the first slice; later slices add to what it left.
        const bool add = accumulate || k0 > 0;
        const float* slice_bias = k0 == 0 ? bias : nullptr;
        for (Index m1 = 0; m1 < M; m1 += block_rows) {
            const Index m_end = smaller(M, m1 + block_rows);
            for (Index j0 = 0; j0 < cols; j0 += panel) {
                const float* p = panels + (first + j0) * K + k0 * panel;
                const Index width = smaller(panel, cols - j0);
                const Start start{add, slice_bias ? slice_bias + j0 : nullptr};
                if (m_end - m1 == 1 && width == panel) {
                    row_tile(a + m1 * a_row_stride + k0 * a_col_stride, a_col_stride, p, depth, c + m1 * c_pitch + j0,
                             start);
                    continue;
                }
                for (Index m0 = m1; m0 < m_end; m0 += Vector::tile_rows) {
                    const Index rows = smaller(Vector::tile_rows, m_end - m0);
                    const float* a_tile = a + m0 * a_row_stride + k0 * a_col_stride;
                    float* c_tile = c + m0 * c_pitch + j0;
                    if (width == panel) {
                        any_tile(rows, a_tile, a_row_stride, a_col_stride, p, depth, c_tile, c_pitch, start);
                        continue;
                    }
                    // The last columns, fewer than a panel: the tile goes through a buffer of
                    // full width, which starts as c would, and only its first `width` columns
                    // reach c.
                    alignas(64) float part[Vector::tile_rows * panel];
                    for (Index r = 0; r < rows; ++r)
                        for (Index j = 0; j < width; ++j)
                            part[r * panel + j] = (add ? c_tile[r * c_pitch + j] : 0.0f) +
                                                  (start.bias ? start.bias[j] : 0.0f);
                    any_tile(rows, a_tile, a_row_stride, a_col_stride, p, depth, part, panel, Start{true, nullptr});
                    for (Index r = 0; r < rows; ++r)
                        for (Index j = 0; j < width; ++j)
                            c_tile[r * c_pitch + j] = part[r * panel + j];
                }
            }
        }
    }
}

/// row_times for V vectors of columns, k split two ways for twice the chains of multiply-adds.
template <int V>
void row_times_vectors(const float* a, Index K, const float* w, Index w_pitch, float* out, bool accumulate) noexcept
{
    Vector even[V], odd[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
        even[v] = accumulate ? Vector::load(out + v * Vector::width) : Vector::zero();
        odd[v] = Vector::zero();
    }
    Index k = 0;
    for (; k + 2 <= K; k += 2) {
        const Vector x0 = Vector::broadcast(a + k), x1 = Vector::broadcast(a + k + 1);
        const float* row = w + k * w_pitch;
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) {
            even[v].multiply_add(Vector::load(row + v * Vector::width), x0);
            odd[v].multiply_add(Vector::load(row + w_pitch + v * Vector::width), x1);
        }
    }
    if (k < K) {
        const Vector x0 = Vector::broadcast(a + k);
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
            even[v].multiply_add(Vector::load(w + k * w_pitch + v * Vector::width), x0);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
        even[v].add(odd[v]);
        even[v].store(out + v * Vector::width);
    }
}

void row_times(const float* a, Index K, const float* w, Index w_pitch, Index cols, float* out, bool accumulate)
{
    switch (cols / Vector::width) {
    case 1: row_times_vectors<1>(a, K, w, w_pitch, out, accumulate); break;
    case 2: row_times_vectors<2>(a, K, w, w_pitch, out, accumulate); break;
    case 3: row_times_vectors<3>(a, K, w, w_pitch, out, accumulate); break;
    case 4: row_times_vectors<4>(a, K, w, w_pitch, out, accumulate); break;
    case 5: row_times_vectors<5>(a, K, w, w_pitch, out, accumulate); break;
    case 6: row_times_vectors<6>(a, K, w, w_pitch, out, accumulate); break;
    case 7: row_times_vectors<7>(a, K, w, w_pitch, out, accumulate); break;
    default: row_times_vectors<8>(a, K, w, w_pitch, out, accumulate); break;
    }
}

}  // namespace

extern const RowKernels STREAMRNN_ROW_KERNELS_NAME;
extern const PanelKernels STREAMRNN_KERNELS_NAME;
const PanelKernels STREAMRNN_KERNELS_NAME = {Vector::name, panel, multiply, row_times, &STREAMRNN_ROW_KERNELS_NAME};

}  // namespace streamrnn
