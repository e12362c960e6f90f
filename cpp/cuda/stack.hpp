// cpp/cuda/stack.hpp: a stack of layers and directions run over T steps as matrix products and
// element-wise passes, written once for any executor of those two operations: the CUDA backend
// (cuBLAS and kernels), and a plain host loop that the C++ tests check against Model::forward.
// Part of streamrnn, MIT licence.
#pragma once

#include "elements.hpp"

#include "streamrnn/model.hpp"

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

/// The executor's operations (see CudaOps in cuda_backend.cu and HostOps in the tests):
///   gemm(M, N, K, A, lda, W, ldw, C, ldc): C [M, N] = A [M, K] W [N, K]^T, row-major with pitches.
///   launch<Element>(args): Element::apply(args, i) for i in [0, Element::count(args)).

/// Runs every layer of `spec` over steps [0, T) of x into y, like Model::run: h [L * D, B, H_out]
/// and c [L * D, B, H] (LSTM) hold the initial state and receive the final one; lengths [B] or
/// null. `parameters` is laid out as a Model's. x and y may be time-major or batch-first.
template <typename Ops>
void run_stack(Ops& ops, const ModelSpec& spec, const float* parameters, Rows x, Rows y, long long T, long long B,
               const std::int64_t* lengths, float* h, float* c, const StackBuffers& buffers)
{
    const int D = spec.directions();
    const long long H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
    Rows in = x;
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        const bool last = layer + 1 == spec.num_layers;
        const long long width = D * H_out;
        Rows out = last ? y : Rows{buffers.layers[layer % 2], width, B * width, width};
        for (int direction = 0; direction < D; ++direction) {
            const CellWeights w = cell_weights(spec, parameters, layer, direction);
            const long long cell = layer * D + direction;

            // The input projections of all steps in one product, in x's own row order.
            long long xw_t_pitch = B * G, xw_b_pitch = G;
            if (in.t_pitch == B * in.b_pitch) {
                ops.gemm(T * B, G, w.input_size, in.data, in.b_pitch, w.w_ih, w.input_size, buffers.xw, G);
            } else {
                xw_t_pitch = G;
                xw_b_pitch = T * G;
                if (in.b_pitch == T * in.t_pitch)
                    ops.gemm(B * T, G, w.input_size, in.data, in.t_pitch, w.w_ih, w.input_size, buffers.xw, G);
                else
                    for (long long b = 0; b < B; ++b)
                        ops.gemm(T, G, w.input_size, in.row(0, b), in.t_pitch, w.w_ih, w.input_size,
                                 buffers.xw + b * T * G, G);
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

            for (long long s = 0; s < T; ++s) {
                const long long t = direction == 1 ? T - 1 - s : s;
                step.t = t;
                step.xw = buffers.xw + t * xw_t_pitch;
                step.y = out.row(t, 0) + direction * H_out;
                // reset-before multiplies W_hn by r * h, so its n block waits for r.
                ops.gemm(B, reset_before ? 2 * H : G, H_out, step.h, H_out, w.w_hh, H_out, buffers.rec, G);
                switch (spec.kind) {
                case CellKind::rnn_tanh:
                case CellKind::rnn_relu: ops.template launch<RnnElement>(step); break;
                case CellKind::lstm:
                    ops.template launch<LstmElement>(step);
                    if (w.w_hr) {
                        ops.gemm(B, H_out, H, buffers.hidden, H, w.w_hr, H, buffers.projected, H_out);
                        ops.template launch<ProjectionElement>(step);
                    }
                    break;
                case CellKind::gru:
                    if (reset_before) {
                        ops.template launch<ResetElement>(step);
                        ops.gemm(B, H, H, buffers.hidden, H, w.w_hh + 2 * H * H_out, H_out, buffers.rec + 2 * H, G);
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
        in = out;
    }
}

}  // namespace streamrnn::gpu
