// cpp/src/cuda/kernels.cu: the element-wise passes of a step as CUDA kernels, one thread per element.
// Part of streamrnn, MIT licence.
#include "cuda/kernels.hpp"

#include <algorithm>

namespace streamrnn::gpu {

namespace {

template <typename Element, typename Args>
__global__ void element_kernel(Args args, long long count)
{
    // Grid-stride: a bounded grid covers any count.
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        Element::apply(args, i);
}

}  // namespace

template <typename Element, typename Args>
cudaError_t launch_elements(const Args& args, cudaStream_t stream)
{
    const long long count = Element::count(args);
    if (count == 0)
        return cudaSuccess;
    // A step's passes are B x H elements: small grids whose latency, not throughput, matters.
    constexpr int threads = 128;
    const long long blocks = std::min<long long>((count + threads - 1) / threads, 1 << 16);
    element_kernel<Element><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(args, count);
    return cudaGetLastError();
}

// Each cell's element of its own equations, then of ONNX's options.
template cudaError_t launch_elements<RnnElement<false>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnElement<true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<LstmElement<>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<ProjectionElement>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<ResetElement<>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruElement<true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruElement<false>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnElement<false, true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnElement<true, true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<LstmElement<true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<ResetElement<true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruElement<true, true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruElement<false, true>>(const StepArgs&, cudaStream_t);
template cudaError_t launch_elements<PeepholeTermsElement>(const PeepholeTermsArgs&, cudaStream_t);
template cudaError_t launch_elements<ResidualElement>(const ResidualArgs&, cudaStream_t);
template cudaError_t launch_elements<DropoutElement>(const DropoutArgs&, cudaStream_t);
template cudaError_t launch_elements<ScaleElement>(const ScaleArgs&, cudaStream_t);
template cudaError_t launch_elements<CopyElement>(const CopyArgs&, cudaStream_t);
template cudaError_t launch_elements<BackStartElement>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<BackFinishElement>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnBackElement<false>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnBackElement<true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<LstmBackElement<>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruBackElement<true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruBackElement<false>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruResetBackElement<>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnBackElement<false, true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<RnnBackElement<true, true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<LstmBackElement<true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruBackElement<true, true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruBackElement<false, true>>(const BackStepArgs&, cudaStream_t);
template cudaError_t launch_elements<GruResetBackElement<true>>(const BackStepArgs&, cudaStream_t);

}  // namespace streamrnn::gpu
