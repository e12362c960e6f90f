// cpp/src/cells/lstm.hpp: the LSTM's equations, forward and backward, written once for every
// backend: each takes one element (a float) or a block of them (an Eigen array), and the CPU
// steps (lstm.cpp) and the CUDA kernels (cuda/elements.hpp) both call them.
// Part of streamrnn, MIT licence.
#pragma once

#include "cells/activations.hpp"

namespace streamrnn::cells {

/// Gates i, f, g, o over W_ih x + b_ih + W_hh h + b_hh (G = 4H):
///   i = s(.), f = s(.), g = tanh(.), o = s(.);  c' = f c + i g;  m = o tanh(c');
///   h' = m, or W_hr m with a projection.
/// The backward reads the activated gates, c, c' and (projection) m, and writes the gradients of
/// the pre-activations; derivatives are in terms of the functions' outputs.
struct Lstm {
    // ---- forward
    /// i, f and o.
    template <class A>
    STREAMRNN_HD static auto gate(const A& a)
    {
        return cells::sigmoid(a);
    }
    /// g, the cell input.
    template <class A>
    STREAMRNN_HD static auto cell_input(const A& a)
    {
        return cells::tanh(a);
    }
    /// c' = f c + i g.
    template <class F, class C, class I, class G>
    STREAMRNN_HD static auto next_cell(const F& f, const C& c, const I& i, const G& g)
    {
        return f * c + i * g;
    }
    /// m = o tanh(c'): h', or the projection's input.
    template <class O, class C>
    STREAMRNN_HD static auto output(const O& o, const C& c_next)
    {
        return o * cells::tanh(c_next);
    }

    // ---- backward; dm = dL/dm (dh', or dh' W_hr through a projection), dc = dL/dc' carried in
    /// dL/dc' in all: the carried part and the part through m.
    template <class DC, class DM, class O, class TC>
    STREAMRNN_HD static auto cell_gradient(const DC& dc, const DM& dm, const O& o, const TC& tanh_c)
    {
        return dc + dm * o * (1.0f - tanh_c * tanh_c);
    }
    /// dL/d(pre-activation of i), with dc = cell_gradient().
    template <class DC, class G, class I>
    STREAMRNN_HD static auto d_input(const DC& dc, const G& g, const I& i)
    {
        return dc * g * i * (1.0f - i);
    }
    template <class DC, class C, class F>
    STREAMRNN_HD static auto d_forget(const DC& dc, const C& c_prev, const F& f)
    {
        return dc * c_prev * f * (1.0f - f);
    }
    template <class DC, class I, class G>
    STREAMRNN_HD static auto d_cell_input(const DC& dc, const I& i, const G& g)
    {
        return dc * i * (1.0f - g * g);
    }
    template <class DM, class TC, class O>
    STREAMRNN_HD static auto d_output(const DM& dm, const TC& tanh_c, const O& o)
    {
        return dm * tanh_c * o * (1.0f - o);
    }
    /// dL/dc, carried to the step before.
    template <class DC, class F>
    STREAMRNN_HD static auto d_cell_prev(const DC& dc, const F& f)
    {
        return dc * f;
    }
};

}  // namespace streamrnn::cells
