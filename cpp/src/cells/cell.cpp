// cpp/src/cells/cell.cpp: the recurrent products of a step, and the one switch from a model's cell
// kind to its step. Part of streamrnn, MIT licence.
#include "cells/cell.hpp"

#include "kernels/gemm.hpp"

namespace streamrnn {

void recurrent_product(const CellWeights& w, ConstMatMap h, Index first, Index cols, MatMap out, bool accumulate,
                       GemmSpace& gemm) noexcept
{
    if (w.w_hh_t && h.rows() == 1) {
        // One row times W_hh^T column by column: short rows make dot products per gate row slow.
        if (row_times(h.data(), w.output_size, w.w_hh_t + first, w.gate_rows, cols, out.data(), accumulate))
            return;
        const ConstMatMap w_t = mat(w.w_hh_t + first, w.output_size, cols, w.gate_rows);
        if (accumulate)
            out.noalias() += h * w_t;
        else
            out.noalias() = h * w_t;
    } else if (w.w_hh_packed && w.w_hh_packed->starts_panel(first)) {
        w.w_hh_packed->multiply_transposed(h, first, out, accumulate);
    } else {
        gemm.multiply_transposed(h, mat(w.w_hh + first * w.output_size, cols, w.output_size), out, accumulate);
    }
}

void recurrent_backward_product(const CellWeights& w, ConstMatMap da, MatMap dh, bool accumulate)
{
    if (w.w_hh_t_packed)
        w.w_hh_t_packed->multiply_transposed(da, 0, dh, accumulate);
    else if (accumulate)
        dh.noalias() += da * w.recurrent_weights();
    else
        dh.noalias() = da * w.recurrent_weights();
}

ForwardStep forward_step_of(const ModelSpec& spec) noexcept
{
    if (spec.has_cell_options()) {
        switch (spec.kind) {
        case CellKind::lstm: return lstm_general_forward_step;
        case CellKind::gru: return spec.reset_after ? gru_general_forward_step<true> : gru_general_forward_step<false>;
        default: return rnn_general_forward_step;
        }
    }
    switch (spec.kind) {
    case CellKind::rnn_tanh: return rnn_forward_step<false>;
    case CellKind::rnn_relu: return rnn_forward_step<true>;
    case CellKind::lstm: return lstm_forward_step;
    case CellKind::gru: return spec.reset_after ? gru_forward_step<true> : gru_forward_step<false>;
    }
    return lstm_forward_step;
}

void cell_backward_step(const ModelSpec& spec, const CellWeights& w, const StepRecord& record,
                        StepGradients grads)
{
    if (w.options.any) {
        switch (spec.kind) {
        case CellKind::lstm: lstm_general_backward_step(w, record, grads); break;
        case CellKind::gru: gru_backward_step(w, spec.reset_after, record, grads); break;  // both in one
        default: rnn_general_backward_step(w, record, grads); break;
        }
        return;
    }
    switch (spec.kind) {
    case CellKind::rnn_tanh: rnn_backward_step<false>(w, record, grads); break;
    case CellKind::rnn_relu: rnn_backward_step<true>(w, record, grads); break;
    case CellKind::lstm: lstm_backward_step(w, record, grads); break;
    case CellKind::gru: gru_backward_step(w, spec.reset_after, record, grads); break;
    }
}

}  // namespace streamrnn
