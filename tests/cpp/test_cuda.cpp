// tests/cpp/test_cuda.cpp: the CUDA backend on a GPU against the CPU engine: DeviceModel::forward
// from host and from device memory, and DeviceStream's steps, chunks, state and resets. Its own
// program, which CTest reports as skipped (exit code 77) where no GPU is seen.
// Part of streamrnn, MIT licence.
#define DOCTEST_CONFIG_IMPLEMENT
#include "model_cases.hpp"

#include "streamrnn/cuda.hpp"
#include "streamrnn/errors.hpp"
#include "streamrnn/stream.hpp"

#include <cstdio>
#include <memory>

namespace {

using namespace streamrnn;
using namespace streamrnn::testing;

std::shared_ptr<cuda::DeviceModel> on_gpu(const Model& model)
{
    auto device = std::make_shared<cuda::DeviceModel>(model.spec(), 0);
    device->load(model.parameters(), model.version());
    return device;
}

/// A device copy of host floats, and back.
struct OnDevice {
    cuda::DeviceBuffer buffer;
    explicit OnDevice(const std::vector<float>& host) : buffer(host.size(), 0)
    {
        cuda::copy_memory(buffer.data(), host.data(), host.size() * sizeof(float));
    }
    std::vector<float> host() const
    {
        std::vector<float> out(buffer.size());
        cuda::copy_memory(out.data(), buffer.data(), out.size() * sizeof(float));
        return out;
    }
};

}  // namespace

TEST_CASE("DeviceModel::forward gives Model::forward's outputs, from host and from device memory")
{
    unsigned seed = 100;
    for (const ModelCase& k : model_cases())
        for (long long B : {1LL, 3LL, 70LL}) {
            const ModelSpec spec = k.spec(19, 33);
            CAPTURE(kind_name(k.kind));
            CAPTURE(seed);
            CAPTURE(B);
            const Model model(spec, seed);
            ForwardCase expected(model, 37, B, k.with_lengths, seed += 3);
            auto device = on_gpu(model);

            std::vector<float> y(expected.y.size(), -1.0f), h = expected.h0, c = expected.c0;
            device->forward(expected.x.data(), expected.T, B, expected.lengths_data(), y.data(), h.data(),
                            spec.has_cell_state() ? c.data() : nullptr, cuda::Memory::host);
            check_close(y, expected.y, 1e-4f);
            check_close(h, expected.h, 1e-4f);
            check_close(c, expected.c, 1e-4f);

            OnDevice x_d(expected.x), y_d(y), h_d(expected.h0), c_d(expected.c0);
            device->forward(x_d.buffer.data(), expected.T, B, expected.lengths_data(), y_d.buffer.data(),
                            h_d.buffer.data(), spec.has_cell_state() ? c_d.buffer.data() : nullptr,
                            cuda::Memory::device);
            check_close(y_d.host(), expected.y, 1e-4f);
            check_close(h_d.host(), expected.h, 1e-4f);
        }
}

TEST_CASE("DeviceModel's training forward and backward give Model::backward's gradients")
{
    unsigned seed = 300;
    for (const ModelCase& k : model_cases()) {
        const ModelSpec spec = k.spec(11, 20);
        CAPTURE(kind_name(k.kind));
        CAPTURE(seed);
        Model model(spec, seed);
        const long long T = 23, B = 9, Y = spec.directions() * spec.output_size();
        const long long cells = spec.num_layers * spec.directions();
        ForwardCase input(model, T, B, k.with_lengths, seed += 5);
        const std::vector<float> dy = random_values(std::size_t(T * B * Y), seed + 1);
        const std::vector<float> dh_n = random_values(std::size_t(cells * B * spec.output_size()), seed + 2);
        const std::vector<float> dc_n = random_values(std::size_t(cells * B * spec.hidden_size), seed + 3);
        const bool lstm = spec.has_cell_state();
        float* no_c = nullptr;

        std::vector<float> y(input.y.size()), h = input.h0, c = input.c0;
        model.forward_train(input.x.data(), T, B, input.lengths_data(), y.data(), h.data(), lstm ? c.data() : no_c);
        std::vector<float> dx(input.x.size()), dh0(h.size()), dc0(c.size());
        model.zero_grad();
        model.backward(dy.data(), dh_n.data(), lstm ? dc_n.data() : nullptr, dx.data(), dh0.data(),
                       lstm ? dc0.data() : no_c);

        auto device = on_gpu(model);
        std::vector<float> y_gpu(y.size()), h_gpu = input.h0, c_gpu = input.c0;
        device->forward_train(input.x.data(), T, B, input.lengths_data(), y_gpu.data(), h_gpu.data(),
                              lstm ? c_gpu.data() : no_c, cuda::Memory::host);
        check_close(y_gpu, y, 1e-4f);
        CHECK(device->recorded_steps() == T);
        std::vector<float> dx_gpu(dx.size()), dh0_gpu(dh0.size()), dc0_gpu(dc0.size()), grads(model.parameter_count());
        device->backward(dy.data(), dh_n.data(), lstm ? dc_n.data() : nullptr, dx_gpu.data(), dh0_gpu.data(),
                         lstm ? dc0_gpu.data() : no_c, cuda::Memory::host, grads.data());
        check_close(dx_gpu, dx, 1e-4f);
        check_close(dh0_gpu, dh0, 1e-4f);
        check_close(dc0_gpu, dc0, 1e-4f);
        check_close(grads, std::vector<float>(model.gradients().begin(), model.gradients().end()), 5e-4f);
    }
}

