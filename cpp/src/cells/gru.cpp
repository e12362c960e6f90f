// cpp/src/cells/gru.cpp: the GRU's CPU step over B rows: its products, and its equations (gru.hpp)
// over blocks of gates; reset-after and reset-before differ only in where r applies. Then the
// general step of ONNX's options (options.hpp). Part of streamrnn, MIT licence.
#include "cells/gru.hpp"

#include "cells/cell.hpp"
#include "cells/options.hpp"
#include "kernels/gemm.hpp"

namespace streamrnn {

using cells::Gru;

namespace {

/// buffers.recurrent [B, G] = W_hh h + b_hh for the gates a step knows before r: all three
/// reset-after, r and z reset-before (whose n block multiplies r * h).
template <bool reset_after>
MatMap recurrent_before_r(const CellWeights& w, Index B, StepState& state, const StepBuffers& buffers) noexcept
{
    const Index rows_now = reset_after ? w.gate_rows : 2 * w.hidden_size;
    auto recurrent = mat(buffers.recurrent, B, w.gate_rows);
    recurrent_product(w, state.h_prev, 0, rows_now, mat(buffers.recurrent, B, rows_now, w.gate_rows), false,
                      *buffers.gemm);
    if (w.b_hh)
        recurrent.leftCols(rows_now).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, rows_now);
    return recurrent;
}

/// Reset-before: buffers.hidden = r * h, and the n block of buffers.recurrent = W_hn (r * h) + b_hn.
void recurrent_after_r(const CellWeights& w, ConstMatMap r, StepState& state, const StepBuffers& buffers) noexcept
{
    const Index B = r.rows(), H = w.hidden_size;
    auto reset_h = mat(buffers.hidden, B, H);
    reset_h.array() = Gru::reset_state(r.array(), state.h_prev.array());
    auto recurrent_n = mat(buffers.recurrent + 2 * H, B, H, w.gate_rows);
    recurrent_product(w, as_const(reset_h), 2 * H, H, recurrent_n, false, *buffers.gemm);
    if (w.b_hh)
        recurrent_n.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh + 2 * H, H);
}

}  // namespace

template <bool reset_after>
void gru_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    const auto recurrent = recurrent_before_r<reset_after>(w, B, state, buffers);
    auto rz = gates.leftCols(2 * H);  // side by side: one pass for both
    rz.array() = Gru::gate(rz.array() + recurrent.leftCols(2 * H).array());
    auto r = gates.leftCols(H).array();
    auto z = gates.middleCols(H, H).array();
    auto n = gates.rightCols(H).array();

    if (reset_after) {
        n = Gru::candidate_reset_after(n, r, recurrent.rightCols(H).array());
    } else {
        recurrent_after_r(w, mat(static_cast<const float*>(gates.data()), B, H, w.gate_rows), state, buffers);
        n = Gru::candidate_reset_before(n, recurrent.rightCols(H).array());
    }
    state.h_next.array() = Gru::next_state(n, z, state.h_prev.array());
}

void gru_backward_step(const CellWeights& w, bool reset_after, const StepRecord& record, StepGradients grads)
{
    const Index H = w.hidden_size;
    const auto r = record.gates.leftCols(H).array();
    const auto z = record.gates.middleCols(H, H).array();
    const auto n = record.gates.rightCols(H).array();
    const auto h = record.h_prev.array();
    const auto dh = grads.dh.array();
    const auto w_hh = w.recurrent_weights();
    // With ONNX's options, the functions' slopes at the kept pre-activations (zero where clipped)
    // in place of sigmoid's and tanh's in terms of their outputs.
    const CellOptions& op = w.options;
    ArrayRM slope_rz, slope_n;
    if (op.any) {
        slope_rz = cells::slopes(op.functions[0], record.pre.leftCols(2 * H).array(), op.clip);
        slope_n = cells::slopes(op.functions[1], record.pre.rightCols(H).array(), op.clip);
    }
    // d = dL/d(r x): reset-after d = dL/dn's pre-activation, x = h_n; reset-before d = dL/d(r h).
    auto d_reset = [&](const ArrayRM& d, auto x) -> ArrayRM {
        return op.any ? ArrayRM(d * x * slope_rz.leftCols(H)) : ArrayRM(Gru::d_reset(d, x, r));
    };

    const ArrayRM dan = op.any ? ArrayRM(dh * (1.0f - z) * slope_n) : ArrayRM(Gru::d_candidate(dh, z, n));
    if (op.any)
        grads.da_x.middleCols(H, H).array() = dh * (h - n) * slope_rz.rightCols(H);
    else
        grads.da_x.middleCols(H, H).array() = Gru::d_update(dh, h, n, z);
    grads.da_x.rightCols(H).array() = dan;
    grads.da_h.middleCols(H, H) = grads.da_x.middleCols(H, H);
    if (reset_after) {
        // extra holds h_n = W_hn h + b_hn.
        grads.da_x.leftCols(H).array() = d_reset(dan, record.extra.array());
        grads.da_h.rightCols(H).array() = Gru::d_recurrent_candidate(dan, r);
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = Gru::d_state_direct(dh, z);
        recurrent_backward_product(w, as_const(grads.da_h), grads.dh_prev, true);
    } else {
        // d_reset_h = dL/d(r * h), through W_hn.
        const ArrayRM d_reset_h = (dan.matrix() * w_hh.bottomRows(H)).array();
        grads.da_x.leftCols(H).array() = d_reset(d_reset_h, h);
        grads.da_h.rightCols(H).array() = dan;
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = Gru::d_state_direct(dh, z) + Gru::d_state_through_reset(d_reset_h, r);
        grads.dh_prev.noalias() += grads.da_h.leftCols(2 * H) * w_hh.topRows(2 * H);
    }
}

// ---- ONNX's options: functions f (r, z) and g (n), clipping.

template <bool reset_after>
void gru_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                              const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    const CellOptions& op = w.options;
    const auto recurrent = recurrent_before_r<reset_after>(w, B, state, buffers);
    auto keep = [&](Index first, Index cols) {
        if (buffers.pre)
            mat(buffers.pre + first, B, cols, w.gate_rows) = gates.middleCols(first, cols);
    };
    auto rz = gates.leftCols(2 * H);
    rz += recurrent.leftCols(2 * H);
    keep(0, 2 * H);
    cells::clip_to(op.clip, rz);
    cells::activate(op.functions[0], rz);
    auto r = gates.leftCols(H).array();
    auto n = gates.rightCols(H);
    if (reset_after) {
        n.array() += r * recurrent.rightCols(H).array();
    } else {
        recurrent_after_r(w, mat(static_cast<const float*>(gates.data()), B, H, w.gate_rows), state, buffers);
        n += recurrent.rightCols(H);
    }
    keep(2 * H, H);
    cells::clip_to(op.clip, n);
    cells::activate(op.functions[1], n);
    state.h_next.array() = Gru::next_state(n.array(), gates.middleCols(H, H).array(), state.h_prev.array());
}

template void gru_forward_step<false>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void gru_forward_step<true>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void gru_general_forward_step<false>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void gru_general_forward_step<true>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;

}  // namespace streamrnn
