// cpp/src/cuda/executor.hpp: Executor, a CUDA stream with its cuBLAS handle: the GPU's executor of
// the stack's plan (scan.hpp): its products, its element passes, and copies.
// Part of streamrnn, MIT licence.
#pragma once

#include "cuda/kernels.hpp"
#include "cuda/memory.hpp"

#include <cublas_v2.h>

#include <climits>

namespace streamrnn::cuda {

inline void check(cublasStatus_t status, const char* what)
{
    if (status != CUBLAS_STATUS_SUCCESS)
        raise(ErrorKind::device, std::string("cuBLAS: ") + what + ": " + cublasGetStatusString(status));
}

inline int blas_int(long long value)
{
    if (value > INT_MAX)
        raise(ErrorKind::argument, "a matrix dimension of " + std::to_string(value) + " is beyond cuBLAS's int sizes");
    return static_cast<int>(value);
}

class Executor {
public:
    /// `workspace_bytes`: cuBLAS's workspace, its own so that a CUDA graph capture never has cuBLAS
    /// allocate (cuBLAS advises 32 MiB on Hopper for large products; a stream's are small).
    Executor(bool allow_tf32, std::size_t workspace_bytes)
    {
        check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
        if (cublasCreate(&blas_) != CUBLAS_STATUS_SUCCESS) {
            cudaStreamDestroy(stream_);
            raise(ErrorKind::device, "cuBLAS: cublasCreate failed (no GPU memory, or cuBLAS does not match the driver)");
        }
        try {
            check(cublasSetStream(blas_, stream_), "cublasSetStream");
            workspace_.resize(workspace_bytes);
            check(cublasSetWorkspace(blas_, workspace_.data(), workspace_bytes), "cublasSetWorkspace");
            set_allow_tf32(allow_tf32);
        } catch (...) {
            destroy();
            throw;
        }
    }
    ~Executor() { destroy(); }
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    cudaStream_t stream() const { return stream_; }

    void set_allow_tf32(bool allow)
    {
        // CUBLAS_DEFAULT_MATH keeps float32 products in float32 (no TF32).
        check(cublasSetMathMode(blas_, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    }

    /// C [M, N] = (or +=) op(A) [M, K] op(B) [K, N], all row-major. cuBLAS is column-major, where
    /// each matrix reads as its transpose: it computes C^T = op(B)^T op(A)^T.
    void gemm(bool trans_a, bool trans_b, long long M, long long N, long long K, const float* A, long long lda,
              const float* B, long long ldb, float* C, long long ldc, bool accumulate)
    {
        if (M == 0 || N == 0)
            return;
        const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        check(cublasSgemm(blas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                          blas_int(N), blas_int(M), blas_int(K), &one, B, blas_int(ldb), A, blas_int(lda), &beta, C,
                          blas_int(ldc)),
              "cublasSgemm");
    }

    template <typename Element, typename Args>
    void launch(const Args& args)
    {
        check(gpu::launch_elements<Element>(args, stream_), "kernel launch");
    }

    void copy(void* to, const void* from, std::size_t bytes)
    {
        if (bytes)
            check(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDefault, stream_), "cudaMemcpyAsync");
    }
    /// `rows` rows of `row_bytes`, at pitches `to_pitch` and `from_pitch` bytes.
    void copy_rows(void* to, std::size_t to_pitch, const void* from, std::size_t from_pitch, std::size_t row_bytes,
                   std::size_t rows)
    {
        if (row_bytes && rows)
            check(cudaMemcpy2DAsync(to, to_pitch, from, from_pitch, row_bytes, rows, cudaMemcpyDefault, stream_),
                  "cudaMemcpy2DAsync");
    }
    void zero(void* to, std::size_t bytes)
    {
        if (bytes)
            check(cudaMemsetAsync(to, 0, bytes, stream_), "cudaMemsetAsync");
    }
    void synchronize() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

private:
    void destroy() noexcept
    {
        if (blas_)
            cublasDestroy(blas_);
        if (stream_)
            cudaStreamDestroy(stream_);
        blas_ = nullptr;
        stream_ = nullptr;
    }

    cudaStream_t stream_ = nullptr;
    cublasHandle_t blas_ = nullptr;
    GpuBuffer<unsigned char> workspace_;
};

/// Views of an array of T x B rows of `width` in either layout, in the memory a call runs in.
inline SeqView rows(const float* data, long long T, long long B, long long width, bool batch_first)
{
    // One view type for inputs and outputs; inputs are only read.
    return SeqView::of(const_cast<float*>(data), T, B, width, width, batch_first);
}

}  // namespace streamrnn::cuda
