// cpp/cuda/stack.hpp: a stack of layers and directions run over T steps as matrix products and
// element-wise passes, written once for any executor of those two operations: the CUDA backend
// (cuBLAS and kernels), and a plain host loop that the C++ tests check against Model::forward.
// Part of streamrnn, MIT licence.
#pragma once

#include "elements.hpp"

#include "streamrnn/model.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace streamrnn::gpu {

/// Scratch for run_stack, all in the executor's memory.
struct StackBuffers {
    float* xw = nullptr;         ///< [T * B, G]: one layer and direction's input projections
    float* rec = nullptr;        ///< [B, G]
    float* hidden = nullptr;     ///< [B, H]
    float* projected = nullptr;  ///< [B, H_out] (LSTM with projection)
    float* layers[2] = {nullptr, nullptr};  ///< [T, B, D * H_out] each, when num_layers > 1

    /// Buffers for T steps of B rows, each from allocate(floats) -> float*, called once per buffer.
    template <typename Allocate>
    static StackBuffers make(const ModelSpec& spec, long long T, long long B, Allocate allocate)
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

/// What a training forward keeps for backward, in the executor's memory: Model's ForwardRecord,
/// time-major [T, B, ...] rows.
struct RecordView {
    std::vector<float*> inputs;  ///< per layer: its input [T, B, I_l]
    std::vector<float*> masks;   ///< per layer: the dropout scale of its input [T, B, I_l], or null
    struct Cell {
        float* gates = nullptr;   ///< [T, B, G]
        float* h_prev = nullptr;  ///< [T, B, H_out]
        float* c_prev = nullptr;  ///< [T, B, H] (LSTM)
        float* c_next = nullptr;  ///< [T, B, H] (LSTM)
        float* extra = nullptr;   ///< [T, B, H] (LSTM with projection, GRU)
    };
    std::vector<Cell> cells;  ///< [L * D]
    std::uint64_t dropout_seed = 0;

