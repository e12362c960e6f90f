// cpp/src/cells/gru.cpp: the GRU's CPU step over B rows: its products, and its equations (gru.hpp)
// over blocks of gates; reset-after and reset-before differ only in where r applies.
// Part of streamrnn, MIT licence.
#include "cells/gru.hpp"

#include "cells/cell.hpp"
#include "kernels/gemm.hpp"

namespace streamrnn {

using cells::Gru;

template <bool reset_after>
void gru_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    auto recurrent = mat(buffers.recurrent, B, w.gate_rows);
    auto add_bias = [&](Index first, Index cols) {
        if (w.b_hh)
            recurrent.middleCols(first, cols).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh + first, cols);
    };

    // reset_after needs W_hh h for all three gates; reset_before only for r and z, since its n
    // block multiplies r * h, which needs r first.
    const Index rows_now = reset_after ? 3 * H : 2 * H;
    recurrent_product(w, state.h_prev, 0, rows_now, mat(buffers.recurrent, B, rows_now, w.gate_rows), false,
                      *buffers.gemm);
    add_bias(0, rows_now);

    auto rz = gates.leftCols(2 * H);  // side by side: one pass for both
    rz.array() = Gru::gate(rz.array() + recurrent.leftCols(2 * H).array());
    auto r = gates.leftCols(H).array();
    auto z = gates.middleCols(H, H).array();
    auto n = gates.rightCols(H).array();

    if (reset_after) {
        n = Gru::candidate_reset_after(n, r, recurrent.rightCols(H).array());
    } else {
        auto reset_h = mat(buffers.hidden, B, H);
        reset_h.array() = Gru::reset_state(r, state.h_prev.array());
        recurrent_product(w, as_const(reset_h), 2 * H, H, mat(buffers.recurrent + 2 * H, B, H, w.gate_rows), false,
                          *buffers.gemm);
        add_bias(2 * H, H);
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

    const ArrayRM dan = Gru::d_candidate(dh, z, n);
    grads.da_x.middleCols(H, H).array() = Gru::d_update(dh, h, n, z);
    grads.da_x.rightCols(H).array() = dan;
    grads.da_h.middleCols(H, H) = grads.da_x.middleCols(H, H);
    if (reset_after) {
        // extra holds h_n = W_hn h + b_hn.
        grads.da_x.leftCols(H).array() = Gru::d_reset(dan, record.extra.array(), r);
        grads.da_h.rightCols(H).array() = Gru::d_recurrent_candidate(dan, r);
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = Gru::d_state_direct(dh, z);
        recurrent_backward_product(w, as_const(grads.da_h), grads.dh_prev, true);
    } else {
        // d_reset_h = dL/d(r * h), through W_hn.
        const ArrayRM d_reset_h = (dan.matrix() * w_hh.bottomRows(H)).array();
        grads.da_x.leftCols(H).array() = Gru::d_reset(d_reset_h, h, r);
        grads.da_h.rightCols(H).array() = dan;
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = Gru::d_state_direct(dh, z) + Gru::d_state_through_reset(d_reset_h, r);
        grads.dh_prev.noalias() += grads.da_h.leftCols(2 * H) * w_hh.topRows(2 * H);
    }
}

template void gru_forward_step<false>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;
template void gru_forward_step<true>(const CellWeights&, MatMap, StepState&, const StepBuffers&) noexcept;

}  // namespace streamrnn
