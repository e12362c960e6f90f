// cpp/src/host_device.hpp: STREAMRNN_HD, for code that both backends compile: the CPU engine's
// C++ compiler, and nvcc for the CUDA kernels. Part of streamrnn, MIT licence.
#pragma once

#if defined(__CUDACC__)
#define STREAMRNN_HD __host__ __device__ __forceinline__
#else
#define STREAMRNN_HD inline
#endif
