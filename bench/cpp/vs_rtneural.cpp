// bench/cpp/vs_rtneural.cpp: streamrnn's one-row step and block paths against RTNeural's run-time
// and compile-time APIs, in one program, on the same weights. Part of streamrnn, MIT licence.
//
// RTNeural (github.com/jatinchowdhury18/RTNeural) is what audio plugins step small LSTMs and GRUs
// with today. It is built here only as a contender, from an unmodified copy given to CMake
// (-DSTREAMRNN_RTNEURAL_DIR, the folder holding RTNeural/ and modules/), with the flags its own
// CMake uses with Eigen. For each model: every contender steps the same random signal; rounds
// interleave the contenders (the order rotates each round) and the table gives the median ns per
// sample and the range over rounds. Before timing, every output of a 256-step run is compared
// with RTNeural's: a difference above 1e-5 fails the run (exit status 1). Beside them, timed in the
// same rounds, the floor of bench_step: the step's matrix-vector products alone.
// Run: ./vs_rtneural [--quick].
#include "streamrnn/model.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/stream.hpp"

#include <Eigen/Core>
#include <RTNeural/RTNeural.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using streamrnn::CellKind;

constexpr int block = 64;          // samples per process() call: an audio callback's block
constexpr int check_steps = 256;   // steps whose outputs are compared
constexpr float tolerance = 1e-5f;

/// The PyTorch tensors of a 1-layer model, as RTNeural's setters take them: Keras' layout, W
/// [I][G] and U [H][G] (transposed), gate blocks in Keras' order (LSTM i, f, c, o as PyTorch's;
/// GRU z, r, h where PyTorch has r, z, n).
struct KerasWeights {
    std::vector<std::vector<float>> w, u, b;  // b: LSTM one row (b_ih + b_hh); GRU two (input, recurrent)
};

KerasWeights keras_weights(const streamrnn::Model& model)
{
    const streamrnn::ModelSpec& spec = model.spec();
    const int I = spec.input_size, H = spec.hidden_size, G = spec.gate_rows();
    const float* w_ih = model.parameters();
    const float* w_hh = w_ih + G * I;
    const float* b_ih = w_hh + G * H;
    const float* b_hh = b_ih + G;
    const bool gru = spec.kind == CellKind::gru;
    // Keras column k holds PyTorch row torch_row(k).
    auto torch_row = [&](int k) {
        const int block_of = k / H, unit = k % H;
        return (gru && block_of < 2 ? 1 - block_of : block_of) * H + unit;
    };
    KerasWeights kw;
    kw.w.assign(static_cast<std::size_t>(I), std::vector<float>(static_cast<std::size_t>(G)));
    kw.u.assign(static_cast<std::size_t>(H), std::vector<float>(static_cast<std::size_t>(G)));
    kw.b.assign(gru ? 2 : 1, std::vector<float>(static_cast<std::size_t>(G)));
    for (int k = 0; k < G; ++k) {
        const int r = torch_row(k);
        for (int i = 0; i < I; ++i)
            kw.w[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)] = w_ih[r * I + i];
        for (int j = 0; j < H; ++j)
            kw.u[static_cast<std::size_t>(j)][static_cast<std::size_t>(k)] = w_hh[r * H + j];
        if (gru) {
            kw.b[0][static_cast<std::size_t>(k)] = b_ih[r];
            kw.b[1][static_cast<std::size_t>(k)] = b_hh[r];
        } else {
            kw.b[0][static_cast<std::size_t>(k)] = b_ih[r] + b_hh[r];
        }
    }
    return kw;
}

/// RTNeural's GRU takes both biases, its LSTM their sum.
template <bool gru, typename Layer>
void set_weights(Layer& layer, const KerasWeights& kw)
{
    layer.setWVals(kw.w);
    layer.setUVals(kw.u);
    if constexpr (gru)
        layer.setBVals(kw.b);
    else
        layer.setBVals(kw.b[0]);
    layer.reset();
}

