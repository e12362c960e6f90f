// tests/cpp/test_gpu_stack.cpp: the CUDA backend's plan of a forward (cpp/cuda/stack.hpp), run by a
// host executor of its products and element passes, against Model::forward. What the GPU adds is
// only the executor; test_cuda.cpp and tests/test_cuda.py check that part on a device.
// Part of streamrnn, MIT licence.
#include "model_cases.hpp"

#include "../../cpp/cuda/stack.hpp"

#include "streamrnn/stream.hpp"

#include <memory>

namespace {

using namespace streamrnn;
using namespace streamrnn::testing;

/// The executor's operations as plain loops.
struct HostOps {
    void gemm(long long M, long long N, long long K, const float* A, long long lda, const float* W, long long ldw,
              float* C, long long ldc)
    {
        for (long long m = 0; m < M; ++m)
            for (long long n = 0; n < N; ++n) {
                float sum = 0.0f;
                for (long long k = 0; k < K; ++k)
                    sum += A[m * lda + k] * W[n * ldw + k];
                C[m * ldc + n] = sum;
            }
    }
    template <typename Element, typename Args>
    void launch(const Args& args)
    {
        for (long long i = 0; i < Element::count(args); ++i)
            Element::apply(args, i);
    }
};

/// The plan's scratch for T steps of B rows, in host memory.
struct HostScratch {
    std::vector<std::vector<float>> memory;
    gpu::StackBuffers buffers;

    HostScratch(const ModelSpec& spec, long long T, long long B)
    {
        memory.reserve(6);
        buffers = gpu::StackBuffers::make(spec, T, B, [&](long long count) {
            return memory.emplace_back(std::size_t(count)).data();
        });
    }
};

gpu::Rows rows_of(float* data, long long T, long long B, long long width, bool batch_first)
{
    return batch_first ? gpu::Rows{data, width, width, T * width} : gpu::Rows{data, width, B * width, width};
}

}  // namespace

TEST_CASE("the GPU plan of a forward gives Model::forward's outputs and states")
{
    unsigned seed = 1;
    for (const ModelCase& k : model_cases()) {
        const ModelSpec spec = k.spec(6, 7);
        CAPTURE(kind_name(k.kind));
        CAPTURE(seed);
        const Model model(spec, seed);
        ForwardCase expected(model, 5, 3, k.with_lengths, seed += 3);
        const long long T = expected.T, B = expected.B, Y = spec.directions() * spec.output_size();

        std::vector<float> x = expected.x, y(std::size_t(T * B * Y), -1.0f), h = expected.h0, c = expected.c0;
        HostOps ops;
        HostScratch scratch(spec, T, B);
        gpu::run_stack(ops, spec, model.parameters(), rows_of(x.data(), T, B, spec.input_size, k.batch_first),
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
            gpu::run_stack(ops, spec, model->parameters(), rows_of(x_copy.data() + t * B * I, 1, B, I, false),
                           rows_of(y.data() + t * B * O, 1, B, O, false), 1, B, nullptr, h.data(), c.data(),
                           scratch.buffers);
        check_close(y, y_cpu);
    }
}
