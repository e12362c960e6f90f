// bench/cpp/bench_step.cpp: Stream::step and Stream::process timed in C++, with their heap allocations counted.
// Part of streamrnn, MIT licence.
//
// What the engine costs without Python: ns per step (median of many timed batches of steps),
// the real-time factor at 48 kHz for block streaming of a 1-feature sample stream, and the
// number of heap allocations during the timed calls (must be 0), and what flushing subnormals
// saves on a signal that decays through them. Run: build with -DSTREAMRNN_BENCH=ON, then
// ./bench_step [--quick].
#include "streamrnn/stream.hpp"

#include "count_allocations.hpp"
#include "spec_of.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

using namespace streamrnn;
using Clock = std::chrono::steady_clock;
using testing::spec_of;

namespace {

/// Median over `batches` of the ns per call of `calls` back-to-back calls of f; `allocated` gets
/// the heap allocations made by the calls (the timing's own buffer is made before).
template <typename F>
double median_ns(int batches, int calls, long& allocated, F f)
{
    std::vector<double> times;
    times.reserve(static_cast<std::size_t>(batches));
    const long before = testing::allocation_count();
    for (int b = 0; b < batches; ++b) {
        const auto start = Clock::now();
        for (int i = 0; i < calls; ++i)
            f();
        times.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / calls);
    }
    allocated = testing::allocation_count() - before;
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv)
{
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const int batches = quick ? 5 : 31;
    const CellKind kinds[] = {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh};

    std::printf("Stream::step, batch 1, I = H: ns per step (median of %d batches), heap allocations while timed, and\n"
                "the floor: per layer one Eigen GEMV over the fused weights [G, I + H] (the step's unavoidable work)\n",
                batches);
    std::printf("%-9s%3s%6s%12s%9s%12s%12s\n", "model", "L", "H", "ns/step", "allocs", "floor ns", "ours/floor");
    for (CellKind kind : kinds)
        for (int layers : {1, 2})
            for (int hidden : {16, 32, 64, 128, 512}) {
                Stream stream(std::make_shared<const Model>(spec_of(kind, hidden, hidden, layers), 1), 1);
                std::vector<float> x(static_cast<std::size_t>(hidden), 0.1f), y(static_cast<std::size_t>(hidden));
                const int calls = std::max(20, 2000000 / (hidden * hidden * layers * 4));
                stream.step(x.data(), y.data());
                long allocated = 0;
                const double ns = median_ns(batches, calls, allocated, [&] { stream.step(x.data(), y.data()); });
                const ModelSpec spec = spec_of(kind, hidden, hidden, layers);
                using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
                RowMajor weights = RowMajor::Random(spec.gate_rows(), 2 * hidden);
                Eigen::VectorXf input = Eigen::VectorXf::Random(2 * hidden), gates(spec.gate_rows());
                long unused = 0;
                const double floor_ns =
                    layers * median_ns(batches, calls, unused, [&] { gates.noalias() = weights * input; });
                std::printf("%-9s%3d%6d%12.1f%9ld%12.1f%11.2fx\n", kind_name(kind), layers, hidden, ns, allocated,
                            floor_ns, ns / floor_ns);
            }

    std::printf("\nStream::process, a 1-feature sample stream, 1 layer: ns per sample and real-time factor at 48 kHz\n");
    std::printf("%-9s%6s%7s%12s%10s%9s\n", "model", "H", "chunk", "ns/sample", "RTF", "allocs");
    for (CellKind kind : {CellKind::lstm, CellKind::gru})
        for (int hidden : {16, 32, 64})
            for (int chunk : {64, 512}) {
                Stream stream(std::make_shared<const Model>(spec_of(kind, 1, hidden, 1), 1), 1);
                std::vector<float> x(static_cast<std::size_t>(chunk), 0.1f), y(static_cast<std::size_t>(chunk * hidden));
                const int calls = std::max(4, 200000 / (chunk * hidden));
                stream.process(x.data(), y.data(), chunk);
                long allocated = 0;
                const double ns =
                    median_ns(batches, calls, allocated, [&] { stream.process(x.data(), y.data(), chunk); }) / chunk;
                std::printf("%-9s%6d%7d%12.1f%10.4f%9ld\n", kind_name(kind), hidden, chunk, ns, ns * 48000e-9, allocated);
            }

    // A sound's tail: the input decays through the subnormal range (below 1.2e-38 from sample
    // 2850) to zero; without a bias the state follows it down.
    constexpr int samples = 4096, chunk = 64;
    std::vector<float> decay(samples);
    for (int t = 0; t < samples; ++t)
        decay[static_cast<std::size_t>(t)] = static_cast<float>(0.5 * std::pow(0.97, t));
    std::printf("\nSubnormals: 1 feature, 1 layer, H = 32, input 0.5 * 0.97^t over %d samples in chunks of %d; "
                "ns per sample\n(mean over the signal, and the slowest chunk), median of %d runs; subnormal outputs "
                "counted with flushing off\n", samples, chunk, batches);
    std::printf("%-9s%6s%12s%12s%12s%12s%10s%12s\n", "model", "bias", "flush mean", "flush max", "off mean", "off max",
                "off/flush", "subnormals");
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh})
        for (bool bias : {true, false}) {
            ModelSpec spec = spec_of(kind, 1, 32, 1);
            spec.bias = bias;
            Stream stream(std::make_shared<const Model>(spec, 1), 1);
            std::vector<float> y(static_cast<std::size_t>(samples * 32));
            double mean[2], worst[2];
            for (bool flush : {true, false}) {
                stream.set_flush_denormals(flush);
                std::vector<double> means, maxima;
                for (int round = 0; round < batches; ++round) {
                    stream.reset();
                    double total = 0.0, slowest = 0.0;
                    for (int t0 = 0; t0 < samples; t0 += chunk) {
                        const auto start = Clock::now();
                        stream.process(&decay[static_cast<std::size_t>(t0)], &y[static_cast<std::size_t>(t0 * 32)], chunk);
                        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
                        total += ns;
                        slowest = std::max(slowest, ns);
                    }
                    means.push_back(total / samples);
                    maxima.push_back(slowest / chunk);
                }
                std::nth_element(means.begin(), means.begin() + batches / 2, means.end());
                std::nth_element(maxima.begin(), maxima.begin() + batches / 2, maxima.end());
                mean[flush] = means[static_cast<std::size_t>(batches / 2)];
                worst[flush] = maxima[static_cast<std::size_t>(batches / 2)];
            }
            const auto subnormals = std::count_if(y.begin(), y.end(), [](float v) { return std::fpclassify(v) == FP_SUBNORMAL; });
            std::printf("%-9s%6s%12.1f%12.1f%12.1f%12.1f%9.2fx%12ld\n", kind_name(kind), bias ? "yes" : "no", mean[1],
                        worst[1], mean[0], worst[0], mean[0] / mean[1], static_cast<long>(subnormals));
        }
    return 0;
}
