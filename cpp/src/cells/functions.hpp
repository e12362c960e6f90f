// cpp/src/cells/functions.hpp: ONNX's cell options as one element sees them, for both backends:
// a layer and direction's options (CellOptions), and each activation function, its slope and
// clipping on one float (a CUDA thread's element; options.hpp applies the same to Eigen blocks on
// the CPU). No Eigen here: nvcc compiles it. Part of streamrnn, MIT licence.
#pragma once

#include "cells/activations.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn {

/// ONNX's options of one layer and direction's cell (ModelSpec::has_cell_options), by value: a
/// step reads them beside the weights.
struct CellOptions {
    bool any = false;                 ///< false: the cell's own equations, and nothing below is read
    ActivationFunction functions[3];  ///< ModelSpec::activations' f, g, h of this direction
    float clip = 0.0f;                ///< 0: none
    bool input_forget = false;
};

namespace cells {

/// x clamped to [-clip, clip], where clip > 0.
STREAMRNN_HD float clipped(float x, float clip) { return clip > 0.0f ? fminf(fmaxf(x, -clip), clip) : x; }

/// fn(x).
STREAMRNN_HD float activate(const ActivationFunction& fn, float x)
{
    const float a = fn.alpha, b = fn.beta;
    switch (fn.kind) {
    case Activation::sigmoid: return sigmoid(x);
    case Activation::tanh: return tanh(x);
    case Activation::relu: return relu(x);
    case Activation::affine: return a * x + b;
    case Activation::leaky_relu: return x >= 0.0f ? x : a * x;
    case Activation::thresholded_relu: return x > a ? x : 0.0f;
    case Activation::scaled_tanh: return a * tanhf(b * x);
    case Activation::hard_sigmoid: return fminf(fmaxf(a * x + b, 0.0f), 1.0f);
    case Activation::elu: return x >= 0.0f ? x : a * (expf(x) - 1.0f);
    case Activation::softsign: return x / (1.0f + fabsf(x));
    case Activation::softplus: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    case Activation::gelu: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    }
    return x;
}

/// fn'(x) at a pre-activation x taken before clipping: 0 where |x| > clip (clip > 0).
STREAMRNN_HD float slope(const ActivationFunction& fn, float x, float clip)
{
    if (clip > 0.0f && fabsf(x) > clip)
        return 0.0f;
    const float a = fn.alpha, b = fn.beta;
    switch (fn.kind) {
    case Activation::sigmoid: {
        const float s = sigmoid(x);
        return s * (1.0f - s);
    }
    case Activation::tanh: {
        const float t = tanh(x);
        return 1.0f - t * t;
    }
    case Activation::relu: return x > 0.0f ? 1.0f : 0.0f;
    case Activation::affine: return a;
    case Activation::leaky_relu: return x >= 0.0f ? 1.0f : a;
    case Activation::thresholded_relu: return x > a ? 1.0f : 0.0f;
    case Activation::scaled_tanh: {
        const float t = tanhf(b * x);
        return a * b * (1.0f - t * t);
    }
    case Activation::hard_sigmoid: {
        const float v = a * x + b;
        return v > 0.0f && v < 1.0f ? a : 0.0f;
    }
    case Activation::elu: return x >= 0.0f ? 1.0f : a * expf(x);
    case Activation::softsign: {
        const float d = 1.0f + fabsf(x);
        return 1.0f / (d * d);
    }
    case Activation::softplus: return sigmoid(x);
    case Activation::gelu: return 0.5f * (1.0f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
    }
    return 1.0f;
}

}  // namespace cells

}  // namespace streamrnn