    /// A record for T steps of B rows, each buffer from allocate(floats) -> float*.
    template <typename Allocate>
    static RecordView make(const ModelSpec& spec, long long T, long long B, Allocate allocate)
    {
        RecordView record;
        const long long rows = T * B, H = spec.hidden_size, H_out = spec.output_size();
        const bool extra = spec.kind == CellKind::gru || spec.proj_size > 0;
        for (int layer = 0; layer < spec.num_layers; ++layer) {
            record.inputs.push_back(allocate(rows * spec.layer_input_size(layer)));
            const bool dropped = layer > 0 && spec.dropout > 0.0;
            record.masks.push_back(dropped ? allocate(rows * spec.layer_input_size(layer)) : nullptr);
            for (int direction = 0; direction < spec.directions(); ++direction) {
                Cell cell;
                cell.gates = allocate(rows * spec.gate_rows());
                cell.h_prev = allocate(rows * H_out);
                if (spec.has_cell_state()) {
                    cell.c_prev = allocate(rows * H);
                    cell.c_next = allocate(rows * H);
                }
                if (extra)
                    cell.extra = allocate(rows * H);
                record.cells.push_back(cell);
            }
        }
        return record;
    }
};

/// The executor's operations (see Executor in device_model.cpp and HostOps in the tests):
///   gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate):
///       C [M, N] = (or +=) op(A) [M, K] op(B) [K, N], all row-major with pitches, op(X) = X or X^T.
///   launch<Element>(args): Element::apply(args, i) for i in [0, Element::count(args)).

/// Runs every layer of `spec` over steps [0, T) of x into y, like Model::run: h [L * D, B, H_out]
/// and c [L * D, B, H] (LSTM) hold the initial state and receive the final one; lengths [B] or
/// null. `parameters` is laid out as a Model's. x and y may be time-major or batch-first.
/// With a record (a training forward), every layer's input, gates and states go there, and
/// dropout (spec.dropout) applies between layers.
template <typename Ops>
void run_stack(Ops& ops, const ModelSpec& spec, const float* parameters, Rows x, Rows y, long long T, long long B,
               const std::int64_t* lengths, float* h, float* c, const StackBuffers& buffers,
               const RecordView* record = nullptr)
{
    const int D = spec.directions();
    const long long H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
    const long long width = D * H_out;
    Rows in = x;
    if (record) {
        // The first layer's input, time-major whatever x's layout, as every later layer's is.
        const long long I = spec.input_size;
        const Rows copy{record->inputs[0], I, B * I, I};
        ops.template launch<CopyElement>(CopyArgs{x, copy, T, B});
        in = copy;
    }
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        const bool last = layer + 1 == spec.num_layers;
        float* between = last ? nullptr : record ? record->inputs[layer + 1] : buffers.layers[layer % 2];
        Rows out = last ? y : Rows{between, width, B * width, width};
        for (int direction = 0; direction < D; ++direction) {
            const CellWeights w = cell_weights(spec, parameters, layer, direction);
            const long long cell = layer * D + direction;

            // The input projections of all steps in one product, in x's own row order.
            auto project = [&](long long rows, const float* from, long long pitch, float* to) {
                ops.gemm(false, true, rows, G, w.input_size, from, pitch, w.w_ih, w.input_size, to, G, false);
            };
            long long xw_t_pitch = B * G, xw_b_pitch = G;
            if (in.t_pitch == B * in.b_pitch) {
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
            step.h = h + cell * B * H_out;
            step.c = spec.has_cell_state() ? c + cell * B * H : nullptr;
            step.projected = buffers.projected;
            step.y_b_pitch = out.b_pitch;
            step.lengths = lengths;
            step.relu = spec.kind == CellKind::rnn_relu;
            const bool reset_before = spec.kind == CellKind::gru && !spec.reset_after;
            if (w.w_hr || reset_before)
                step.hidden = buffers.hidden;

            const RecordView::Cell* kept = record ? &record->cells[std::size_t(cell)] : nullptr;

            for (long long s = 0; s < T; ++s) {
                const long long t = direction == 1 ? T - 1 - s : s;
                step.t = t;
                step.xw = buffers.xw + t * xw_t_pitch;
                step.y = out.row(t, 0) + direction * H_out;
                if (kept) {
                    const long long row = t * B;
                    step.keep_gates = kept->gates + row * G;
                    step.keep_h_prev = kept->h_prev + row * H_out;
                    step.keep_c_prev = kept->c_prev ? kept->c_prev + row * H : nullptr;
                    step.keep_c_next = kept->c_next ? kept->c_next + row * H : nullptr;
                    step.keep_extra = kept->extra ? kept->extra + row * H : nullptr;
                }
                // reset-before multiplies W_hn by r * h, so its n block waits for r.
                ops.gemm(false, true, B, reset_before ? 2 * H : G, H_out, step.h, H_out, w.w_hh, H_out, buffers.rec, G,
                         false);
                switch (spec.kind) {
                case CellKind::rnn_tanh:
                case CellKind::rnn_relu: ops.template launch<RnnElement>(step); break;
                case CellKind::lstm:
                    ops.template launch<LstmElement>(step);
                    if (w.w_hr) {
                        ops.gemm(false, true, B, H_out, H, buffers.hidden, H, w.w_hr, H, buffers.projected, H_out,
                                 false);
                        ops.template launch<ProjectionElement>(step);
                    }
                    break;
                case CellKind::gru:
                    if (reset_before) {
                        ops.template launch<ResetElement>(step);
                        ops.gemm(false, true, B, H, H, buffers.hidden, H, w.w_hh + 2 * H * H_out, H_out,
                                 buffers.rec + 2 * H, G, false);
                        ops.template launch<GruElement<false>>(step);
                    } else {
                        ops.template launch<GruElement<true>>(step);
                    }
                    break;
                }
            }
        }
        if (spec.residual_at(layer)) {
            ResidualArgs residual{in, out, T, B, lengths};
            ops.template launch<ResidualElement>(residual);
        }
        if (record && !last && spec.dropout > 0.0) {
            const auto keep = static_cast<float>(1.0 - spec.dropout);
            ops.template launch<DropoutElement>(
                DropoutArgs{between, record->masks[std::size_t(layer + 1)], T * B * width,
                            record->dropout_seed + std::uint64_t(layer), keep});
        }
        in = out;
    }
}

/// Scratch for backward_stack, all in the executor's memory.
struct BackBuffers {
    float* d_out = nullptr;      ///< [T, B, max(I_l, D * H_out)]: dL/d(the layer's output)
    float* d_in = nullptr;       ///< [T, B, max(I_l, D * H_out)]: dL/d(the layer's input)
    float* da_x = nullptr;       ///< [T, B, G]
    float* da_h = nullptr;       ///< [T, B, G] (GRU; LSTM and RNN use da_x)
    float* dh_kept = nullptr;    ///< [T, B, H_out] (LSTM with projection)
    float* dh_total = nullptr;   ///< [B, H_out]
    float* dm = nullptr;         ///< [B, max(H, H_out)]
    float* dh_direct = nullptr;  ///< [B, H_out]
    float* dh_rec = nullptr;     ///< [B, H_out]
    float* ones = nullptr;       ///< [T * B]: for the bias gradients, column sums as products

