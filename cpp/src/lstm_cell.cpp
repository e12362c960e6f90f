// cpp/src/lstm_cell.cpp: the LSTM step, with optional projection.
// Part of streamrnn, MIT licence.
#include "streamrnn/lstm_cell.hpp"

#include "gemm.hpp"

namespace streamrnn {

void lstm_forward_step(const CellWeights& w, MatMap gates, StepState state,
                       const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    //            [ W_ii ]                     [ b_hi ]
    //  gates  += [ W_hf ] h   (rows i,f,g,o)  [ b_hf ]   one product for all four gates
    //            [ W_hg ]                   + [ b_hg ]
    //            [ W_ho ]                     [ b_ho ]
    recurrent_product(w, state.h_prev, 0, w.gate_rows, gates, true, *buffers.gemm);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);

    auto i = gates.leftCols(H).array();
    auto f = gates.middleCols(H, H).array();
    auto g = gates.middleCols(2 * H, H).array();
    auto o = gates.rightCols(H).array();
    auto i_and_f = gates.leftCols(2 * H).array();  // side by side: one pass for both
    i_and_f = i_and_f.logistic();
    g = g.tanh();
    o = o.logistic();

    // c' = f * c + i * g;  m = o * tanh(c');  h' = m, or W_hr m with a projection
    state.c_next.array() = f * state.c_prev.array() + i * g;
    if (w.w_hr) {
        auto m = mat(buffers.hidden, B, H);
        m.array() = o * state.c_next.array().tanh();
        buffers.gemm->multiply_transposed(as_const(m), mat(w.w_hr, w.output_size, H), state.h_next, false);
    } else {
        state.h_next.array() = o * state.c_next.array().tanh();
    }
}

void lstm_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads)
{
    const Index H = w.hidden_size;
    const auto i = record.gates.leftCols(H).array();
    const auto f = record.gates.middleCols(H, H).array();
    const auto g = record.gates.middleCols(2 * H, H).array();
    const auto o = record.gates.rightCols(H).array();
    const ArrayRM tanh_c = record.c_next.array().tanh();

    // dm = dL/d(o * tanh c'): dh' itself, or through the projection h' = W_hr m.
    ArrayRM dm;
    if (w.w_hr)
        dm = (grads.dh * mat(w.w_hr, w.output_size, H)).array();
    else
        dm = grads.dh.array();
    const ArrayRM dc = grads.dc.array() + dm * o * (1.0f - tanh_c.square());
    // Through the activations: s' = s (1 - s), tanh' = 1 - tanh^2, in terms of their outputs.
    auto da = grads.da_x.array();
    da.leftCols(H) = dc * g * i * (1.0f - i);
    da.middleCols(H, H) = dc * record.c_prev.array() * f * (1.0f - f);
    da.middleCols(2 * H, H) = dc * i * (1.0f - g.square());
    da.rightCols(H) = dm * tanh_c * o * (1.0f - o);
    grads.dc_prev.array() = dc * f;
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

}  // namespace streamrnn
