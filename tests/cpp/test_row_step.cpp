// tests/cpp/test_row_step.cpp: the one-row step (kernels/row_kernels.cpp) against the engine's
// whole-sequence forward for every cell, option (ONNX's too), depth and vector width, and its activations
// against double precision. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/stream.hpp"

#include "count_allocations.hpp"
#include "kernels/gemm.hpp"
#include "kernels/row_kernels.hpp"
#include "random_values.hpp"
#include "spec_of.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

using namespace streamrnn;
using testing::spec_of;

namespace {

/// Steps a stream of one row through T steps of x, one step() at a time and in one process(); both
/// must give the whole-sequence forward's outputs and final state.
void check_against_forward(const ModelSpec& spec)
{
    const Index T = 40, I = spec.input_size, H_out = spec.output_size(), L = spec.num_layers;
    auto model = std::make_shared<const Model>(spec, 11);
    const std::vector<float> x = testing::random_values(static_cast<std::size_t>(T * I), 5);
    std::vector<float> y(static_cast<std::size_t>(T * H_out)), h(static_cast<std::size_t>(L * H_out), 0.0f);
    std::vector<float> c(static_cast<std::size_t>(L * spec.hidden_size), 0.0f);
    model->forward(x.data(), T, 1, nullptr, y.data(), h.data(), spec.has_cell_state() ? c.data() : nullptr);

    Stream stepped(model, 1), whole(model, 1);
    std::vector<float> y_step(y.size()), y_process(y.size());
    for (Index t = 0; t < T; ++t)
        REQUIRE(stepped.step(x.data() + t * I, y_step.data() + t * H_out));
    REQUIRE(whole.process(x.data(), y_process.data(), T));
    std::vector<float> h_step(h.size()), c_step(c.size());
    stepped.get_state(h_step.data(), spec.has_cell_state() ? c_step.data() : nullptr);
    // float32 rounding: the row kernels sum in their own order and have their own exp and tanh.
    // A NaN counts as the worst difference. (An fmax reduction here also crashed aarch64 GCC 12's
    // vectoriser.)
    auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
        double worst = 0.0;
        for (std::size_t k = 0; k < a.size(); ++k) {
            const double difference = std::fabs(double(a[k]) - double(b[k]));
            if (!(difference <= worst))
                worst = std::isnan(difference) ? std::numeric_limits<double>::infinity() : difference;
        }
        return worst;
    };
    CHECK(close(y_step, y) <= 2e-6);
    CHECK(close(y_process, y_step) == 0.0);  // process() steps the same kernel
    CHECK(close(h_step, h) <= 2e-6);
    if (spec.has_cell_state())
        CHECK(close(c_step, c) <= 4e-6);
}

}  // namespace

TEST_CASE("the row kernels step every cell, option and width as the whole-sequence forward does")
{
    if (!row_kernels()) {
        MESSAGE("no row kernels on this CPU or build: Stream steps one row through the engine's step");
        return;
    }
    // Widths: 4 lanes (H = 4, 12, 17: a tail of 1), 8 (H = 8, 24, 5: a tail of 5), 16 (16, 32, 48)
    // where the CPU has them; inputs of 1 (audio), of H and of others.
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh, CellKind::rnn_relu})
        for (int hidden : {1, 4, 5, 8, 12, 16, 17, 24, 32, 48})
            for (int input : {1, hidden, 3}) {
                CAPTURE(kind_name(kind));
                CAPTURE(hidden);
                CAPTURE(input);
                check_against_forward(spec_of(kind, input, hidden, 1));
            }
    for (int hidden : {4, 8, 16, 17, 32}) {
        CAPTURE(hidden);
        ModelSpec spec = spec_of(CellKind::gru, 3, hidden, 2);
        spec.reset_after = false;
        check_against_forward(spec);
        spec.bias = false;
        check_against_forward(spec);
        ModelSpec lstm = spec_of(CellKind::lstm, 3, hidden, 3);
        lstm.proj_size = hidden > 4 ? hidden / 2 + 1 : 3;
        check_against_forward(lstm);
        lstm.residual = true;  // every layer past the first
        check_against_forward(lstm);
        lstm.bias = false;
        check_against_forward(lstm);
        ModelSpec rnn = spec_of(CellKind::rnn_tanh, hidden, hidden, 3);
        rnn.residual = true;  // the first layer too (I = H)
        check_against_forward(rnn);
        // ONNX's options that the row kernels have (RowCell::lstm_options); clip 0.3 clips about
        // half of the pre-activations here.
        ModelSpec options = spec_of(CellKind::lstm, 3, hidden, 2);
        options.peepholes = true;
        check_against_forward(options);
        options.clip = 0.3;
        check_against_forward(options);
        options.input_forget = true;
        options.proj_size = lstm.proj_size;
        check_against_forward(options);
        options.peepholes = false;
        check_against_forward(options);
    }
}

