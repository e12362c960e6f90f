// tests/cpp/test_gpu_stack.cpp: the CUDA backend's plan of a forward (cpp/src/cuda/scan.hpp), run by a
// host executor of its products and element passes, against Model::forward, ONNX's cell options too.
// What the GPU adds is only the executor; test_cuda.cpp and tests/test_cuda.py check that part on a
// device.
// Part of streamrnn, MIT licence.
#include "model_cases.hpp"

#include "cuda/scan.hpp"

#include "streamrnn/stream.hpp"

#include <functional>
#include <memory>

namespace {

using namespace streamrnn;
using namespace streamrnn::testing;

/// The executor's operations as plain loops.
struct HostOps {
    void gemm(bool trans_a, bool trans_b, long long M, long long N, long long K, const float* A, long long lda,
              const float* B, long long ldb, float* C, long long ldc, bool accumulate)
    {
        for (long long m = 0; m < M; ++m)
            for (long long n = 0; n < N; ++n) {
                float sum = 0.0f;
                for (long long k = 0; k < K; ++k)
                    sum += (trans_a ? A[k * lda + m] : A[m * lda + k]) * (trans_b ? B[n * ldb + k] : B[k * ldb + n]);
                C[m * ldc + n] = (accumulate ? C[m * ldc + n] : 0.0f) + sum;
            }
    }
    template <typename Element, typename Args>
    void launch(const Args& args)
    {
        for (long long i = 0; i < Element::count(args); ++i)
            Element::apply(args, i);
    }
};

/// Host memory for a plan's buffers: allocate(floats) -> float*, kept until the end of the test.
struct HostMemory {
    std::vector<std::vector<float>> blocks;
    float* operator()(long long count) { return blocks.emplace_back(std::size_t(count)).data(); }
};

/// The plan's scratch for T steps of B rows, in host memory.
struct HostScratch {
    HostMemory memory;
    gpu::StackBuffers buffers;

    HostScratch(const ModelSpec& spec, long long T, long long B)
        : buffers(gpu::StackBuffers::make(spec, T, B, std::ref(memory))) {}
};

SeqView rows_of(float* data, long long T, long long B, long long width, bool batch_first)
{
    return SeqView::of(data, T, B, width, width, batch_first);
}

/// `spec` with ONNX's cell options, or as it is: functions (other ones per direction), clip
/// (0.8: some pre-activations clip), and an LSTM's peepholes and, every other case, coupled gates.
ModelSpec with_options(ModelSpec spec, bool options, unsigned seed)
{
    if (!options)
        return spec;
    spec.clip = 0.8;
    const ActivationFunction functions[] = {{Activation::hard_sigmoid, 0.3f, 0.5f}, {Activation::softsign},
                                            {Activation::elu, 0.7f},           {Activation::scaled_tanh, 1.2f, 0.8f},
                                            {Activation::leaky_relu, 0.1f},    {Activation::softplus}};
    if (spec.kind != CellKind::rnn_relu)
        for (int k = 0; k < spec.cell_function_count() * spec.directions(); ++k)
            spec.activations.push_back(k % spec.cell_function_count() == 0 ? ActivationFunction{Activation::sigmoid}
                                                                           : functions[(k + seed) % 6]);
    if (spec.kind == CellKind::lstm) {
        spec.peepholes = true;
        spec.input_forget = seed % 2 == 1;
    }
    return spec;
}

/// Every model case, without and with options.
std::vector<std::pair<ModelCase, bool>> cases_with_options()
{
    std::vector<std::pair<ModelCase, bool>> cases;
    for (const ModelCase& k : model_cases())
        for (bool options : {false, true})
            cases.emplace_back(k, options);
    return cases;
}

}  // namespace

TEST_CASE("the GPU plan of a forward gives Model::forward's outputs and states")
{
    unsigned seed = 1;
    for (const auto& entry : cases_with_options()) {
        const ModelCase& k = entry.first;  // not a structured binding: clang 14's CAPTURE cannot take one
        const bool options = entry.second;
        const ModelSpec spec = with_options(k.spec(6, 7), options, seed);
        CAPTURE(kind_name(k.kind));
        CAPTURE(options);
        CAPTURE(seed);
        const Model model(spec, seed);
        ForwardCase expected(model, 5, 3, k.with_lengths, seed += 3);
        const long long T = expected.T, B = expected.B, Y = spec.directions() * spec.output_size();

        std::vector<float> x = expected.x, y(std::size_t(T * B * Y), -1.0f), h = expected.h0, c = expected.c0;
        HostOps ops;
        HostScratch scratch(spec, T, B);
        gpu::run_forward(ops, spec, model.parameters(), rows_of(x.data(), T, B, spec.input_size, k.batch_first),
                       rows_of(y.data(), T, B, Y, k.batch_first), T, B, expected.lengths_data(), h.data(),
                       spec.has_cell_state() ? c.data() : nullptr, scratch.buffers);
        check_close(y, expected.y);
        check_close(h, expected.h);
        check_close(c, expected.c);
    }
}

TEST_CASE("the GPU plan run step by step gives a stream's outputs")
{
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_relu}) {
        ModelSpec spec;
        spec.kind = kind;
        spec.input_size = 4;
        spec.hidden_size = 9;
        spec.num_layers = 2;
        spec.residual = true;
        spec.reset_after = false;
        auto model = std::make_shared<Model>(spec, 7);
        const long long T = 6, B = 2, I = spec.input_size, O = spec.output_size();
        const std::vector<float> x = random_values(std::size_t(T * B * I), 11);
        Stream stream(model, B);
        std::vector<float> y_cpu(std::size_t(T * B * O));
        stream.process(x.data(), y_cpu.data(), T);

        HostOps ops;
        HostScratch scratch(spec, 1, B);
        std::vector<float> h(std::size_t(spec.num_layers * B * O)), c(std::size_t(spec.num_layers * B * spec.hidden_size));
        std::vector<float> x_copy = x, y(std::size_t(T * B * O));
        for (long long t = 0; t < T; ++t)
            gpu::run_forward(ops, spec, model->parameters(), rows_of(x_copy.data() + t * B * I, 1, B, I, false),
                             rows_of(y.data() + t * B * O, 1, B, O, false), 1, B, nullptr, h.data(), c.data(),
                             scratch.buffers);
        check_close(y, y_cpu);
    }
}

