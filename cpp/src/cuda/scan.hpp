// cpp/src/cuda/scan.hpp: the CUDA backend of the stack (stack.hpp): a layer and direction scanned
// as matrix products and element-wise passes (elements.hpp), forward and backward, for any executor
// of those two operations: the GPU's (cuBLAS and kernels, device_model.cpp) and a plain host loop,
// which the C++ tests check against the CPU engine. Part of streamrnn, MIT licence.
#pragma once

#include "cuda/elements.hpp"

#include "cells/cell.hpp"
#include "stack.hpp"

#include <cstdint>

namespace streamrnn::gpu {

/// The executor's operations (Executor in executor.hpp, HostOps in the tests):
///   gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate):
///       C [M, N] = (or +=) op(A) [M, K] op(B) [K, N], all row-major with pitches, op(X) = X or X^T.
///   launch<Element>(args): Element::apply(args, i) for i in [0, Element::count(args)).

/// Scratch for a forward of T steps of B rows, all in the executor's memory.
struct StackBuffers {
    float* xw = nullptr;         ///< [T * B, G]: one layer and direction's input projections
    float* rec = nullptr;        ///< [B, G]
    float* hidden = nullptr;     ///< [B, H]
    float* projected = nullptr;  ///< [B, H_out] (LSTM with projection)
    float* layers[2] = {nullptr, nullptr};  ///< [T, B, D * H_out] each, when num_layers > 1

    /// Buffers for T steps of B rows, each from allocate(floats) -> float*, called once per buffer.
    template <typename Allocate>
    static StackBuffers make(const ModelSpec& spec, long long T, long long B, Allocate&& allocate)
    {
        StackBuffers buffers;
        buffers.xw = allocate(T * B * spec.gate_rows());
        buffers.rec = allocate(B * spec.gate_rows());
        buffers.hidden = allocate(B * spec.hidden_size);
        buffers.projected = allocate(B * spec.output_size());
        const long long layer = spec.num_layers > 1 ? T * B * spec.directions() * spec.output_size() : 0;
        buffers.layers[0] = allocate(layer);
        buffers.layers[1] = allocate(layer);
        return buffers;
    }
};

/// Scratch for a backward of T steps of B rows, all in the executor's memory.
struct BackBuffers {
    float* d_out = nullptr;      ///< backward_buffer_size: dL/d(the layer's output)
    float* d_in = nullptr;       ///< backward_buffer_size: dL/d(the layer's input)
    float* da_x = nullptr;       ///< [T, B, G]
    float* da_h = nullptr;       ///< [T, B, G] (GRU; LSTM and RNN use da_x)
    float* dh_kept = nullptr;    ///< [T, B, H_out] (LSTM with projection)
    float* dh_total = nullptr;   ///< [B, H_out]
    float* dm = nullptr;         ///< [B, max(H, H_out)]
    float* dh_direct = nullptr;  ///< [B, H_out]
    float* dh_rec = nullptr;     ///< [B, H_out]
    float* ones = nullptr;       ///< [T * B]: for the bias gradients, column sums as products
    float* peephole_terms = nullptr;  ///< [T, B, 3H] (LSTM with peepholes): PeepholeTermsElement's

    template <typename Allocate>
    static BackBuffers make(const ModelSpec& spec, long long T, long long B, Allocate&& allocate)
    {
        const long long rows = T * B, G = spec.gate_rows(), H = spec.hidden_size, H_out = spec.output_size();
        BackBuffers buffers;
        buffers.d_out = allocate(backward_buffer_size(spec, T, B));
        buffers.d_in = allocate(backward_buffer_size(spec, T, B));
        buffers.da_x = allocate(rows * G);
        buffers.da_h = spec.kind == CellKind::gru ? allocate(rows * G) : buffers.da_x;
        buffers.dh_kept = spec.proj_size > 0 ? allocate(rows * H_out) : nullptr;
        buffers.dh_total = allocate(B * H_out);
        buffers.dm = allocate(B * (H > H_out ? H : H_out));
        buffers.dh_direct = allocate(B * H_out);
        buffers.dh_rec = allocate(B * H_out);
        buffers.ones = allocate(rows);
        buffers.peephole_terms = spec.peepholes ? allocate(rows * 3 * H) : nullptr;
        return buffers;
    }
};

/// Launches a cell's element: the instance of its own equations, or with `options` the one of
/// ONNX's options (StepArgs / BackStepArgs::options).
template <typename Own, typename WithOptions, typename Ops, typename Args>
void launch_cell(Ops& ops, bool options, const Args& args)
{
    if (options)
        ops.template launch<WithOptions>(args);
    else
        ops.template launch<Own>(args);
}

/// The forward half of the backend: scans, joins, dropout and copies as products and passes.
template <typename Ops>
struct GpuForward {
    Ops& ops;
    const ModelSpec& spec;
    const float* parameters;
    const StackBuffers& buffers;
    std::uint64_t dropout_seed;

