// cpp/src/gru_cell.cpp: the GRU step; reset-after and reset-before differ only in where r applies.
// Part of streamrnn, MIT licence.
#include "streamrnn/gru_cell.hpp"

#include "gemm.hpp"

namespace streamrnn {

void gru_forward_step(const CellWeights& w, bool reset_after, MatMap gates, StepState state,
                      const StepBuffers& buffers) noexcept
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

    // r = s(W_ir x + b_ir + W_hr h + b_hr);  z = s(W_iz x + b_iz + W_hz h + b_hz)
    auto rz = gates.leftCols(2 * H);
    rz.array() = (rz + recurrent.leftCols(2 * H)).array().logistic();
    auto r = gates.leftCols(H).array();
    auto z = gates.middleCols(H, H).array();
    auto n = gates.rightCols(H).array();

    if (reset_after) {
        // n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        n = (n + r * recurrent.rightCols(H).array()).tanh();
    } else {
        // n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
        auto reset_h = mat(buffers.hidden, B, H);
        reset_h.array() = r * state.h_prev.array();
        recurrent_product(w, as_const(reset_h), 2 * H, H, mat(buffers.recurrent + 2 * H, B, H, w.gate_rows), false,
                          *buffers.gemm);
        add_bias(2 * H, H);
        n = (n + recurrent.rightCols(H).array()).tanh();
    }
    // h' = (1 - z) * n + z * h
    state.h_next.array() = n + z * (state.h_prev.array() - n);
}

void gru_backward_step(const CellWeights& w, bool reset_after, const StepRecord& record,
                       StepGradients grads)
{
    const Index H = w.hidden_size;
    const auto r = record.gates.leftCols(H).array();
    const auto z = record.gates.middleCols(H, H).array();
    const auto n = record.gates.rightCols(H).array();
    const auto h = record.h_prev.array();
    const auto dh = grads.dh.array();
    const auto w_hh = w.recurrent_weights();

    // h' = n + z (h - n)
    const ArrayRM dan = dh * (1.0f - z) * (1.0f - n.square());  // dL/d(pre-activation of n)
    grads.da_x.middleCols(H, H).array() = dh * (h - n) * z * (1.0f - z);
    grads.da_x.rightCols(H).array() = dan;
    grads.da_h.middleCols(H, H) = grads.da_x.middleCols(H, H);
    if (reset_after) {
        // n = tanh(. + r * (W_hn h + b_hn)): extra holds W_hn h + b_hn.
        grads.da_x.leftCols(H).array() = dan * record.extra.array() * r * (1.0f - r);
        grads.da_h.rightCols(H).array() = dan * r;
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = dh * z;
        recurrent_backward_product(w, as_const(grads.da_h), grads.dh_prev, true);
    } else {
        // n = tanh(. + W_hn (r * h) + b_hn)
        const ArrayRM d_reset_h = (dan.matrix() * w_hh.bottomRows(H)).array();
        grads.da_x.leftCols(H).array() = d_reset_h * h * r * (1.0f - r);
        grads.da_h.rightCols(H).array() = dan;
        grads.da_h.leftCols(H) = grads.da_x.leftCols(H);
        grads.dh_prev.array() = dh * z + d_reset_h * r;
        grads.dh_prev.noalias() += grads.da_h.leftCols(2 * H) * w_hh.topRows(2 * H);
    }
}

}  // namespace streamrnn
