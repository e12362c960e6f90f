// cpp/src/cells/lstm.cpp: the LSTM's CPU step over B rows: its products, and its equations
// (lstm.hpp) over blocks of gates. Part of streamrnn, MIT licence.
#include "cells/lstm.hpp"

#include "cells/cell.hpp"
#include "kernels/gemm.hpp"

namespace streamrnn {

using cells::Lstm;

void lstm_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept
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
    i_and_f = Lstm::gate(i_and_f);
    g = Lstm::cell_input(g);
    o = Lstm::gate(o);

    state.c_next.array() = Lstm::next_cell(f, state.c_prev.array(), i, g);
    if (w.w_hr) {
        auto m = mat(buffers.hidden, B, H);
        m.array() = Lstm::output(o, state.c_next.array());
        buffers.gemm->multiply_transposed(as_const(m), mat(w.w_hr, w.output_size, H), state.h_next, false);
    } else {
        state.h_next.array() = Lstm::output(o, state.c_next.array());
    }
}

void lstm_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads)
{
    const Index H = w.hidden_size;
    const auto i = record.gates.leftCols(H).array();
    const auto f = record.gates.middleCols(H, H).array();
    const auto g = record.gates.middleCols(2 * H, H).array();
    const auto o = record.gates.rightCols(H).array();
    const ArrayRM tanh_c = cells::tanh(record.c_next.array());

    // dm = dL/d(o * tanh c'): dh' itself, or through the projection h' = W_hr m.
    ArrayRM dm;
    if (w.w_hr)
        dm = (grads.dh * mat(w.w_hr, w.output_size, H)).array();
    else
        dm = grads.dh.array();
    const ArrayRM dc = Lstm::cell_gradient(grads.dc.array(), dm, o, tanh_c);
    auto da = grads.da_x.array();
    da.leftCols(H) = Lstm::d_input(dc, g, i);
    da.middleCols(H, H) = Lstm::d_forget(dc, record.c_prev.array(), f);
    da.middleCols(2 * H, H) = Lstm::d_cell_input(dc, i, g);
    da.rightCols(H) = Lstm::d_output(dm, tanh_c, o);
    grads.dc_prev.array() = Lstm::d_cell_prev(dc, f);
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

}  // namespace streamrnn