/// A contender: steps `n` samples of the signal (each I floats) into out, its state carried.
struct Contender {
    const char* name;
    std::function<void(const float* signal, int n, float* out)> run;
    std::function<void()> reset;
};

constexpr int contender_count = 5;  // the four below and the GEMV floor

struct Row {
    std::string model;
    double median[contender_count] = {}, low[contender_count] = {}, high[contender_count] = {};
    double difference = 0.0;
};

template <CellKind kind, int I, int H>
Row compare(int rounds, std::vector<float>& signal_storage)
{
    using Dynamic = std::conditional_t<kind == CellKind::lstm, RTNeural::LSTMLayer<float>, RTNeural::GRULayer<float>>;
    using Static =
        std::conditional_t<kind == CellKind::lstm, RTNeural::LSTMLayerT<float, I, H>, RTNeural::GRULayerT<float, I, H>>;
    constexpr bool gru = kind == CellKind::gru;

    streamrnn::ModelSpec spec;
    spec.kind = kind;
    spec.input_size = I;
    spec.hidden_size = H;
    const auto model = std::make_shared<const streamrnn::Model>(spec, 7);
    const KerasWeights kw = keras_weights(*model);

    auto dynamic = std::make_unique<Dynamic>(I, H);
    set_weights<gru>(*dynamic, kw);
    auto fixed = std::make_unique<Static>();
    set_weights<gru>(*fixed, kw);
    streamrnn::Stream stepped(model, 1), blocked(model, 1);

    // Enough samples per timed run for about 1 ms at RTNeural's speed.
    const int samples = std::max(block, (std::max(1, 400000 / ((I + H) * 4 * H)) / block + 1) * block);
    signal_storage.resize(static_cast<std::size_t>(std::max(samples, check_steps) * I));
    const float* signal = signal_storage.data();

    std::vector<float> out(static_cast<std::size_t>(std::max(samples, check_steps) * H));
    // The floor, as bench_step's: one GEMV per sample over the fused weights [G, I + H], the
    // products no step can skip, each independent of the last (so not waiting on one another).
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const RowMajor fused = RowMajor::Random(spec.gate_rows(), I + H);
    const Eigen::VectorXf fused_input = Eigen::VectorXf::Random(I + H);
    Eigen::VectorXf gates(spec.gate_rows());
    Contender contenders[contender_count] = {
        {"RTNeural run-time",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; ++t)
                 dynamic->forward(x + t * I, y + t * H);
         },
         [&] { dynamic->reset(); }},
        {"RTNeural compile-time",
         [&](const float* x, int n, float* y) {
             Eigen::Matrix<float, I, 1> in;
             for (int t = 0; t < n; ++t) {
                 std::copy_n(x + t * I, I, in.data());
                 fixed->forward(in);
                 std::copy_n(fixed->outs.data(), H, y + t * H);
             }
         },
         [&] { fixed->reset(); }},
        {"streamrnn step",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; ++t)
                 stepped.step(x + t * I, y + t * H);
         },
         [&] { stepped.reset(); }},
        {"streamrnn process",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; t += block)
                 blocked.process(x + t * I, y + t * H, std::min(block, n - t));
         },
         [&] { blocked.reset(); }},
        {"GEMV floor",
         [&](const float*, int n, float*) {
             for (int t = 0; t < n; ++t)
                 gates.noalias() = fused * fused_input;
         },
         [] {}},
    };

    Row row;
    row.model = std::string(gru ? "GRU " : "LSTM ") + std::to_string(I) + " -> " + std::to_string(H);
    // The same outputs first: each contender from a zero state over check_steps samples.
    std::vector<float> reference(static_cast<std::size_t>(check_steps * H));
    contenders[0].reset();
    contenders[0].run(signal, check_steps, reference.data());
    for (int j = 0; j < 4; ++j) {  // the floor computes no outputs
        Contender& c = contenders[j];
        c.reset();
        c.run(signal, check_steps, out.data());
        for (int k = 0; k < check_steps * H; ++k)
            row.difference = std::max(row.difference, double(std::fabs(out[static_cast<std::size_t>(k)] -
                                                                       reference[static_cast<std::size_t>(k)])));
        c.reset();
    }

    std::vector<double> times[contender_count];
    for (int round = 0; round < rounds; ++round)
        for (int j = 0; j < contender_count; ++j) {
            const int which = (round + j) % contender_count;
            const auto start = Clock::now();
            contenders[which].run(signal, samples, out.data());
            times[which].push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / samples);
        }
    for (int j = 0; j < contender_count; ++j) {
        std::vector<double>& t = times[j];
        std::sort(t.begin(), t.end());
        row.median[j] = t[t.size() / 2];
        row.low[j] = t.front();
        row.high[j] = t.back();
    }
    return row;
}

