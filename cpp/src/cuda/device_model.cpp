// cpp/src/cuda/device_model.cpp: DeviceModel: a model's weights on one GPU, its whole-sequence
// forward, training forward and BPTT there, and the copies between host and GPU around them.
// Part of streamrnn, MIT licence.
#include "cuda/device_model.hpp"

#include "sizes.hpp"

#include "streamrnn/errors.hpp"

#include <cstring>
#include <functional>
#include <mutex>
#include <string>

namespace streamrnn::cuda {

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
    const std::unique_lock<std::shared_mutex> guard(impl_->lock);  // no stream steps meanwhile
    DeviceScope scope(impl_->device);
    check(cudaMemcpy(impl_->weights.data(), parameters, impl_->spec.parameter_count() * sizeof(float),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy (weights)");
    impl_->version = version;
}

void DeviceModel::set_allow_tf32(bool allow)
{
    const std::unique_lock<std::shared_mutex> guard(impl_->lock);
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

void DeviceModel::Impl::prepare_record(long long T, long long B)
{
    std::vector<long long> counts;
    RecordView::make(spec, T, B, [&](long long count) -> float* {
        counts.push_back(count);
        return nullptr;
    });
    if (record_memory.holds(counts)) {
        record_memory.rewind();
        record = RecordView::make(spec, T, B, record_memory);
        return;
    }
    Pool fresh;
    RecordView made = RecordView::make(spec, T, B, fresh);
    record_memory = std::move(fresh);
    record = std::move(made);
}

void DeviceModel::Impl::run_forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                                    float* c, Memory memory, bool train)
{
    check_lengths(T, B, lengths);
    const std::unique_lock<std::shared_mutex> guard(lock);
    check_loaded();
    DeviceScope scope(device);
    const long long I = spec.input_size, Y = spec.directions() * spec.output_size();
    const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
    const long long x_size = T * B * I, y_size = T * B * Y, h_size = cells * B * spec.output_size();
    const long long c_size = spec.has_cell_state() ? cells * B * spec.hidden_size : 0;
    if (train) {
        prepare_record(T, B);  // a failure here keeps the last record whole
        recorded = false;      // until this one is complete
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
    const gpu::StackBuffers buffers = gpu::StackBuffers::make(spec, T, B, scratch);
    // The steps run on copies of the state, and on copies of host arrays: the caller's arrays are
    // written only once every step has run, so that a failure leaves them as they were.
    io.rewind();
    const float* x_run = x;
    float* y_run = y;
    float* h_run = io(h_size);
    float* c_run = c ? io(c_size) : nullptr;
    if (memory == Memory::host) {
        x_run = io(x_size);
        y_run = io(y_size);
        run.copy(const_cast<float*>(x_run), x, count_of(x_size) * sizeof(float));
    }
    run.copy(h_run, h, count_of(h_size) * sizeof(float));
    run.copy(c_run, c, count_of(c_size) * sizeof(float));
    GpuBuffer<std::int64_t>& lengths_copy = train ? recorded_lengths : this->lengths;
    if (lengths) {
        lengths_copy.resize(count_of(B));
        run.copy(lengths_copy.data(), lengths, count_of(B) * sizeof(std::int64_t));
    }
    const std::int64_t* lengths_run = lengths ? lengths_copy.data() : nullptr;
    gpu::run_forward(run, spec, weights.data(), rows(x_run, T, B, I, spec.batch_first),
                     rows(y_run, T, B, Y, spec.batch_first), T, B, lengths_run, h_run, c_run, buffers,
                     train ? &record : nullptr, train ? dropout_rng() : 0);
    run.synchronize();  // every step ran: only the copies out are left
    if (memory == Memory::host)
        run.copy(y, y_run, count_of(y_size) * sizeof(float));
    run.copy(h, h_run, count_of(h_size) * sizeof(float));
    run.copy(c, c_run, count_of(c_size) * sizeof(float));
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
    const std::shared_lock<std::shared_mutex> guard(impl_->lock);  // not while a forward writes it
    impl_->check_recorded();
    return impl_->record_T;
}

Index DeviceModel::recorded_batch() const
{
    const std::shared_lock<std::shared_mutex> guard(impl_->lock);
    impl_->check_recorded();
    return impl_->record_B;
}

void DeviceModel::backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                           Memory memory, float* gradients, Index steps, Index batch)
{
    Impl& m = *impl_;
    const std::unique_lock<std::shared_mutex> guard(m.lock);
    m.check_recorded();
    if ((steps >= 0 && steps != m.record_T) || (batch >= 0 && batch != m.record_B))
        raise(ErrorKind::busy, "backward: the training record changed after its arrays were made (another thread "
                               "ran forward(train=True) in between); the record is for one thread at a time");
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
        const gpu::BackBuffers buffers = gpu::BackBuffers::make(spec, T, B, m.scratch);
        const std::int64_t* lengths = m.record_lengths ? m.recorded_lengths.data() : nullptr;
        const BackwardPass pass{spec, m.weights.data(), m.gradients.data(), m.record, T, B, lengths};
        gpu::run_backward(run, pass, rows(dy_run, T, B, Y, spec.batch_first), dh_n_run, dc_n_run,
                          rows(dx_run, T, B, I, spec.batch_first), dh0_run, dc0_run, buffers);
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

}  // namespace streamrnn::cuda
