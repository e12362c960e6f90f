// cpp/src/cuda/memory.hpp: the CUDA runtime's errors as DeviceError, the current device for a
// call, and GPU memory: buffers freed with their owner, and pools of them kept from call to call.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/errors.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <string>
#include <vector>

namespace streamrnn::cuda {

inline void check(cudaError_t status, const char* what)
{
    if (status != cudaSuccess) {
        cudaGetLastError();  // clears a non-sticky error, so that the next call starts clean
        raise(ErrorKind::device, std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
    }
}

/// Makes `device` current for a call, and the caller's device current again after it.
class DeviceScope {
public:
    explicit DeviceScope(int device)
    {
        check(cudaGetDevice(&previous_), "cudaGetDevice");
        if (previous_ != device)
            check(cudaSetDevice(device), "cudaSetDevice");
    }
    ~DeviceScope() { cudaSetDevice(previous_); }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

private:
    int previous_ = 0;
};

/// Runs `release` with `device` current, then the caller's device again; errors are ignored (for
/// destructors, which free what they hold on its own device).
template <typename Release>
void release_on(int device, Release release) noexcept
{
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device);
    release();
    cudaSetDevice(previous);
    cudaGetLastError();
}

inline std::size_t count_of(long long n) { return static_cast<std::size_t>(std::max(n, 0LL)); }

/// Memory from cudaMalloc (device) or cudaMallocHost (pinned host), freed with it.
template <typename T, bool pinned = false>
class GpuBuffer {
public:
    GpuBuffer() = default;
    ~GpuBuffer() { release(); }
    GpuBuffer(const GpuBuffer&) = delete;
    GpuBuffer& operator=(const GpuBuffer&) = delete;
    GpuBuffer(GpuBuffer&& other) noexcept : data_(other.data_), count_(other.count_)
    {
        other.data_ = nullptr;
        other.count_ = 0;
    }

    T* data() const { return data_; }
    std::size_t size() const { return count_; }
    /// At least `count` elements; what was there is dropped when it grows.
    void resize(std::size_t count)
    {
        if (count <= count_)
            return;
        release();
        void* p = nullptr;
        check(pinned ? cudaMallocHost(&p, count * sizeof(T)) : cudaMalloc(&p, count * sizeof(T)),
              pinned ? "cudaMallocHost" : "cudaMalloc");
        data_ = static_cast<T*>(p);
        count_ = count;
    }

private:
    void release() noexcept
    {
        if (data_)
            pinned ? cudaFreeHost(data_) : cudaFree(data_);
        data_ = nullptr;
        count_ = 0;
    }
    T* data_ = nullptr;
    std::size_t count_ = 0;
};

/// GPU memory handed out in order, and kept for the next call: after rewind(), the same requests
/// get the same buffers, grown where a call needs more. The plans' allocate(floats) -> float*.
class Pool {
public:
    float* operator()(long long count)
    {
        if (next_ == blocks_.size())
            blocks_.emplace_back();
        GpuBuffer<float>& block = blocks_[next_++];
        block.resize(count_of(count));
        return block.data();
    }
    void rewind() { next_ = 0; }
    /// Whether requests of `counts`, in order after a rewind, would all get existing buffers
    /// without growing one (and so without a failure that could lose what they hold).
    bool holds(const std::vector<long long>& counts) const
    {
        if (counts.size() > blocks_.size())
            return false;
        for (std::size_t i = 0; i < counts.size(); ++i)
            if (blocks_[i].size() < count_of(counts[i]))
                return false;
        return true;
    }

private:
    std::deque<GpuBuffer<float>> blocks_;  // a deque: blocks never move
    std::size_t next_ = 0;
};

}  // namespace streamrnn::cuda
