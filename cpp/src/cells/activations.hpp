// cpp/src/cells/activations.hpp: the activation functions of the cells, for each value type the
// cells' equations are instantiated with: a float (one element: a CUDA thread, the host's plan
// checks) or an Eigen array expression (a block of rows and units: the CPU engine). The row
// kernels (kernels/row_kernels.cpp) bring their own vectors and functions, and no Eigen
// (STREAMRNN_CELLS_WITHOUT_EIGEN).
// Part of streamrnn, MIT licence.
#pragma once

#include "host_device.hpp"

#include <math.h>

#if !defined(__CUDACC__) && !defined(STREAMRNN_CELLS_WITHOUT_EIGEN)
#include <Eigen/Core>
#endif

namespace streamrnn::cells {

// One element. The GPU's own expf and tanhf: GPU and CPU agree to float32 rounding, not bitwise.
STREAMRNN_HD float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
STREAMRNN_HD float tanh(float v) { return tanhf(v); }
STREAMRNN_HD float relu(float v) { return fmaxf(v, 0.0f); }
/// relu's derivative in terms of its output.
STREAMRNN_HD float relu_slope(float h) { return h > 0.0f ? 1.0f : 0.0f; }

#if !defined(__CUDACC__) && !defined(STREAMRNN_CELLS_WITHOUT_EIGEN)
// A block of elements, vectorised by Eigen.
template <typename Derived>
auto sigmoid(const Eigen::ArrayBase<Derived>& v)
{
    return v.logistic();
}
template <typename Derived>
auto tanh(const Eigen::ArrayBase<Derived>& v)
{
    return v.tanh();
}
template <typename Derived>
auto relu(const Eigen::ArrayBase<Derived>& v)
{
    return v.cwiseMax(0.0f);
}
template <typename Derived>
auto relu_slope(const Eigen::ArrayBase<Derived>& h)
{
    return (h > 0.0f).template cast<float>();
}
#endif

}  // namespace streamrnn::cells
