// tests/cpp/test_threads.cpp: whole-sequence calls on several threads give the result of one, and
// threads may share a model: the threads that ThreadSanitizer checks in CI (.ci/run).
// Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "model_cases.hpp"
#include "random_values.hpp"

#include "streamrnn/model.hpp"
#include "streamrnn/stream.hpp"

#include <memory>
#include <thread>
#include <vector>

using namespace streamrnn;
using namespace streamrnn::testing;

namespace {

/// The outputs and final state of one forward of `model` on x ([T, B, I]) from a zero state.
struct Outputs {
    std::vector<float> y, h, c;
};

Outputs run_forward(const Model& model, const std::vector<float>& x, Index T, Index B, int threads)
{
    const ModelSpec& spec = model.spec();
    const std::size_t cells = static_cast<std::size_t>(spec.num_layers * spec.directions() * B);
    Outputs out{std::vector<float>(static_cast<std::size_t>(T * B * spec.directions() * spec.output_size())),
                std::vector<float>(cells * static_cast<std::size_t>(spec.output_size())),
                std::vector<float>(spec.has_cell_state() ? cells * static_cast<std::size_t>(spec.hidden_size) : 0)};
    model.forward(x.data(), T, B, nullptr, out.y.data(), out.h.data(), spec.has_cell_state() ? out.c.data() : nullptr,
                  threads);
    return out;
}

void check_same(const Outputs& got, const Outputs& expected)
{
    check_close(got.y, expected.y);
    check_close(got.h, expected.h);
    check_close(got.c, expected.c);
}

}  // namespace

TEST_CASE("a batch split across threads, and one row projected ahead by a second thread, give one thread's result")
{
    // B = 6 on 3 threads: two rows per part; B = 1 over 400 steps (past two chunks of 192): a
    // second thread projects the inputs ahead of the scan, where the CPU has packed kernels.
    for (const ModelCase& k : model_cases()) {
        CAPTURE(kind_name(k.kind));
        const Model model(k.spec(16, 24), 5);
        for (const auto& [T, B] : {std::pair<Index, Index>{20, 6}, std::pair<Index, Index>{400, 1}}) {
            const Index steps = T, rows = B;  // copies: CAPTURE cannot capture a structured binding
            CAPTURE(steps);
            CAPTURE(rows);
            const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * 16), 6);
            check_same(run_forward(model, x, T, B, 3), run_forward(model, x, T, B, 1));
        }
    }
}

TEST_CASE("a training forward and backward on two threads give the gradients of one")
{
    // 32 rows of 10 steps: two parts of the batch, each recorded and run back on its own thread;
    // the weight gradients of the parts are summed, in another order than one thread's.
    ModelSpec spec = model_cases()[1].spec(8, 12);  // LSTM, 2 layers, bidirectional, residual
    const Index T = 10, B = 32;
    const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * spec.input_size), 7);
    const std::vector<float> dy =
        random_values(static_cast<std::size_t>(T * B * spec.directions() * spec.output_size()), 8);
    std::vector<std::vector<float>> gradients;
    for (int threads : {1, 2}) {
        Model model(spec, 9);
        std::vector<float> y(dy.size()), dx(x.size());
        const std::size_t state = static_cast<std::size_t>(spec.num_layers * spec.directions() * B * spec.hidden_size);
        std::vector<float> h(state), c(state), dh0(state), dc0(state);
        model.forward_train(x.data(), T, B, nullptr, y.data(), h.data(), c.data(), threads);
        model.backward(dy.data(), nullptr, nullptr, dx.data(), dh0.data(), dc0.data(), threads);
        gradients.emplace_back(model.gradients().begin(), model.gradients().end());
    }
    check_close(gradients[1], gradients[0], 1e-4f);
}

TEST_CASE("threads that share a model, calling it and streaming it at once, get what each would alone")
{
    // The copies of the weights that calls share are made under a lock, once per version of the
    // weights; a new version part way makes the first calls after it make them again.
    ModelSpec spec = model_cases()[0].spec(16, 32);  // one LSTM layer
    spec.num_layers = 2;
    auto model = std::make_shared<Model>(spec, 11);
    const Index T = 30, B = 2;
    std::vector<std::vector<float>> inputs;
    std::vector<Outputs> expected;
    for (unsigned i = 0; i < 4; ++i) {
        inputs.push_back(random_values(static_cast<std::size_t>(T * B * spec.input_size), 12 + i));
        expected.push_back(run_forward(Model(spec, 11), inputs.back(), T, B, 1));
    }
    for (int round = 0; round < 2; ++round) {
        model->set_parameters(model->parameters());  // a new version of the weights, with the values they had
        std::vector<Outputs> got(inputs.size());
        std::vector<std::vector<float>> streamed(inputs.size());
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < inputs.size(); ++i)
            threads.emplace_back([&, i] {
                got[i] = run_forward(*model, inputs[i], T, B, 1);
                Stream stream(model, B);
                streamed[i].resize(expected[i].y.size());
                stream.process(inputs[i].data(), streamed[i].data(), T);
            });
        for (std::thread& thread : threads)
            thread.join();
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            check_same(got[i], expected[i]);
            check_close(streamed[i], expected[i].y);
        }
    }
}