    float* between(int i) { return buffers.layers[i]; }

    void scan(int layer, int direction, ConstSeqView in, SeqView out, Index T, Index B, const std::int64_t* lengths,
              float* h, float* c, RecordView::Cell* kept)
    {
        const CellWeights w = cell_weights(spec, parameters, layer, direction);
        const long long H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
        // The input projections of all steps in one product, in x's own row order.
        auto project = [&](long long rows, const float* from, long long pitch, float* to) {
            ops.gemm(false, true, rows, G, w.input_size, from, pitch, w.w_ih, w.input_size, to, G, false);
        };
        long long xw_t_pitch = B * G, xw_b_pitch = G;
        if (in.rows_in_order(B)) {
            project(T * B, in.data, in.b_pitch, buffers.xw);
        } else {
            xw_t_pitch = G;
            xw_b_pitch = T * G;
            if (in.b_pitch == T * in.t_pitch)
                project(B * T, in.data, in.t_pitch, buffers.xw);
            else
                for (long long b = 0; b < B; ++b)
                    project(T, in.row(0, b), in.t_pitch, buffers.xw + b * T * G);
        }

        StepArgs step;
        step.B = int(B);
        step.H = int(H);
        step.H_out = int(H_out);
        step.G = G;
        step.xw_b_pitch = xw_b_pitch;
        step.rec = buffers.rec;
        step.b_ih = w.b_ih;
        step.b_hh = w.b_hh;
        step.h = h;
        step.c = c;
        step.projected = buffers.projected;
        step.y_b_pitch = out.b_pitch;
        step.lengths = lengths;
        const bool reset_before = spec.kind == CellKind::gru && !spec.reset_after;
        if (w.w_hr || reset_before)
            step.hidden = buffers.hidden;
        step.options = w.options;
        step.peephole = w.peephole;
        const bool options = w.options.any;

        for (long long s = 0; s < T; ++s) {
            const long long t = direction == 1 ? T - 1 - s : s;
            step.t = t;
            step.xw = buffers.xw + t * xw_t_pitch;
            step.y = out.row(t, 0);
            if (kept) {
                const long long row = t * B;
                step.keep_gates = kept->gates + row * G;
                step.keep_h_prev = kept->h_prev + row * H_out;
                step.keep_c_prev = kept->c_prev ? kept->c_prev + row * H : nullptr;
                step.keep_c_next = kept->c_next ? kept->c_next + row * H : nullptr;
                step.keep_extra = kept->extra ? kept->extra + row * H : nullptr;
                step.keep_pre = kept->pre ? kept->pre + row * G : nullptr;
            }
            // reset-before multiplies W_hn by r * h, so its n block waits for r.
            ops.gemm(false, true, B, reset_before ? 2 * H : G, H_out, step.h, H_out, w.w_hh, H_out, buffers.rec, G,
                     false);
            switch (spec.kind) {
            case CellKind::rnn_tanh:
                launch_cell<RnnElement<false>, RnnElement<false, true>>(ops, options, step);
                break;
            case CellKind::rnn_relu:
                launch_cell<RnnElement<true>, RnnElement<true, true>>(ops, options, step);
                break;
            case CellKind::lstm:
                launch_cell<LstmElement<>, LstmElement<true>>(ops, options, step);
                if (w.w_hr) {
                    ops.gemm(false, true, B, H_out, H, buffers.hidden, H, w.w_hr, H, buffers.projected, H_out, false);
                    ops.template launch<ProjectionElement>(step);
                }
                break;
            case CellKind::gru:
                if (reset_before) {
                    launch_cell<ResetElement<>, ResetElement<true>>(ops, options, step);
                    ops.gemm(false, true, B, H, H, buffers.hidden, H, w.w_hh + 2 * H * H_out, H_out, buffers.rec + 2 * H,
                             G, false);
                    launch_cell<GruElement<false>, GruElement<false, true>>(ops, options, step);
                } else {
                    launch_cell<GruElement<true>, GruElement<true, true>>(ops, options, step);
                }
                break;
            }
        }
    }
    void add_residual(ConstSeqView in, SeqView out, Index T, Index B, const std::int64_t* lengths)
    {
        ops.template launch<ResidualElement>(ResidualArgs{in, out, T, B, lengths});
    }
    void drop_out(float* data, float* mask, Index count, int layer)
    {
        const auto keep = static_cast<float>(1.0 - spec.dropout);
        ops.template launch<DropoutElement>(DropoutArgs{data, mask, count, dropout_seed + std::uint64_t(layer), keep});
    }
    void copy_steps(ConstSeqView from, SeqView to, Index T, Index B)
    {
        ops.template launch<CopyElement>(CopyArgs{from, to, T, B});
    }
};

/// The backward half of the backend.
template <typename Ops>
struct GpuBackward {
    Ops& ops;
    const BackwardPass& pass;
    const BackBuffers& buffers;

