// bench/cpp/bench_step.cpp: Stream::step and Stream::process timed in C++, with their heap allocations counted.
// Part of streamrnn, MIT licence.
//
// What the engine costs without Python: ns per step (median of many timed batches of steps),
// the real-time factor at 48 kHz for block streaming of a 1-feature sample stream, and the
// number of heap allocations during the timed calls (must be 0). Run: build with
// -DSTREAMRNN_BENCH=ON, then ./bench_step [--quick].
#include "streamrnn/stream.hpp"

#include "count_allocations.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

using namespace streamrnn;
using Clock = std::chrono::steady_clock;

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

ModelSpec spec_of(CellKind kind, int input, int hidden, int layers)
{
    ModelSpec spec;
    spec.kind = kind;
    spec.input_size = input;
    spec.hidden_size = hidden;
    spec.num_layers = layers;
    return spec;
}

}  // namespace

int main(int argc, char** argv)
{
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const int batches = quick ? 5 : 31;
    const CellKind kinds[] = {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh};

    std::printf("Stream::step, batch 1, I = H: ns per step (median of %d batches), heap allocations while timed\n",
                batches);
    std::printf("%-9s%3s%6s%12s%9s\n", "model", "L", "H", "ns/step", "allocs");
    for (CellKind kind : kinds)
        for (int layers : {1, 2})
            for (int hidden : {16, 32, 64, 128, 512}) {
                Stream stream(std::make_shared<const Model>(spec_of(kind, hidden, hidden, layers), 1), 1);
                std::vector<float> x(static_cast<std::size_t>(hidden), 0.1f), y(static_cast<std::size_t>(hidden));
                const int calls = std::max(20, 2000000 / (hidden * hidden * layers * 4));
                stream.step(x.data(), y.data());
                long allocated = 0;
                const double ns = median_ns(batches, calls, allocated, [&] { stream.step(x.data(), y.data()); });
                std::printf("%-9s%3d%6d%12.1f%9ld\n", kind_name(kind), layers, hidden, ns, allocated);
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
    return 0;
}