/// A Linear's weights as RTNeural's Dense takes them: [out][in], and the bias.
std::vector<std::vector<float>> dense_weights(const streamrnn::Linear& linear)
{
    const float* w = linear.parameters();
    std::vector<std::vector<float>> rows(static_cast<std::size_t>(linear.out_features()));
    for (int o = 0; o < linear.out_features(); ++o)
        rows[static_cast<std::size_t>(o)].assign(w + o * linear.in_features(), w + (o + 1) * linear.in_features());
    return rows;
}

constexpr int whole_contender_count = 4;

struct WholeRow {
    std::string model;
    double median[whole_contender_count] = {}, low[whole_contender_count] = {}, high[whole_contender_count] = {};
    double difference = 0.0;
};

/// A whole audio model, one sample in and one out: with `front` (RTNeural's typical model)
/// Dense(1, H) -> tanh -> LSTM(H, H) -> Dense(H, 1); without (NAM's) LSTM(1, H) -> Dense(H, 1).
/// RTNeural's run-time Model and compile-time ModelT against streamrnn's SequentialStream step
/// and process, on the same weights, rounds interleaved as compare()'s.
template <bool front, int H>
WholeRow compare_whole(int rounds, const std::vector<float>& signal)
{
    constexpr int I = front ? H : 1;
    streamrnn::ModelSpec spec;
    spec.input_size = I;
    spec.hidden_size = H;
    const auto lstm = std::make_shared<streamrnn::Model>(spec, 9);
    const auto first = std::make_shared<streamrnn::Linear>(1, H, true, 10);
    const auto head = std::make_shared<streamrnn::Linear>(H, 1, true, 11);
    std::vector<streamrnn::Block> blocks;
    if (front) {
        blocks.push_back(streamrnn::Block::of(first));
        blocks.push_back(streamrnn::Block::of(streamrnn::ActivationFunction{streamrnn::Activation::tanh}));
    }
    blocks.push_back(streamrnn::Block::of(lstm));
    blocks.push_back(streamrnn::Block::of(head));
    const auto whole = std::make_shared<const streamrnn::Sequential>(std::move(blocks));
    streamrnn::SequentialStream stepped(whole, 1), blocked(whole, 1);

    const KerasWeights kw = keras_weights(*lstm);
    RTNeural::Model<float> dynamic(1);
    if (front) {
        auto* dense = new RTNeural::Dense<float>(1, H);
        dense->setWeights(dense_weights(*first));
        dense->setBias(first->parameters() + H);
        dynamic.addLayer(dense);
        dynamic.addLayer(new RTNeural::TanhActivation<float>(H));
    }
    auto* dynamic_lstm = new RTNeural::LSTMLayer<float>(I, H);
    set_weights<false>(*dynamic_lstm, kw);
    dynamic.addLayer(dynamic_lstm);
    auto* dynamic_head = new RTNeural::Dense<float>(H, 1);
    dynamic_head->setWeights(dense_weights(*head));
    dynamic_head->setBias(head->parameters() + H);
    dynamic.addLayer(dynamic_head);
    dynamic.reset();

    using Static = std::conditional_t<
        front,
        RTNeural::ModelT<float, 1, 1, RTNeural::DenseT<float, 1, H>, RTNeural::TanhActivationT<float, H>,
                         RTNeural::LSTMLayerT<float, H, H>, RTNeural::DenseT<float, H, 1>>,
        RTNeural::ModelT<float, 1, 1, RTNeural::LSTMLayerT<float, 1, H>, RTNeural::DenseT<float, H, 1>>>;
    auto fixed = std::make_unique<Static>();
    constexpr int lstm_index = front ? 2 : 0;
    if constexpr (front) {
        fixed->template get<0>().setWeights(dense_weights(*first));
        fixed->template get<0>().setBias(first->parameters() + H);
    }
    set_weights<false>(fixed->template get<lstm_index>(), kw);
    fixed->template get<lstm_index + 1>().setWeights(dense_weights(*head));
    fixed->template get<lstm_index + 1>().setBias(head->parameters() + H);
    fixed->reset();

    const int samples = 8192;
    std::vector<float> out(static_cast<std::size_t>(std::max(samples, check_steps)));
    Contender contenders[whole_contender_count] = {
        {"RTNeural Model",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; ++t)
                 y[t] = dynamic.forward(x + t);
         },
         [&] { dynamic.reset(); }},
        {"RTNeural ModelT",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; ++t)
                 y[t] = fixed->forward(x + t);
         },
         [&] { fixed->reset(); }},
        {"streamrnn step",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; ++t)
                 stepped.step(x + t, y + t);
         },
         [&] { stepped.reset(); }},
        {"streamrnn process",
         [&](const float* x, int n, float* y) {
             for (int t = 0; t < n; t += block)
                 blocked.process(x + t, y + t, std::min(block, n - t));
         },
         [&] { blocked.reset(); }},
    };
    WholeRow row;
    row.model = front ? "Dense(1, " + std::to_string(H) + ") tanh LSTM(" + std::to_string(H) + ") Dense(1)"
                      : "LSTM(1, " + std::to_string(H) + ") Dense(1) (NAM)";
    std::vector<float> reference(static_cast<std::size_t>(check_steps));
    contenders[0].reset();
    contenders[0].run(signal.data(), check_steps, reference.data());
    for (Contender& c : contenders) {
        c.reset();
        c.run(signal.data(), check_steps, out.data());
        for (int k = 0; k < check_steps; ++k)
            row.difference = std::max(row.difference, double(std::fabs(out[static_cast<std::size_t>(k)] -
                                                                       reference[static_cast<std::size_t>(k)])));
        c.reset();
    }
    std::vector<double> times[whole_contender_count];
    for (int round = 0; round < rounds; ++round)
        for (int j = 0; j < whole_contender_count; ++j) {
            const int which = (round + j) % whole_contender_count;
            const auto start = Clock::now();
            contenders[which].run(signal.data(), samples, out.data());
            times[which].push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / samples);
        }
    for (int j = 0; j < whole_contender_count; ++j) {
        std::vector<double>& t = times[j];
        std::sort(t.begin(), t.end());
        row.median[j] = t[t.size() / 2];
        row.low[j] = t.front();
        row.high[j] = t.back();
    }
    return row;
}

}  // namespace