TEST_CASE("the GPU plan of a training forward and its backward give Model::backward's gradients")
{
    unsigned seed = 40;
    for (const auto& entry : cases_with_options()) {
        const ModelCase& k = entry.first;  // not a structured binding: clang 14's CAPTURE cannot take one
        const bool options = entry.second;
        const ModelSpec spec = with_options(k.spec(6, 7), options, seed);
        CAPTURE(kind_name(k.kind));
        CAPTURE(options);
        CAPTURE(seed);
        Model model(spec, seed);
        const long long T = 5, B = 3, I = spec.input_size, Y = spec.directions() * spec.output_size();
        const long long cells = spec.num_layers * spec.directions(), H = spec.hidden_size, H_out = spec.output_size();
        ForwardCase input(model, T, B, k.with_lengths, seed += 5);
        const std::vector<float> dy = random_values(std::size_t(T * B * Y), seed + 1);
        const std::vector<float> dh_n = random_values(std::size_t(cells * B * H_out), seed + 2);
        const std::vector<float> dc_n = random_values(std::size_t(cells * B * H), seed + 3);
        const bool lstm = spec.has_cell_state();

        std::vector<float> y(std::size_t(T * B * Y)), h = input.h0, c = input.c0;
        model.forward_train(input.x.data(), T, B, input.lengths_data(), y.data(), h.data(), lstm ? c.data() : nullptr);
        std::vector<float> dx(std::size_t(T * B * I)), dh0(h.size()), dc0(c.size());
        model.zero_grad();
        model.backward(dy.data(), dh_n.data(), lstm ? dc_n.data() : nullptr, dx.data(), dh0.data(),
                       lstm ? dc0.data() : nullptr);
        const std::vector<float> expected_grads(model.gradients().begin(), model.gradients().end());

        HostOps ops;
        HostMemory memory;
        const gpu::StackBuffers buffers = gpu::StackBuffers::make(spec, T, B, memory);
        RecordView record = RecordView::make(spec, T, B, memory);
        const gpu::BackBuffers back = gpu::BackBuffers::make(spec, T, B, memory);
        std::vector<float> x = input.x, y_gpu(y.size()), h_gpu = input.h0, c_gpu = input.c0;
        gpu::run_forward(ops, spec, model.parameters(), rows_of(x.data(), T, B, I, k.batch_first),
                         rows_of(y_gpu.data(), T, B, Y, k.batch_first), T, B, input.lengths_data(), h_gpu.data(),
                         lstm ? c_gpu.data() : nullptr, buffers, &record);
        check_close(y_gpu, y);
        check_close(h_gpu, h);

        std::vector<float> dy_copy = dy, dx_gpu(dx.size(), -1.0f), dh0_gpu(dh0.size()), dc0_gpu(dc0.size());
        std::vector<float> grads(model.parameter_count(), 0.0f);
        const BackwardPass pass{spec, model.parameters(), grads.data(), record, T, B, input.lengths_data()};
        gpu::run_backward(ops, pass, rows_of(dy_copy.data(), T, B, Y, k.batch_first), dh_n.data(),
                          lstm ? dc_n.data() : nullptr, rows_of(dx_gpu.data(), T, B, I, k.batch_first), dh0_gpu.data(),
                          lstm ? dc0_gpu.data() : nullptr, back);
        check_close(dx_gpu, dx, 5e-5f);
        check_close(dh0_gpu, dh0, 5e-5f);
        check_close(dc0_gpu, dc0, 5e-5f);
        check_close(grads, expected_grads, 1e-4f);
    }
}

TEST_CASE("dropout in the GPU plan keeps about 1 - p of the units, scaled, and backward uses the same mask")
{
    ModelSpec spec;
    spec.kind = CellKind::gru;
    spec.input_size = 8;
    spec.hidden_size = 8;
    spec.num_layers = 2;
    spec.dropout = 0.25;
    const Model model(spec, 3);
    const long long T = 40, B = 8, I = 8;
    HostOps ops;
    HostMemory memory;
    const gpu::StackBuffers buffers = gpu::StackBuffers::make(spec, T, B, memory);
    RecordView record = RecordView::make(spec, T, B, memory);
    std::vector<float> x = random_values(std::size_t(T * B * I), 1), y(std::size_t(T * B * 8)), h(2 * B * 8);
    gpu::run_forward(ops, spec, model.parameters(), rows_of(x.data(), T, B, I, false), rows_of(y.data(), T, B, 8, false),
                     T, B, nullptr, h.data(), nullptr, buffers, &record, 12345);
    const float* mask = record.masks[1];
    long long kept = 0;
    for (long long i = 0; i < T * B * I; ++i) {
        REQUIRE((mask[i] == 0.0f || std::abs(mask[i] - 1.0f / 0.75f) < 1e-6f));
        kept += mask[i] != 0.0f;
    }
    CHECK(std::abs(double(kept) / double(T * B * I) - 0.75) < 0.03);
    // The second layer's input is the first layer's output times the mask: zero where dropped.
    for (long long i = 0; i < T * B * I; ++i)
        if (mask[i] == 0.0f)
            REQUIRE(record.inputs[1][i] == 0.0f);
}
