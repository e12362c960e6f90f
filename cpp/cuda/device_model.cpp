// cpp/cuda/device_model.cpp: DeviceModel and DeviceStream: device memory, cuBLAS, CUDA graphs,
// and the copies between host and GPU around the plan of stack.hpp.
// Part of streamrnn, MIT licence.
#include "streamrnn/cuda.hpp"

#include "kernels.hpp"
#include "stack.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/model.hpp"
#include "streamrnn/stream.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <random>
#include <mutex>
#include <string>

namespace streamrnn::cuda {

namespace {

void check(cudaError_t status, const char* what)
{
    if (status != cudaSuccess) {
        cudaGetLastError();  // clears a non-sticky error, so that the next call starts clean
        raise(ErrorKind::device, std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
    }
}

void check(cublasStatus_t status, const char* what)
{
    if (status != CUBLAS_STATUS_SUCCESS)
        raise(ErrorKind::device, std::string("cuBLAS: ") + what + ": " + cublasGetStatusString(status));
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

/// Memory from cudaMalloc (device) or cudaMallocHost (pinned host), freed with it.
template <typename T, bool pinned = false>
class GpuBuffer {
public:
    GpuBuffer() = default;
    ~GpuBuffer() { release(); }
    GpuBuffer(const GpuBuffer&) = delete;
    GpuBuffer& operator=(const GpuBuffer&) = delete;

    T* data() const { return data_; }
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

std::size_t count_of(long long n) { return static_cast<std::size_t>(std::max(n, 0LL)); }

int blas_int(long long value)
{
    if (value > INT_MAX)
        raise(ErrorKind::argument, "a matrix dimension of " + std::to_string(value) + " is beyond cuBLAS's int sizes");
    return static_cast<int>(value);
}

/// A CUDA stream with its cuBLAS handle: the executor of stack.hpp's plan.
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

private:
    std::deque<GpuBuffer<float>> blocks_;  // a deque: blocks never move
    std::size_t next_ = 0;
};

gpu::Rows rows(const float* data, long long T, long long B, long long width, bool batch_first)
{
    float* p = const_cast<float*>(data);  // Rows is one type for inputs and outputs; inputs are only read
    return batch_first ? gpu::Rows{p, width, width, T * width} : gpu::Rows{p, width, B * width, width};
}

}  // namespace

int device_count() noexcept
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return count;
}

int pointer_device(const void* pointer)
{
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, pointer) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged ? attributes.device
                                                                                              : -1;
}

void synchronize_stream(std::uintptr_t stream)
{
    const cudaStream_t handle = stream == 1   ? cudaStreamLegacy
                                : stream == 2 ? cudaStreamPerThread
                                              : reinterpret_cast<cudaStream_t>(stream);
    check(cudaStreamSynchronize(handle), "cudaStreamSynchronize (an input's stream)");
}

void synchronize_device(int device)
{
    DeviceScope scope(device);
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void copy_memory(void* to, const void* from, std::size_t bytes)
{
    if (bytes)
        check(cudaMemcpy(to, from, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

// From the device's stream-ordered memory pool: a call's results come and go without the device
// synchronisation that cudaMalloc and cudaFree cost.
DeviceBuffer::DeviceBuffer(std::size_t count, int device) : count_(count), device_(device)
{
    DeviceScope scope(device);
    void* p = nullptr;
    check(cudaMallocAsync(&p, std::max<std::size_t>(count, 1) * sizeof(float), cudaStreamPerThread),
          "cudaMallocAsync");
    data_ = static_cast<float*>(p);
    cudaError_t status = cudaMemsetAsync(data_, 0, count * sizeof(float), cudaStreamPerThread);
    if (status == cudaSuccess)
        status = cudaStreamSynchronize(cudaStreamPerThread);  // ready for any stream once this returns
    if (status != cudaSuccess) {
        cudaFreeAsync(data_, cudaStreamPerThread);
        check(status, "cudaMemsetAsync");
    }
}

DeviceBuffer::~DeviceBuffer()
{
    release_on(device_, [&] { cudaFreeAsync(data_, cudaStreamPerThread); });
}

struct DeviceModel::Impl {
    ModelSpec spec;
    int device = 0;
    std::mutex lock;
    GpuBuffer<float> weights;
    std::uint64_t version = ~std::uint64_t(0);
    bool allow_tf32 = false;
    std::unique_ptr<Executor> executor;
    Pool scratch;  ///< a call's plan buffers
    Pool io;       ///< a call's arrays on the GPU, for callers in host memory
    GpuBuffer<std::int64_t> lengths;
    /// The last training forward's record, its sizes and lengths.
    Pool record_memory;
    gpu::RecordView record;
    long long record_T = 0, record_B = 0;
    bool recorded = false;  ///< whether the record holds a complete training forward
    bool record_lengths = false;
    GpuBuffer<std::int64_t> recorded_lengths;
    GpuBuffer<float> gradients;
    std::mt19937_64 dropout_rng{std::random_device{}()};

    void check_loaded() const
    {
        if (version == ~std::uint64_t(0))
            raise(ErrorKind::argument, "the model's weights were never loaded onto the GPU");
    }
    void check_recorded() const
    {
        if (!recorded)
            raise_no_training_forward("model");
    }
    void run_forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                     Memory memory, bool train);
};

DeviceModel::DeviceModel(const ModelSpec& spec, int device) : impl_(std::make_unique<Impl>())
{
    spec.validate();
    const int devices = device_count();
    if (device < 0 || device >= devices)
        raise(ErrorKind::argument, "device: cuda:" + std::to_string(device) + " does not exist (" +
                                       std::to_string(devices) + " CUDA device" + (devices == 1 ? "" : "s") + " seen)");
    impl_->spec = spec;
    impl_->device = device;
    DeviceScope scope(device);
    impl_->weights.resize(static_cast<std::size_t>(spec.parameter_count()));
    impl_->executor = std::make_unique<Executor>(false, std::size_t(32) << 20);
}

DeviceModel::~DeviceModel()
{
    if (impl_)
        release_on(impl_->device, [&] { impl_.reset(); });
}

const ModelSpec& DeviceModel::spec() const { return impl_->spec; }
int DeviceModel::device() const { return impl_->device; }
std::uint64_t DeviceModel::loaded_version() const { return impl_->version; }
bool DeviceModel::allow_tf32() const { return impl_->allow_tf32; }

void DeviceModel::load(const float* parameters, std::uint64_t version)
{
    std::lock_guard<std::mutex> guard(impl_->lock);
    DeviceScope scope(impl_->device);
    // Synchronous: streams of this model queue their next step after it.
    check(cudaMemcpy(impl_->weights.data(), parameters, impl_->spec.parameter_count() * sizeof(float),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy (weights)");
    impl_->version = version;
}

void DeviceModel::set_allow_tf32(bool allow)
{
    std::lock_guard<std::mutex> guard(impl_->lock);
    DeviceScope scope(impl_->device);
    impl_->executor->set_allow_tf32(allow);
    impl_->allow_tf32 = allow;
}

void DeviceModel::forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                          Memory memory)
{
    impl_->run_forward(x, T, B, lengths, y, h, c, memory, false);
}

void DeviceModel::forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                                float* c, Memory memory)
{
    impl_->run_forward(x, T, B, lengths, y, h, c, memory, true);
}

void DeviceModel::Impl::run_forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                                    float* c, Memory memory, bool train)
{
    check_lengths(T, B, lengths);
    std::lock_guard<std::mutex> guard(lock);
    check_loaded();
    DeviceScope scope(device);
    const long long I = spec.input_size, Y = spec.directions() * spec.output_size();
    const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
    const long long x_size = T * B * I, y_size = T * B * Y, h_size = cells * B * spec.output_size();
    const long long c_size = spec.has_cell_state() ? cells * B * spec.hidden_size : 0;
    if (train) {
        recorded = false;  // until this one is complete
        record_memory.rewind();
        record = gpu::RecordView::make(spec, T, B, std::ref(record_memory));
        record.dropout_seed = dropout_rng();
    }
    if (T == 0 || B == 0) {  // no step: the state stays as it is
        if (train) {
            record_T = T;
            record_B = B;
            record_lengths = false;
            recorded = true;
        }
        return;
    }

    Executor& run = *executor;
    scratch.rewind();
    const gpu::StackBuffers buffers = gpu::StackBuffers::make(spec, T, B, std::ref(scratch));
    const float* x_run = x;
    float *y_run = y, *h_run = h, *c_run = c;
    if (memory == Memory::host) {
        // The caller's arrays are written only once every step has run: a failure leaves them alone.
        io.rewind();
        x_run = io(x_size);
        y_run = io(y_size);
        h_run = io(h_size);
        c_run = c ? io(c_size) : nullptr;
        run.copy(const_cast<float*>(x_run), x, count_of(x_size) * sizeof(float));
        run.copy(h_run, h, count_of(h_size) * sizeof(float));
        run.copy(c_run, c, count_of(c_size) * sizeof(float));
    }
    GpuBuffer<std::int64_t>& lengths_copy = train ? recorded_lengths : this->lengths;
    if (lengths) {
        lengths_copy.resize(count_of(B));
        run.copy(lengths_copy.data(), lengths, count_of(B) * sizeof(std::int64_t));
    }
    const std::int64_t* lengths_run = lengths ? lengths_copy.data() : nullptr;
    gpu::run_stack(run, spec, weights.data(), rows(x_run, T, B, I, spec.batch_first),
                   rows(y_run, T, B, Y, spec.batch_first), T, B, lengths_run, h_run, c_run, buffers,
                   train ? &record : nullptr);
    if (memory == Memory::host) {
        run.synchronize();  // every step ran: only the copies out are left
        run.copy(y, y_run, count_of(y_size) * sizeof(float));
        run.copy(h, h_run, count_of(h_size) * sizeof(float));
        run.copy(c, c_run, count_of(c_size) * sizeof(float));
    }
    run.synchronize();
    if (train) {
        record_T = T;
        record_B = B;
        record_lengths = lengths != nullptr;
        recorded = true;
    }
}

Index DeviceModel::recorded_steps() const
{
    impl_->check_recorded();
    return impl_->record_T;
}

Index DeviceModel::recorded_batch() const
{
    impl_->check_recorded();
    return impl_->record_B;
}

void DeviceModel::backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                           Memory memory, float* gradients)
{
    Impl& m = *impl_;
    std::lock_guard<std::mutex> guard(m.lock);
    m.check_recorded();
    DeviceScope scope(m.device);
    const ModelSpec& spec = m.spec;
    const long long T = m.record_T, B = m.record_B;
    const long long I = spec.input_size, Y = spec.directions() * spec.output_size();
    const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
    const long long x_size = T * B * I, y_size = T * B * Y, h_size = cells * B * spec.output_size();
    const long long c_size = spec.has_cell_state() ? cells * B * spec.hidden_size : 0;
    const std::size_t parameters = static_cast<std::size_t>(spec.parameter_count());
    Executor& run = *m.executor;

    m.gradients.resize(parameters);
    run.zero(m.gradients.data(), parameters * sizeof(float));
    const float* dy_run = dy;
    const float *dh_n_run = dh_n, *dc_n_run = dc_n;
    float *dx_run = dx, *dh0_run = dh0, *dc0_run = dc0;
    if (memory == Memory::host) {
        m.io.rewind();
        auto in = [&](const float* from, long long count) -> const float* {
            if (!from)
                return nullptr;
            float* to = m.io(count);
            run.copy(to, from, count_of(count) * sizeof(float));
            return to;
        };
        dy_run = in(dy, y_size);
        dh_n_run = in(dh_n, h_size);
        dc_n_run = c_size ? in(dc_n, c_size) : nullptr;
        dx_run = m.io(x_size);
        dh0_run = m.io(h_size);
        dc0_run = c_size ? m.io(c_size) : nullptr;
    }
    if (T > 0 && B > 0) {
        m.scratch.rewind();
        const gpu::BackBuffers buffers = gpu::BackBuffers::make(spec, T, B, std::ref(m.scratch));
        gpu::backward_stack(run, spec, m.weights.data(), m.gradients.data(), m.record, T, B,
                            m.record_lengths ? m.recorded_lengths.data() : nullptr, rows(dy_run, T, B, Y, spec.batch_first),
                            dh_n_run, dc_n_run, rows(dx_run, T, B, I, spec.batch_first), dh0_run, dc0_run, buffers);
    } else {
        // No step: the state's gradient passes through as it came.
        auto pass = [&](float* to, const float* from, long long count) {
            if (from)
                run.copy(to, from, count_of(count) * sizeof(float));
            else
                run.zero(to, count_of(count) * sizeof(float));
        };
        pass(dh0_run, dh_n_run, h_size);
        if (dc0_run)
            pass(dc0_run, dc_n_run, c_size);
    }
    run.synchronize();
    run.copy(gradients, m.gradients.data(), parameters * sizeof(float));
    if (memory == Memory::host) {
        run.copy(dx, dx_run, count_of(x_size) * sizeof(float));
        run.copy(dh0, dh0_run, count_of(h_size) * sizeof(float));
        run.copy(dc0, dc0_run, count_of(c_size) * sizeof(float));
    }
    run.synchronize();
}

struct DeviceStream::Impl {
    explicit Impl(bool allow_tf32) : executor(allow_tf32, std::size_t(4) << 20), graphs_tf32(allow_tf32) {}

    Executor executor;
    Pool scratch;
    gpu::StackBuffers buffers;
    GpuBuffer<float> h, c, x, y;             ///< state, and one block of steps in and out
    GpuBuffer<float, true> x_host, y_host;   ///< pinned: one step in and out, for host callers
    /// One step of the stack as a CUDA graph, for host (copies from and to x_host, y_host
    /// included) and for device callers; captured on first use, with the TF32 mode below.
    cudaGraphExec_t graphs[2] = {nullptr, nullptr};
    bool graphs_tf32;

    ~Impl()
    {
        for (cudaGraphExec_t graph : graphs)
            if (graph)
                cudaGraphExecDestroy(graph);
    }
};

DeviceStream::DeviceStream(std::shared_ptr<DeviceModel> model, Index batch) : model_(std::move(model)), batch_(batch)
{
    const ModelSpec& spec = model_->spec();
    if (spec.bidirectional)
        raise(ErrorKind::argument, "stream: a bidirectional model needs the whole sequence; it cannot be streamed");
    if (batch < 1 || batch > (Index(1) << 24))
        raise(ErrorKind::argument, "batch: expected a number of streams in [1, 16777216], got " + std::to_string(batch));
    DeviceScope scope(model_->device());
    impl_ = std::make_unique<Impl>(model_->allow_tf32());
    Impl& s = *impl_;
    const long long L = spec.num_layers, O = spec.output_size(), I = spec.input_size;
    const long long steps = Stream::block_steps;
    s.h.resize(count_of(L * batch * O));
    s.c.resize(spec.has_cell_state() ? count_of(L * batch * spec.hidden_size) : 0);
    s.x.resize(count_of(steps * batch * I));
    s.y.resize(count_of(steps * batch * O));
    s.x_host.resize(count_of(batch * I));
    s.y_host.resize(count_of(batch * O));
    s.buffers = gpu::StackBuffers::make(spec, steps, batch, std::ref(s.scratch));
    reset();
}

DeviceStream::~DeviceStream()
{
    if (impl_)
        release_on(model_->device(), [&] { impl_.reset(); });
}

namespace {

/// Puts the stream's products in the model's TF32 mode, dropping graphs captured in the other.
void follow_tf32(DeviceStream::Impl& s, bool allow_tf32)
{
    if (s.graphs_tf32 == allow_tf32)
        return;
    for (cudaGraphExec_t& graph : s.graphs)
        if (graph) {
            cudaGraphExecDestroy(graph);
            graph = nullptr;
        }
    s.executor.set_allow_tf32(allow_tf32);
    s.graphs_tf32 = allow_tf32;
}

/// One step of the stack from s.x into s.y, state in place.
void run_one_step(DeviceStream::Impl& s, Executor& run, const DeviceModel& model, const float* weights, Index B)
{
    const ModelSpec& spec = model.spec();
    gpu::run_stack(run, spec, weights, rows(s.x.data(), 1, B, spec.input_size, false),
                   rows(s.y.data(), 1, B, spec.output_size(), false), 1, B, nullptr, s.h.data(),
                   spec.has_cell_state() ? s.c.data() : nullptr, s.buffers);
}

}  // namespace

void DeviceStream::step(const float* x, float* y, Memory memory)
{
    DeviceModel::Impl& m = *model_->impl_;
    m.check_loaded();
    DeviceScope scope(m.device);
    Impl& s = *impl_;
    Executor& run = s.executor;
    const ModelSpec& spec = m.spec;
    const std::size_t x_bytes = count_of(batch_ * spec.input_size) * sizeof(float);
    const std::size_t y_bytes = count_of(batch_ * spec.output_size()) * sizeof(float);
    const bool host = memory == Memory::host;

    follow_tf32(s, m.allow_tf32);
    cudaGraphExec_t& graph = s.graphs[host ? 0 : 1];
    if (!graph) {
        cudaGraph_t captured = nullptr;
        check(cudaStreamBeginCapture(run.stream(), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        try {
            if (host)
                run.copy(s.x.data(), s.x_host.data(), x_bytes);
            run_one_step(s, run, *model_, m.weights.data(), batch_);
            if (host)
                run.copy(s.y_host.data(), s.y.data(), y_bytes);
        } catch (...) {
            if (cudaStreamEndCapture(run.stream(), &captured) == cudaSuccess && captured)
                cudaGraphDestroy(captured);
            throw;
        }
        check(cudaStreamEndCapture(run.stream(), &captured), "cudaStreamEndCapture");
        const cudaError_t made = cudaGraphInstantiate(&graph, captured, 0);
        cudaGraphDestroy(captured);
        check(made, "cudaGraphInstantiate");
    }

    if (host)
        std::memcpy(s.x_host.data(), x, x_bytes);
    else
        run.copy(s.x.data(), x, x_bytes);
    check(cudaGraphLaunch(graph, run.stream()), "cudaGraphLaunch");
    if (!host)
        run.copy(y, s.y.data(), y_bytes);
    run.synchronize();
    if (host)
        std::memcpy(y, s.y_host.data(), y_bytes);
}

void DeviceStream::process(const float* x, float* y, Index T, Memory)  // cudaMemcpyDefault tells them apart
{
    DeviceModel::Impl& m = *model_->impl_;
    m.check_loaded();
    DeviceScope scope(m.device);
    Impl& s = *impl_;
    Executor& run = s.executor;
    const ModelSpec& spec = m.spec;
    const long long B = batch_, I = spec.input_size, O = spec.output_size();
    follow_tf32(s, m.allow_tf32);
    for (Index t0 = 0; t0 < T; t0 += Stream::block_steps) {
        const long long n = std::min<long long>(Stream::block_steps, T - t0);
        // A block of steps into contiguous buffers in the model's layout (for batch-first, B rows
        // of n steps, each a slice of a row of T steps).
        if (spec.batch_first)
            run.copy_rows(s.x.data(), n * I * sizeof(float), x + t0 * I, T * I * sizeof(float), n * I * sizeof(float),
                          count_of(B));
        else
            run.copy(s.x.data(), x + t0 * B * I, count_of(n * B * I) * sizeof(float));
        gpu::run_stack(run, spec, m.weights.data(), rows(s.x.data(), n, B, I, spec.batch_first),
                       rows(s.y.data(), n, B, O, spec.batch_first), n, B, nullptr, s.h.data(),
                       spec.has_cell_state() ? s.c.data() : nullptr, s.buffers);
        if (spec.batch_first)
            run.copy_rows(y + t0 * O, T * O * sizeof(float), s.y.data(), n * O * sizeof(float), n * O * sizeof(float),
                          count_of(B));
        else
            run.copy(y + t0 * B * O, s.y.data(), count_of(n * B * O) * sizeof(float));
    }
    run.synchronize();
}

void DeviceStream::reset()
{
    DeviceScope scope(model_->device());
    const ModelSpec& spec = model_->spec();
    Executor& run = impl_->executor;
    run.zero(impl_->h.data(), count_of(spec.num_layers * batch_ * spec.output_size()) * sizeof(float));
    if (spec.has_cell_state())
        run.zero(impl_->c.data(), count_of(spec.num_layers * batch_ * spec.hidden_size) * sizeof(float));
    run.synchronize();
}

void DeviceStream::reset(Index i)
{
    if (i < 0 || i >= batch_)
        return;
    DeviceScope scope(model_->device());
    const ModelSpec& spec = model_->spec();
    Executor& run = impl_->executor;
    const long long O = spec.output_size(), H = spec.hidden_size;
    for (long long layer = 0; layer < spec.num_layers; ++layer) {
        run.zero(impl_->h.data() + (layer * batch_ + i) * O, count_of(O) * sizeof(float));
        if (spec.has_cell_state())
            run.zero(impl_->c.data() + (layer * batch_ + i) * H, count_of(H) * sizeof(float));
    }
    run.synchronize();
}

void DeviceStream::get_state(float* h, float* c) const
{
    DeviceScope scope(model_->device());
    const ModelSpec& spec = model_->spec();
    Executor& run = impl_->executor;
    run.copy(h, impl_->h.data(), count_of(spec.num_layers * batch_ * spec.output_size()) * sizeof(float));
    if (c && spec.has_cell_state())
        run.copy(c, impl_->c.data(), count_of(spec.num_layers * batch_ * spec.hidden_size) * sizeof(float));
    run.synchronize();
}

void DeviceStream::set_state(const float* h, const float* c)
{
    DeviceScope scope(model_->device());
    const ModelSpec& spec = model_->spec();
    Executor& run = impl_->executor;
    run.copy(impl_->h.data(), h, count_of(spec.num_layers * batch_ * spec.output_size()) * sizeof(float));
    if (c && spec.has_cell_state())
        run.copy(impl_->c.data(), c, count_of(spec.num_layers * batch_ * spec.hidden_size) * sizeof(float));
    run.synchronize();
}

}  // namespace streamrnn::cuda
