// cpp/src/cells/lstm.cpp: the LSTM's CPU step over B rows: its products, and its equations
// (lstm.hpp) over blocks of gates; then the general step of ONNX's options (options.hpp).
// Part of streamrnn, MIT licence.
#include "cells/lstm.hpp"

#include "cells/cell.hpp"
#include "cells/options.hpp"
#include "kernels/gemm.hpp"

namespace streamrnn {

using cells::Lstm;

namespace {

/// gates += W_hh h + b_hh: the pre-activations of all four gates, in one product.
void add_recurrent(const CellWeights& w, MatMap gates, const StepState& state, const StepBuffers& buffers) noexcept
{
    //            [ W_ii ]                     [ b_hi ]
    //  gates  += [ W_hf ] h   (rows i,f,g,o)  [ b_hf ]
    //            [ W_hg ]                   + [ b_hg ]
    //            [ W_ho ]                     [ b_ho ]
    recurrent_product(w, state.h_prev, 0, w.gate_rows, gates, true, *buffers.gemm);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);
}

/// m [B, H] -> h' [B, H_out]: m itself, or W_hr m.
void project(const CellWeights& w, ConstMatMap m, StepState& state, const StepBuffers& buffers) noexcept
{
    if (w.w_hr)
        buffers.gemm->multiply_transposed(m, mat(w.w_hr, w.output_size, w.hidden_size), state.h_next, false);
    else
        state.h_next = m;
}

}  // namespace

void lstm_forward_step(const CellWeights& w, MatMap gates, StepState& state, const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    add_recurrent(w, gates, state, buffers);

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
        project(w, as_const(m), state, buffers);
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

// ---- ONNX's options: functions f (i, f, o), g and h (of c'), clipping, peepholes, f = 1 - i.

void lstm_general_forward_step(const CellWeights& w, MatMap gates, StepState& state,
                               const StepBuffers& buffers) noexcept
{
    const Index B = gates.rows();
    const Index H = w.hidden_size;
    const CellOptions& op = w.options;
    const ActivationFunction& f_fn = op.functions[0];
    add_recurrent(w, gates, state, buffers);
    auto i = gates.leftCols(H);
    auto f = gates.middleCols(H, H);
    auto g = gates.middleCols(2 * H, H);
    auto o = gates.rightCols(H);
    auto peephole = [&](int row) { return Eigen::Map<const Eigen::RowVectorXf>(w.peephole + row * H, H).array(); };
    if (w.peephole) {
        i.array() += state.c_prev.array().rowwise() * peephole(0);
        f.array() += state.c_prev.array().rowwise() * peephole(1);
    }
    // o's pre-activation is complete only once c' is known.
    auto keep = [&](Index first, Index cols) {
        if (buffers.pre)
            mat(buffers.pre + first, B, cols, w.gate_rows) = gates.middleCols(first, cols);
    };
    keep(0, 3 * H);
    cells::clip_to(op.clip, gates.leftCols(3 * H));
    cells::activate(f_fn, i);
    if (op.input_forget)
        f.array() = 1.0f - i.array();
    else
        cells::activate(f_fn, f);
    cells::activate(op.functions[1], g);
    state.c_next.array() = Lstm::next_cell(f.array(), state.c_prev.array(), i.array(), g.array());
    if (w.peephole)
        o.array() += state.c_next.array().rowwise() * peephole(2);
    keep(3 * H, H);
    cells::clip_to(op.clip, o);
    cells::activate(f_fn, o);

    // m = o h(c'), through the hidden buffer, which a record keeps as m where there is a projection.
    auto m = mat(buffers.hidden, B, H);
    m = state.c_next;
    cells::activate(op.functions[2], m);
    m.array() *= o.array();
    project(w, as_const(m), state, buffers);
}

void lstm_general_backward_step(const CellWeights& w, const StepRecord& record, StepGradients grads)
{
    const Index H = w.hidden_size;
    const CellOptions& op = w.options;
    const ActivationFunction& f_fn = op.functions[0];
    const auto i = record.gates.leftCols(H).array();
    const auto f = record.gates.middleCols(H, H).array();
    const auto g = record.gates.middleCols(2 * H, H).array();
    const auto o = record.gates.rightCols(H).array();
    const auto pre = [&](int block) { return record.pre.middleCols(block * H, H).array(); };
    const auto c_prev = record.c_prev.array();
    const auto c_next = record.c_next.array();
    auto peephole = [&](int row) { return Eigen::Map<const Eigen::RowVectorXf>(w.peephole + row * H, H).array(); };
    ArrayRM h_c = c_next;
    cells::activate(op.functions[2], h_c);

    ArrayRM dm;
    if (w.w_hr)
        dm = (grads.dh * mat(w.w_hr, w.output_size, H)).array();
    else
        dm = grads.dh.array();
    auto da = grads.da_x.array();
    da.rightCols(H) = dm * h_c * cells::slopes(f_fn, pre(3), op.clip);
    // dL/dc': the carried part, the part through m, and (peepholes) the part through o.
    ArrayRM dc = grads.dc.array() + dm * o * cells::slopes(op.functions[2], c_next, 0.0f);
    if (w.peephole)
        dc += da.rightCols(H).rowwise() * peephole(2);
    da.middleCols(2 * H, H) = dc * i * cells::slopes(op.functions[1], pre(2), op.clip);
    if (op.input_forget) {
        // f = 1 - i: i's gradient takes f's, with the sign of 1 - i.
        da.leftCols(H) = dc * (g - c_prev) * cells::slopes(f_fn, pre(0), op.clip);
        da.middleCols(H, H).setZero();
    } else {
        da.leftCols(H) = dc * g * cells::slopes(f_fn, pre(0), op.clip);
        da.middleCols(H, H) = dc * c_prev * cells::slopes(f_fn, pre(1), op.clip);
    }
    grads.dc_prev.array() = dc * f;
    if (w.peephole)
        grads.dc_prev.array() +=
            da.leftCols(H).rowwise() * peephole(0) + da.middleCols(H, H).rowwise() * peephole(1);
    recurrent_backward_product(w, as_const(grads.da_x), grads.dh_prev, false);
}

}  // namespace streamrnn
