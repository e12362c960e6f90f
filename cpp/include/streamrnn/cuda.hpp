// cpp/include/streamrnn/cuda.hpp: the CUDA backend: a model's weights resident on an NVIDIA GPU,
// its whole-sequence forward, and streams whose state lives there. Built with -DSTREAMRNN_CUDA=ON
// (the library streamrnn_cuda); this header needs no CUDA header to be included.
// Part of streamrnn, MIT licence.
#pragma once

#include "spec.hpp"
#include "types.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace streamrnn::cuda {

/// Where the arrays of a call live: host memory (copied to and from the GPU by the call) or the
/// GPU's (used in place: CuPy arrays, PyTorch CUDA tensors).
enum class Memory { host, device };

/// GPUs the CUDA runtime sees; 0 without a driver or device (never throws).
int device_count() noexcept;

/// The GPU whose memory `pointer` points into, or -1 for host memory.
int pointer_device(const void* pointer);

/// Waits for the work queued on a CUDA stream, named as __cuda_array_interface__ names one
/// (1: the legacy default stream, 2: the per-thread default stream, else a cudaStream_t).
void synchronize_stream(std::uintptr_t stream);
/// Waits for all work on `device`.
void synchronize_device(int device);

/// Copies `bytes` between any two of host and GPU memory; returns when done.
void copy_memory(void* to, const void* from, std::size_t bytes);

/// `count` floats of GPU memory on `device`, zero-filled: the arrays a call returns on the GPU.
class DeviceBuffer {
public:
    DeviceBuffer(std::size_t count, int device);
    ~DeviceBuffer();
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    float* data() const { return data_; }
    std::size_t size() const { return count_; }
    int device() const { return device_; }

private:
    float* data_ = nullptr;
    std::size_t count_ = 0;
    int device_ = 0;
};

/// A model's weights on one GPU, in the layout of Model::parameters(), and everything a
/// whole-sequence forward needs there. Threads: calls on one DeviceModel are serialised (a lock),
/// and its streams' steps wait for a load of the weights, which waits for them, so that a step
/// reads the old weights or the new ones. Every failure of the CUDA runtime or cuBLAS raises
/// DeviceError, and a failed call leaves the caller's arrays (and its state) as they were.
class DeviceModel {
public:
    /// Throws ArgumentError for an invalid spec or a device outside [0, device_count()),
    /// DeviceError when the GPU refuses (no memory, no driver).
    DeviceModel(const ModelSpec& spec, int device);
    ~DeviceModel();
    DeviceModel(const DeviceModel&) = delete;
    DeviceModel& operator=(const DeviceModel&) = delete;

    const ModelSpec& spec() const;
    int device() const;

    /// Copies the weights in from host memory, spec().parameter_count() floats laid out as
    /// Model::parameters(); `version` is what the caller will compare with loaded_version() to
    /// know whether the GPU's copy is current (Trainable::version()).
    void load(const float* parameters, std::uint64_t version);
    std::uint64_t loaded_version() const;

    /// Whether the products may use TF32 tensor cores (faster, 10-bit mantissas): off by default,
    /// so that GPU and CPU agree to float32 rounding.
    void set_allow_tf32(bool allow);
    bool allow_tf32() const;

    /// Whole-sequence forward, with Model::forward's arguments and layouts; x, y, h and c are in
    /// `memory`, lengths (checked as Model::forward checks them) in host memory.
    void forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                 Memory memory);

    /// Training forward: forward() that also keeps on the GPU what backward() reads (replacing
    /// what an earlier one kept), with dropout (spec().dropout) between layers. The masks come
    /// from a hash of a seed drawn per call, so they differ from the CPU engine's.
    void forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                       Memory memory);
    /// Backpropagation through time over the last forward_train, with Model::backward's arguments
    /// (dh_n, dc_n null for zeros; steps and batch as there) in `memory`. The weight gradients of
    /// this call are written to `gradients`, spec().parameter_count() floats in host memory laid
    /// out as the parameters. ArgumentError without a training forward.
    void backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                  Memory memory, float* gradients, Index steps = -1, Index batch = -1);
    /// The steps and rows of the last forward_train; ArgumentError without one.
    Index recorded_steps() const;
    Index recorded_batch() const;

    struct Impl;

private:
    friend class DeviceStream;
    std::unique_ptr<Impl> impl_;
};

/// B live streams of a unidirectional DeviceModel, state resident on its GPU: the counterpart of
/// Stream. Buffers are allocated by the constructor; a step is one CUDA graph launch for the whole
/// stack (captured on the first step and again after set_allow_tf32 changes), plus the copies in
/// and out. One thread at a time per stream (a call that overlaps another on a second thread
/// raises ConcurrencyError naming both); streams of one model run concurrently, each on its own
/// CUDA stream.
class DeviceStream {
public:
    /// Throws ArgumentError for a bidirectional model or a batch outside [1, 2^24].
    DeviceStream(std::shared_ptr<DeviceModel> model, Index batch);
    ~DeviceStream();
    DeviceStream(const DeviceStream&) = delete;
    DeviceStream& operator=(const DeviceStream&) = delete;

    const DeviceModel& model() const { return *model_; }
    Index batch() const { return batch_; }

    /// x [B, I] -> y [B, H_out], both in `memory`. Returns when y is written.
    void step(const float* x, float* y, Memory memory);
    /// T steps: x and y as in Stream::process, in `memory`.
    void process(const float* x, float* y, Index T, Memory memory);
    void reset();
    /// Zeros stream i only, 0 <= i < batch().
    void reset(Index i);
    /// The state in host memory: h [L, B, H_out] and (LSTM) c [L, B, H]; c null otherwise.
    void get_state(float* h, float* c) const;
    void set_state(const float* h, const float* c);

    struct Impl;

private:
    std::shared_ptr<DeviceModel> model_;
    Index batch_;
    std::unique_ptr<Impl> impl_;
};

}  // namespace streamrnn::cuda
