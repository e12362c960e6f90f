// cpp/src/cuda/device_stream.cpp: DeviceStream, live streams with their state on the GPU: a step of
// the whole stack as one CUDA graph, chunks as the stack's plan. Part of streamrnn, MIT licence.
#include "cuda/device_model.hpp"

#include "exclusive.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/stream.hpp"

#include <cstring>
#include <shared_mutex>

namespace streamrnn::cuda {

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
    /// A stream is for one call at a time.
    Exclusive in_use;

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
    s.buffers = gpu::StackBuffers::make(spec, steps, batch, s.scratch);
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
    gpu::run_forward(run, spec, weights, rows(s.x.data(), 1, B, spec.input_size, false),
                     rows(s.y.data(), 1, B, spec.output_size(), false), 1, B, nullptr, s.h.data(),
                     spec.has_cell_state() ? s.c.data() : nullptr, s.buffers);
}

/// The stream's own for the call `call` ("step", ...), while the model's weights hold still.
struct StreamCall {
    StreamCall(DeviceStream::Impl& s, DeviceModel::Impl& m, const char* call)
        : use(s.in_use, call, "this stream"), weights(m.lock)
    {
    }
    Exclusive::Hold use;
    std::shared_lock<std::shared_mutex> weights;
};

}  // namespace

void DeviceStream::step(const float* x, float* y, Memory memory)
{
    DeviceModel::Impl& m = *model_->impl_;
    const StreamCall call(*impl_, m, "step");
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
    const StreamCall call(*impl_, m, "process");
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
        gpu::run_forward(run, spec, m.weights.data(), rows(s.x.data(), n, B, I, spec.batch_first),
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
    const Exclusive::Hold use(impl_->in_use, "reset", "this stream");
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
    const Exclusive::Hold use(impl_->in_use, "reset", "this stream");
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
    const Exclusive::Hold use(impl_->in_use, "state", "this stream");
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
    const Exclusive::Hold use(impl_->in_use, "state", "this stream");
    DeviceScope scope(model_->device());
    const ModelSpec& spec = model_->spec();
    Executor& run = impl_->executor;
    run.copy(impl_->h.data(), h, count_of(spec.num_layers * batch_ * spec.output_size()) * sizeof(float));
    if (c && spec.has_cell_state())
        run.copy(impl_->c.data(), c, count_of(spec.num_layers * batch_ * spec.hidden_size) * sizeof(float));
    run.synchronize();
}

}  // namespace streamrnn::cuda
