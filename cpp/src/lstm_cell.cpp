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
    buffers.gemm->multiply_transposed(state.h_prev, w.recurrent_weights(), gates, true);
    if (w.b_hh)
        gates.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_hh, w.gate_rows);

    auto i = gates.leftCols(H).array();
    auto f = gates.middleCols(H, H).array();
    auto g = gates.middleCols(2 * H, H).array();
    auto o = gates.rightCols(H).array();
    i = i.logistic();
    f = f.logistic();
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

}  // namespace streamrnn
