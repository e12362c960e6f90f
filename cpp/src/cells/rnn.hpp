// cpp/src/cells/rnn.hpp: the Elman RNN's equations, tanh or relu, forward and backward, written
// once for every backend (see lstm.hpp). Part of streamrnn, MIT licence.
#pragma once

#include "cells/activations.hpp"

namespace streamrnn::cells {

/// h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (G = H). The gates of an RNN are h'
/// itself: the backward reads act' from h'.
template <bool relu_activation>
struct Rnn {
    template <class A>
    STREAMRNN_HD static auto activate(const A& a)
    {
        if constexpr (relu_activation)
            return cells::relu(a);
        else
            return cells::tanh(a);
    }
    /// dL/da = dh' act'(a), act' in terms of h' (tanh: 1 - h'^2; relu: h' > 0).
    template <class DH, class H>
    STREAMRNN_HD static auto d_pre(const DH& dh, const H& h)
    {
        if constexpr (relu_activation)
            return dh * cells::relu_slope(h);
        else
            return dh * (1.0f - h * h);
    }
};

}  // namespace streamrnn::cells