int main(int argc, char** argv)
{
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const int rounds = quick ? 3 : 7;
    std::vector<float> signal(1 << 20);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : signal)
        v = 0.5f * normal(rng);

    std::vector<Row> rows;
    auto add = [&](Row row) {
        rows.push_back(std::move(row));
        std::fflush(stdout);
    };
    add(compare<CellKind::lstm, 4, 4>(rounds, signal));
    add(compare<CellKind::lstm, 8, 8>(rounds, signal));
    add(compare<CellKind::lstm, 16, 16>(rounds, signal));
    add(compare<CellKind::lstm, 32, 32>(rounds, signal));
    add(compare<CellKind::lstm, 64, 64>(rounds, signal));
    add(compare<CellKind::lstm, 128, 128>(rounds, signal));
    add(compare<CellKind::lstm, 1, 8>(rounds, signal));
    add(compare<CellKind::lstm, 1, 16>(rounds, signal));
    add(compare<CellKind::lstm, 1, 32>(rounds, signal));
    add(compare<CellKind::gru, 4, 4>(rounds, signal));
    add(compare<CellKind::gru, 8, 8>(rounds, signal));
    add(compare<CellKind::gru, 16, 16>(rounds, signal));
    add(compare<CellKind::gru, 32, 32>(rounds, signal));
    add(compare<CellKind::gru, 64, 64>(rounds, signal));
    add(compare<CellKind::gru, 128, 128>(rounds, signal));
    add(compare<CellKind::gru, 1, 8>(rounds, signal));
    add(compare<CellKind::gru, 1, 16>(rounds, signal));
    add(compare<CellKind::gru, 1, 32>(rounds, signal));

    std::printf("streamrnn against RTNeural, batch 1, one layer: ns per sample, median of %d interleaved rounds "
                "[min-max];\nprocess() in blocks of %d samples; ratios: streamrnn / RTNeural's faster API (below 1: "
                "streamrnn faster);\nGEMV floor: one Eigen GEMV over the fused weights [G, I + H] per sample, as "
                "bench_step's, and each\nlibrary's step over it (near 1: the step is the products it cannot skip)\n\n",
                rounds, block);
    std::printf("| model | RTNeural run-time | RTNeural compile-time | streamrnn step | streamrnn process | GEMV floor | "
                "step / RTNeural | process / RTNeural | RTNeural / floor | step / floor | max diff |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n");
    bool agree = true;
    for (const Row& row : rows) {
        const double best = std::min(row.median[0], row.median[1]);
        std::printf("| %s |", row.model.c_str());
        for (int j = 0; j < contender_count; ++j)
            std::printf(" %.0f [%.0f-%.0f] |", row.median[j], row.low[j], row.high[j]);
        std::printf(" %.2f | %.2f | %.2f | %.2f | %.1e |\n", row.median[2] / best, row.median[3] / best,
                    best / row.median[4], row.median[2] / row.median[4], row.difference);
        agree = agree && row.difference <= tolerance;
    }

    // Whole models, a sample in and a sample out: the head and the dense front included.
    const WholeRow whole_rows[] = {compare_whole<false, 16>(rounds, signal), compare_whole<true, 8>(rounds, signal),
                                   compare_whole<true, 16>(rounds, signal)};
    std::printf("\nWhole audio models, batch 1, a sample in and one out: ns per sample, median of %d interleaved "
                "rounds [min-max]; RTNeural's run-time Model and compile-time ModelT against streamrnn's "
                "SequentialStream\n\n",
                rounds);
    std::printf("| model | RTNeural Model | RTNeural ModelT | streamrnn step | streamrnn process | step / RTNeural | "
                "process / RTNeural | max diff |\n|---|---|---|---|---|---|---|---|\n");
    for (const WholeRow& row : whole_rows) {
        const double best = std::min(row.median[0], row.median[1]);
        std::printf("| %s |", row.model.c_str());
        for (int j = 0; j < whole_contender_count; ++j)
            std::printf(" %.0f [%.0f-%.0f] |", row.median[j], row.low[j], row.high[j]);
        std::printf(" %.2f | %.2f | %.1e |\n", row.median[2] / best, row.median[3] / best, row.difference);
        agree = agree && row.difference <= tolerance;
    }
    if (!agree) {
        std::printf("\nFAILED: an output differs from RTNeural's by more than %g\n", double(tolerance));
        return 1;
    }
    return 0;
}