TEST_CASE("a DeviceStream gives a Stream's outputs step by step and in chunks, and resets as it does")
{
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh}) {
        for (bool batch_first : {false, true}) {
            ModelSpec spec;
            spec.kind = kind;
            spec.input_size = 5;
            spec.hidden_size = 24;
            spec.num_layers = 2;
            spec.residual = true;
            spec.batch_first = batch_first;
            spec.proj_size = kind == CellKind::lstm ? 8 : 0;
            auto model = std::make_shared<Model>(spec, 5);
            const long long T = 150, B = 4, I = spec.input_size, O = spec.output_size();
            const std::vector<float> x = random_values(std::size_t(T * B * I), 3);
            Stream cpu(model, B);
            std::vector<float> expected(std::size_t(T * B * O));
            cpu.process(x.data(), expected.data(), T);

            cuda::DeviceStream gpu_stream(on_gpu(*model), B);
            std::vector<float> y(expected.size());
            gpu_stream.process(x.data(), y.data(), T, cuda::Memory::host);  // three blocks of steps
            check_close(y, expected, 1e-4f);

            // Step by step (time-major steps of a batch-first sequence are its rows' slices).
            gpu_stream.reset();
            std::vector<float> x_t(std::size_t(B * I)), y_t(std::size_t(B * O));
            for (long long t = 0; t < T; ++t) {
                for (long long b = 0; b < B; ++b)
                    for (long long i = 0; i < I; ++i)
                        x_t[std::size_t(b * I + i)] = batch_first ? x[std::size_t((b * T + t) * I + i)]
                                                                  : x[std::size_t((t * B + b) * I + i)];
                gpu_stream.step(x_t.data(), y_t.data(), cuda::Memory::host);
                for (long long b = 0; b < B; ++b)
                    for (long long o = 0; o < O; ++o) {
                        const float want = batch_first ? expected[std::size_t((b * T + t) * O + o)]
                                                       : expected[std::size_t((t * B + b) * O + o)];
                        REQUIRE(std::abs(y_t[std::size_t(b * O + o)] - want) < 1e-4f);
                    }
            }

            std::vector<float> h(std::size_t(spec.num_layers * B * O)), c(std::size_t(spec.num_layers * B * spec.hidden_size));
            std::vector<float> h_cpu(cpu.h_size());
            gpu_stream.get_state(h.data(), c.data());
            cpu.get_state(h_cpu.data(), nullptr);
            check_close(h, h_cpu, 1e-4f);
            gpu_stream.reset(2);
            cpu.reset(2);
            gpu_stream.get_state(h.data(), c.data());
            cpu.get_state(h_cpu.data(), nullptr);
            check_close(h, h_cpu, 1e-4f);
        }
    }
}

TEST_CASE("bad arguments are errors that change nothing")
{
    ModelSpec spec;
    spec.input_size = 3;
    spec.hidden_size = 4;
    CHECK_THROWS_AS(cuda::DeviceModel(spec, cuda::device_count()), ArgumentError);
    const Model model(spec, 1);
    auto device = std::make_shared<cuda::DeviceModel>(spec, 0);
    std::vector<float> x(6), y(8), h(4), c(4);
    CHECK_THROWS_AS(device->forward(x.data(), 2, 1, nullptr, y.data(), h.data(), c.data(), cuda::Memory::host),
                    ArgumentError);  // no weights loaded yet
    device->load(model.parameters(), model.version());
    const std::int64_t too_long[] = {3};
    CHECK_THROWS_AS(device->forward(x.data(), 2, 1, too_long, y.data(), h.data(), c.data(), cuda::Memory::host),
                    ArgumentError);
    std::vector<float> grads(model.parameter_count());
    CHECK_THROWS_AS(device->backward(y.data(), nullptr, nullptr, x.data(), h.data(), c.data(), cuda::Memory::host,
                                     grads.data()),
                    ArgumentError);  // no training forward
    spec.bidirectional = true;
    CHECK_THROWS_AS(cuda::DeviceStream(std::make_shared<cuda::DeviceModel>(spec, 0), 1), ArgumentError);
}

int main(int argc, char** argv)
{
    if (streamrnn::cuda::device_count() == 0) {
        std::puts("no CUDA device: the GPU tests are skipped");
        return 77;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