    void zero(float* data, Index count) { ops.template launch<ScaleElement>(ScaleArgs{data, nullptr, count, 0.0f}); }
    void copy(float* to, const float* from, Index count)
    {
        ops.template launch<CopyElement>(CopyArgs{ConstSeqView{from, count, 0, 0}, SeqView{to, count, 0, 0}, 1, 1});
    }
    void scale(float* data, const float* by, Index count)
    {
        ops.template launch<ScaleElement>(ScaleArgs{data, by, count, 0.0f});
    }
    void add_residual(ConstSeqView from, SeqView to, Index T_, Index B_, const std::int64_t* lengths_)
    {
        ops.template launch<ResidualElement>(ResidualArgs{from, to, T_, B_, lengths_});
    }
    void copy_steps(ConstSeqView from, SeqView to, Index T_, Index B_)
    {
        ops.template launch<CopyElement>(CopyArgs{from, to, T_, B_});
    }

    void scan_back(int layer, int direction, ConstSeqView d_out, float* d_in, float* dh, float* dc,
                   const RecordView::Cell& kept)
    {
        const ModelSpec& spec = pass.spec;
        const float* parameters = pass.parameters;
        const long long T = pass.T, B = pass.B;
        const long long H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
        const long long I = spec.layer_input_size(layer), rows = T * B;
        const bool gru = spec.kind == CellKind::gru, reset_before = gru && !spec.reset_after;
        const CellWeights w = cell_weights(spec, parameters, layer, direction);
        // Gradients share the parameters' layout: a weight's gradient sits at the weight's offset.
        auto grad_of = [&](const float* weight) { return pass.gradients + (weight - parameters); };
        const float* input = pass.record.inputs[std::size_t(layer)];

        BackStepArgs step;
        step.B = int(B);
        step.H = int(H);
        step.H_out = int(H_out);
        step.G = G;
        step.d_out_b_pitch = d_out.b_pitch;
        step.dh = dh;
        step.dh_total = buffers.dh_total;
        step.dm = spec.proj_size > 0 || reset_before ? buffers.dm : nullptr;
        step.dc = dc;
        step.dh_direct = gru ? buffers.dh_direct : nullptr;
        step.dh_rec = buffers.dh_rec;
        step.lengths = pass.lengths;
        step.options = w.options;
        step.peephole = w.peephole;
        const bool options = w.options.any;

        for (long long s = 0; s < T; ++s) {
            const long long t = direction == 1 ? s : T - 1 - s;  // the forward's order, reversed
            const long long row = t * B;
            step.t = t;
            step.gates = kept.gates + row * G;
            step.h_prev = kept.h_prev + row * H_out;
            step.c_prev = kept.c_prev ? kept.c_prev + row * H : nullptr;
            step.c_next = kept.c_next ? kept.c_next + row * H : nullptr;
            step.extra = kept.extra ? kept.extra + row * H : nullptr;
            step.pre = kept.pre ? kept.pre + row * G : nullptr;
            step.d_out = d_out.row(t, 0);
            step.dh_kept = buffers.dh_kept ? buffers.dh_kept + row * H_out : nullptr;
            step.da_x = buffers.da_x + row * G;
            step.da_h = buffers.da_h + row * G;
            ops.template launch<BackStartElement>(step);
            switch (spec.kind) {
            case CellKind::rnn_tanh:
                launch_cell<RnnBackElement<false>, RnnBackElement<false, true>>(ops, options, step);
                break;
            case CellKind::rnn_relu:
                launch_cell<RnnBackElement<true>, RnnBackElement<true, true>>(ops, options, step);
                break;
            case CellKind::lstm:
                if (w.w_hr)  // dm = dh' W_hr
                    ops.gemm(false, false, B, H, H_out, buffers.dh_total, H_out, w.w_hr, H, buffers.dm, H, false);
                launch_cell<LstmBackElement<>, LstmBackElement<true>>(ops, options, step);
                break;
            case CellKind::gru:
                if (reset_before) {
                    launch_cell<GruBackElement<false>, GruBackElement<false, true>>(ops, options, step);
                    // dL/d(r * h) = da_n W_hn
                    ops.gemm(false, false, B, H_out, H, step.da_h + 2 * H, G, w.w_hh + 2 * H * H_out, H_out, buffers.dm,
                             H_out, false);
                    launch_cell<GruResetBackElement<>, GruResetBackElement<true>>(ops, options, step);
                } else {
                    launch_cell<GruBackElement<true>, GruBackElement<true, true>>(ops, options, step);
                }
                break;
            }
            // dh = da_h W_hh (reset-before: its n block went through r * h above).
            ops.gemm(false, false, B, H_out, reset_before ? 2 * H : G, step.da_h, G, w.w_hh, H_out, buffers.dh_rec,
                     H_out, false);
            ops.template launch<BackFinishElement>(step);
        }

        // Weight gradients, one product each over all T * B rows: dW += dA^T (layer input).
        ops.gemm(true, false, G, I, rows, buffers.da_x, G, input, I, grad_of(w.w_ih), I, true);
        if (reset_before) {
            ops.gemm(true, false, 2 * H, H_out, rows, buffers.da_h, G, kept.h_prev, H_out, grad_of(w.w_hh), H_out, true);
            ops.gemm(true, false, H, H_out, rows, buffers.da_h + 2 * H, G, kept.extra, H, grad_of(w.w_hh) + 2 * H * H_out,
                     H_out, true);
        } else {
            ops.gemm(true, false, G, H_out, rows, buffers.da_h, G, kept.h_prev, H_out, grad_of(w.w_hh), H_out, true);
        }
        if (w.b_ih) {
            ops.gemm(false, false, 1, G, rows, buffers.ones, rows, buffers.da_x, G, grad_of(w.b_ih), G, true);
            ops.gemm(false, false, 1, G, rows, buffers.ones, rows, buffers.da_h, G, grad_of(w.b_hh), G, true);
        }
        if (w.w_hr)
            ops.gemm(true, false, H_out, H, rows, buffers.dh_kept, H_out, kept.extra, H, grad_of(w.w_hr), H, true);
        if (w.peephole) {
            // dP: the terms dA c (i, f) and dA c' (o) of every row, summed over rows by a product.
            ops.template launch<PeepholeTermsElement>(
                PeepholeTermsArgs{buffers.da_x, kept.c_prev, kept.c_next, buffers.peephole_terms, rows, int(H)});
            ops.gemm(false, false, 1, 3 * H, rows, buffers.ones, rows, buffers.peephole_terms, 3 * H,
                     grad_of(w.peephole), 3 * H, true);
        }
        // dL/d(layer input) += dA_x W_ih.
        ops.gemm(false, false, rows, I, G, buffers.da_x, G, w.w_ih, I, d_in, I, true);
    }
};

/// forward_stack on the executor `ops`: x, y, h, c, lengths and the record in its memory; dropout
/// (with a record) from `dropout_seed`.
template <typename Ops>
void run_forward(Ops& ops, const ModelSpec& spec, const float* parameters, ConstSeqView x, SeqView y, Index T,
                 Index B, const std::int64_t* lengths, float* h, float* c, const StackBuffers& buffers,
                 RecordView* record = nullptr, std::uint64_t dropout_seed = 0)
{
    GpuForward<Ops> backend{ops, spec, parameters, buffers, dropout_seed};
    forward_stack(backend, spec, x, y, T, B, lengths, h, c, record);
}

/// backward_stack on the executor `ops`, the pass's buffers all in its memory.
template <typename Ops>
void run_backward(Ops& ops, const BackwardPass& pass, ConstSeqView dy, const float* dh_n, const float* dc_n, SeqView dx,
                  float* dh0, float* dc0, const BackBuffers& buffers)
{
    ops.template launch<ScaleElement>(ScaleArgs{buffers.ones, nullptr, pass.T * pass.B, 1.0f});
    GpuBackward<Ops> backend{ops, pass, buffers};
    backward_stack(backend, pass, dy, dh_n, dc_n, dx, dh0, dc0, buffers.d_out, buffers.d_in);
}

}  // namespace streamrnn::gpu
