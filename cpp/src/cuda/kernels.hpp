// cpp/src/cuda/kernels.hpp: launching an element-wise pass (elements.hpp) on the GPU. The kernels are
// compiled by nvcc in kernels.cu; code that launches them needs only a C++ compiler.
// Part of streamrnn, MIT licence.
#pragma once

#include "cuda/elements.hpp"

#include <cuda_runtime_api.h>

namespace streamrnn::gpu {

/// Element::apply(args, i) for every i in [0, Element::count(args)), queued on `stream`.
/// Instantiated in kernels.cu for each element of elements.hpp; returns the launch's error.
template <typename Element, typename Args>
cudaError_t launch_elements(const Args& args, cudaStream_t stream);

}  // namespace streamrnn::gpu