TEST_CASE("the row kernels' tanh and sigmoid are within 5 and 3 float32 ulps, and pass NaN through")
{
    if (!row_kernels())
        return;
    // RNN(1, 1), W_ih = 1, the rest 0: h' = tanh(x). LSTM(1, 1) with i's input weight 1, g's and o's
    // bias large (g = o = 1 in float32), the rest 0: c' = sigmoid(x).
    auto rnn = std::make_shared<Model>(spec_of(CellKind::rnn_tanh, 1, 1, 1), 1);
    std::vector<float> rnn_weights(rnn->parameter_count(), 0.0f);
    rnn_weights[0] = 1.0f;  // weight_ih_l0
    rnn->set_parameters(rnn_weights.data());
    auto lstm = std::make_shared<Model>(spec_of(CellKind::lstm, 1, 1, 1), 1);
    std::vector<float> lstm_weights(lstm->parameter_count(), 0.0f);
    lstm_weights[0] = 1.0f;    // weight_ih_l0, gate i
    lstm_weights[8 + 2] = 40;  // bias_ih_l0, gate g
    lstm_weights[8 + 3] = 40;  // bias_ih_l0, gate o
    lstm->set_parameters(lstm_weights.data());
    Stream tanh_stream(rnn, 1), sigmoid_stream(lstm, 1);

    auto ulps = [](double value, double exact) {
        const double ulp = std::fmax(std::ldexp(1.0, std::ilogb(exact) - 23), std::numeric_limits<float>::denorm_min());
        return std::fabs(value - exact) / ulp;
    };
    double worst_tanh = 0.0, worst_sigmoid = 0.0;
    for (int k = -200000; k <= 200000; ++k) {
        const float x = static_cast<float>(k) * 1e-4f * (1.0f + std::fabs(static_cast<float>(k)) * 1e-5f);
        float h = 0.0f, c = 0.0f, y = 0.0f;
        tanh_stream.reset();
        tanh_stream.step(&x, &y);
        if (x != 0.0f)
            worst_tanh = std::fmax(worst_tanh, ulps(y, std::tanh(double(x))));
        sigmoid_stream.reset();
        sigmoid_stream.step(&x, &y);
        sigmoid_stream.get_state(&h, &c);
        const double exact = 1.0 / (1.0 + std::exp(-double(x)));
        if (exact > 1e-30)
            worst_sigmoid = std::fmax(worst_sigmoid, ulps(c, exact));
    }
    // Measured on AVX-512: tanh 4.58 ulps (near |x| = 8, where P and Q, each rounded, divide to
    // just under 1), sigmoid 2.35. PyTorch's own are within 1; Eigen's tanh, which the
    // whole-sequence forward runs, is within 4.65 on this grid (test_row_step measures the row
    // kernels against that forward above).
    CHECK(worst_tanh <= 5.0);
    CHECK(worst_sigmoid <= 3.0);

    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    float y = 0.0f;
    tanh_stream.reset();
    tanh_stream.step(&nan, &y);
    CHECK(std::isnan(y));
    tanh_stream.reset();
    tanh_stream.step(&inf, &y);
    CHECK(y == 1.0f);
    const float minus_inf = -inf;
    tanh_stream.reset();
    tanh_stream.step(&minus_inf, &y);
    CHECK(y == -1.0f);
    float h = 0.0f, c = 0.0f;
    sigmoid_stream.reset();
    sigmoid_stream.step(&nan, &y);
    sigmoid_stream.get_state(&h, &c);
    CHECK(std::isnan(c));
}

TEST_CASE("a row step and a row's process allocate nothing, and follow new weights")
{
    ModelSpec spec = spec_of(CellKind::lstm, 1, 24, 2);
    auto model = std::make_shared<Model>(spec, 3);
    Stream stream(model, 1);
    std::vector<float> x(64, 0.25f), y(64 * 24);
    stream.step(x.data(), y.data());
    const long before = testing::allocation_count();
    for (int t = 0; t < 100; ++t)
        stream.step(x.data(), y.data());
    stream.process(x.data(), y.data(), 64);
    CHECK(testing::allocation_count() == before);

    // New weights (here: all zero) reach the next step: h' = 0.5 tanh(c'), c' = 0.5 c.
    std::vector<float> zeros(model->parameter_count(), 0.0f);
    model->set_parameters(zeros.data());
    stream.reset();
    stream.step(x.data(), y.data());
    for (int k = 0; k < 24; ++k)
        CHECK(y[static_cast<std::size_t>(k)] == 0.0f);
}
