// cpp/src/cells/gru.hpp: the GRU's equations, reset-after (PyTorch, cuDNN) and reset-before (Cho
// et al. 2014, ONNX's default), forward and backward, written once for every backend (see
// lstm.hpp). Part of streamrnn, MIT licence.
#pragma once

#include "cells/activations.hpp"

namespace streamrnn::cells {

/// Gates r, z, n (G = 3H); x_* = W_i* x + b_i*, h_* = W_h* h + b_h*:
///   r = s(x_r + h_r), z = s(x_z + h_z);
///   reset-after:  n = tanh(x_n + r h_n)                    (h_n = W_hn h + b_hn)
///   reset-before: n = tanh(x_n + h_n), h_n = W_hn (r h) + b_hn;
///   h' = (1 - z) n + z h, computed as n + z (h - n).
/// The backward reads the activated gates, h, and h_n (reset-after) or r h (reset-before).
struct Gru {
    // ---- forward
    /// r and z, from x_ + h_.
    template <class A>
    STREAMRNN_HD static auto gate(const A& a)
    {
        return cells::sigmoid(a);
    }
    /// reset-after's n.
    template <class X, class R, class H>
    STREAMRNN_HD static auto candidate_reset_after(const X& x_n, const R& r, const H& h_n)
    {
        return cells::tanh(x_n + r * h_n);
    }
    /// reset-before's r h, the input of h_n's product.
    template <class R, class H>
    STREAMRNN_HD static auto reset_state(const R& r, const H& h)
    {
        return r * h;
    }
    /// reset-before's n.
    template <class X, class H>
    STREAMRNN_HD static auto candidate_reset_before(const X& x_n, const H& h_n)
    {
        return cells::tanh(x_n + h_n);
    }
    template <class N, class Z, class H>
    STREAMRNN_HD static auto next_state(const N& n, const Z& z, const H& h)
    {
        return n + z * (h - n);
    }

    // ---- backward; dh = dL/dh'
    /// dL/d(pre-activation of n).
    template <class DH, class Z, class N>
    STREAMRNN_HD static auto d_candidate(const DH& dh, const Z& z, const N& n)
    {
        return dh * (1.0f - z) * (1.0f - n * n);
    }
    /// dL/d(pre-activation of z).
    template <class DH, class H, class N, class Z>
    STREAMRNN_HD static auto d_update(const DH& dh, const H& h, const N& n, const Z& z)
    {
        return dh * (h - n) * z * (1.0f - z);
    }
    /// dL/d(pre-activation of r), from d = dL/d(r x): reset-after d = d_candidate, x = h_n;
    /// reset-before d = dL/d(r h) (d_candidate W_hn), x = h.
    template <class D, class X, class R>
    STREAMRNN_HD static auto d_reset(const D& d, const X& x, const R& r)
    {
        return d * x * r * (1.0f - r);
    }
    /// reset-after: dL/dh_n.
    template <class DN, class R>
    STREAMRNN_HD static auto d_recurrent_candidate(const DN& dn, const R& r)
    {
        return dn * r;
    }
    /// The part of dL/dh that reaches h directly, not through W_hh: dh' z, and (reset-before) the
    /// part through r h, d_reset_h r.
    template <class DH, class Z>
    STREAMRNN_HD static auto d_state_direct(const DH& dh, const Z& z)
    {
        return dh * z;
    }
    template <class D, class R>
    STREAMRNN_HD static auto d_state_through_reset(const D& d_reset_h, const R& r)
    {
        return d_reset_h * r;
    }
};

}  // namespace streamrnn::cells