    template <typename Allocate>
    static BackBuffers make(const ModelSpec& spec, long long T, long long B, Allocate allocate)
    {
        long long widest = spec.directions() * spec.output_size();
        for (int layer = 0; layer < spec.num_layers; ++layer)
            widest = std::max<long long>(widest, spec.layer_input_size(layer));
        const long long rows = T * B, G = spec.gate_rows(), H = spec.hidden_size, H_out = spec.output_size();
        BackBuffers buffers;
        buffers.d_out = allocate(rows * widest);
        buffers.d_in = allocate(rows * widest);
        buffers.da_x = allocate(rows * G);
        buffers.da_h = spec.kind == CellKind::gru ? allocate(rows * G) : buffers.da_x;
        buffers.dh_kept = spec.proj_size > 0 ? allocate(rows * H_out) : nullptr;
        buffers.dh_total = allocate(B * H_out);
        buffers.dm = allocate(B * std::max(H, H_out));
        buffers.dh_direct = allocate(B * H_out);
        buffers.dh_rec = allocate(B * H_out);
        buffers.ones = allocate(rows);
        return buffers;
    }
};

/// Backpropagation through time over a training forward's record, like Model::backward: dy like
/// y (time-major or batch-first); dh_n, dc_n: dL/d(final state), or null for zeros; dx like x;
/// dh0, dc0: dL/d(initial state) out. Weight gradients add into `gradients`, laid out as the
/// parameters.
template <typename Ops>
void backward_stack(Ops& ops, const ModelSpec& spec, const float* parameters, float* gradients,
                    const RecordView& record, long long T, long long B, const std::int64_t* lengths, Rows dy,
                    const float* dh_n, const float* dc_n, Rows dx, float* dh0, float* dc0, const BackBuffers& buffers)
{
    const int D = spec.directions();
    const long long H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
    const long long width = D * H_out, rows = T * B;
    const bool gru = spec.kind == CellKind::gru, reset_before = gru && !spec.reset_after;
    ops.template launch<ScaleElement>(ScaleArgs{buffers.ones, nullptr, rows, 1.0f});

    float* d_out = buffers.d_out;
    float* d_in = buffers.d_in;
    ops.template launch<CopyElement>(CopyArgs{dy, Rows{d_out, width, B * width, width}, T, B});
    for (int layer = spec.num_layers - 1; layer >= 0; --layer) {
        const long long I = spec.layer_input_size(layer);
        ops.template launch<ScaleElement>(ScaleArgs{d_in, nullptr, rows * I, 0.0f});
        for (int direction = 0; direction < D; ++direction) {
            const long long cell = layer * D + direction;
            const CellWeights w = cell_weights(spec, parameters, layer, direction);
            // Gradients share the parameters' layout: a weight's gradient sits at the weight's offset.
            auto grad_of = [&](const float* weight) { return gradients + (weight - parameters); };
            const RecordView::Cell& kept = record.cells[std::size_t(cell)];
            const float* input = record.inputs[std::size_t(layer)];

            BackStepArgs step;
            step.B = int(B);
            step.H = int(H);
            step.H_out = int(H_out);
            step.G = G;
            step.d_out_b_pitch = width;
            step.dh = dh0 + cell * B * H_out;
            step.dh_total = buffers.dh_total;
            step.dm = spec.proj_size > 0 || reset_before ? buffers.dm : nullptr;
            step.dc = spec.has_cell_state() ? dc0 + cell * B * H : nullptr;
            step.dh_direct = gru ? buffers.dh_direct : nullptr;
            step.dh_rec = buffers.dh_rec;
            step.lengths = lengths;
            step.relu = spec.kind == CellKind::rnn_relu;
            // dh0 and dc0 carry the state's gradient down the steps, from dh_n and dc_n.
            auto start = [&](const float* given, float* carried, long long size) {
                if (given)
                    ops.template launch<CopyElement>(
                        CopyArgs{Rows{const_cast<float*>(given) + cell * size, size, 0, 0}, Rows{carried, size, 0, 0}, 1, 1});
                else
                    ops.template launch<ScaleElement>(ScaleArgs{carried, nullptr, size, 0.0f});
            };
            start(dh_n, step.dh, B * H_out);
            if (step.dc)
                start(dc_n, step.dc, B * H);

            for (long long s = 0; s < T; ++s) {
                const long long t = direction == 1 ? s : T - 1 - s;  // the forward's order, reversed
                const long long row = t * B;
                step.t = t;
                step.gates = kept.gates + row * G;
                step.h_prev = kept.h_prev + row * H_out;
                step.c_prev = kept.c_prev ? kept.c_prev + row * H : nullptr;
                step.c_next = kept.c_next ? kept.c_next + row * H : nullptr;
                step.extra = kept.extra ? kept.extra + row * H : nullptr;
                step.d_out = d_out + row * width + direction * H_out;
                step.dh_kept = buffers.dh_kept ? buffers.dh_kept + row * H_out : nullptr;
                step.da_x = buffers.da_x + row * G;
                step.da_h = buffers.da_h + row * G;
                ops.template launch<BackStartElement>(step);
                switch (spec.kind) {
                case CellKind::rnn_tanh:
                case CellKind::rnn_relu: ops.template launch<RnnBackElement>(step); break;
                case CellKind::lstm:
                    if (w.w_hr)  // dm = dh' W_hr
                        ops.gemm(false, false, B, H, H_out, buffers.dh_total, H_out, w.w_hr, H, buffers.dm, H, false);
                    ops.template launch<LstmBackElement>(step);
                    break;
                case CellKind::gru:
                    if (reset_before) {
                        ops.template launch<GruBackElement<false>>(step);
                        // dL/d(r * h) = da_n W_hn
                        ops.gemm(false, false, B, H_out, H, step.da_h + 2 * H, G, w.w_hh + 2 * H * H_out, H_out,
                                 buffers.dm, H_out, false);
                        ops.template launch<GruResetBackElement>(step);
                    } else {
                        ops.template launch<GruBackElement<true>>(step);
                    }
                    break;
                }
                // dh = da_h W_hh (reset-before: its n block went through r * h above).
                ops.gemm(false, false, B, H_out, reset_before ? 2 * H : G, step.da_h, G, w.w_hh, H_out,
                         buffers.dh_rec, H_out, false);
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
            // dL/d(layer input) += dA_x W_ih.
            ops.gemm(false, false, rows, I, G, buffers.da_x, G, w.w_ih, I, d_in, I, true);
        }
        if (spec.residual_at(layer))
            ops.template launch<ResidualElement>(ResidualArgs{Rows{d_out, width, B * width, width},
                                                             Rows{d_in, I, B * I, I}, T, B, lengths});
        if (const float* mask = record.masks[std::size_t(layer)])
            ops.template launch<ScaleElement>(ScaleArgs{d_in, mask, rows * I, 0.0f});
        std::swap(d_out, d_in);
    }
    const long long I = spec.input_size;
    ops.template launch<CopyElement>(CopyArgs{Rows{d_out, I, B * I, I}, dx, T, B});
}

}  // namespace streamrnn::gpu
