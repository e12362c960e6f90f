// cpp/src/cells/options.hpp: what the cells' general equations (ONNX's options: any activation
// function, clipping, peepholes, coupled gates) apply to a block of gates: the functions, their
// derivatives, and clipping. The cells' own equations (lstm.hpp, gru.hpp, rnn.hpp) stay as they
// are for models without options, fused and bit for bit what they were.
// Part of streamrnn, MIT licence.
#pragma once

#include "views.hpp"

#include "streamrnn/spec.hpp"

#include <cmath>

namespace streamrnn::cells {

/// block = fn(block), each case one vectorised pass. Softplus as x+ + log1p(e^-|x|), which does not
/// overflow where log(1 + e^x) would.
template <typename Block>
void activate(const ActivationFunction& fn, Block&& block)
{
    const float a = fn.alpha, b = fn.beta;
    auto&& x = block.array();
    switch (fn.kind) {
    case Activation::sigmoid: x = x.logistic(); break;
    case Activation::tanh: x = x.tanh(); break;
    case Activation::relu: x = x.cwiseMax(0.0f); break;
    case Activation::affine: x = a * x + b; break;
    case Activation::leaky_relu: x = (x >= 0.0f).select(x, a * x); break;
    case Activation::thresholded_relu: x = (x > a).select(x, 0.0f); break;
    case Activation::scaled_tanh: x = a * (b * x).tanh(); break;
    case Activation::hard_sigmoid: x = (a * x + b).cwiseMax(0.0f).cwiseMin(1.0f); break;
    case Activation::elu: x = (x >= 0.0f).select(x, a * (x.exp() - 1.0f)); break;
    case Activation::softsign: x = x / (1.0f + x.abs()); break;
    case Activation::softplus: x = x.cwiseMax(0.0f) + (-x.abs()).exp().log1p(); break;
    case Activation::gelu: x = x.unaryExpr([](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678f)); }); break;
    }
}

/// fn'(x) of every element of a pre-activation block x, taken before clipping: 0 where |x| > clip
/// (clip > 0), since the clipped value does not move with x there.
template <typename Derived>
ArrayRM slopes(const ActivationFunction& fn, const Eigen::ArrayBase<Derived>& x, float clip)
{
    const float a = fn.alpha, b = fn.beta;
    ArrayRM s(x.rows(), x.cols());
    switch (fn.kind) {
    case Activation::sigmoid: s = x.logistic() * (1.0f - x.logistic()); break;
    case Activation::tanh: s = 1.0f - x.tanh().square(); break;
    case Activation::relu: s = (x > 0.0f).template cast<float>(); break;
    case Activation::affine: s.setConstant(a); break;
    case Activation::leaky_relu: s = (x >= 0.0f).select(ArrayRM::Ones(x.rows(), x.cols()), a); break;
    case Activation::thresholded_relu: s = (x > a).template cast<float>(); break;
    case Activation::scaled_tanh: s = a * b * (1.0f - (b * x).tanh().square()); break;
    case Activation::hard_sigmoid: s = (a * x + b > 0.0f && a * x + b < 1.0f).select(ArrayRM::Constant(x.rows(), x.cols(), a), 0.0f); break;
    case Activation::elu: s = (x >= 0.0f).select(ArrayRM::Ones(x.rows(), x.cols()), a * x.exp()); break;
    case Activation::softsign: s = 1.0f / (1.0f + x.abs()).square(); break;
    case Activation::softplus: s = x.logistic(); break;
    case Activation::gelu:
        s = x.unaryExpr([](float v) {
            return 0.5f * (1.0f + std::erf(v * 0.70710678f)) + v * 0.39894228f * std::exp(-0.5f * v * v);
        });
        break;
    }
    if (clip > 0.0f)
        s = (x.abs() > clip).select(0.0f, s);
    return s;
}

/// block = clamp(block, -clip, clip), where clip > 0.
template <typename Block>
void clip_to(float clip, Block&& block)
{
    if (clip > 0.0f)
        block.array() = block.array().cwiseMax(-clip).cwiseMin(clip);
}

}  // namespace streamrnn::cells
