// bench/cpp/bench_audio_models.cpp: whole audio models through the C API, a sample at a time, against
// their recurrent part alone. Part of streamrnn, MIT licence.
//
// Two models of the audio projects' kind: Neural Amp Modeler's LSTM (1 -> 16 hidden, 1 layer, a
// Linear head) and RTNeural's typical Dense(8, tanh) -> LSTM(8) -> Dense(1). Each is saved as a
// model file, loaded with streamrnn_model_load_buffer and stepped with streamrnn_stream_step one
// sample at a time (batch 1), and so is its recurrent layer alone: ns per sample (median of many
// timed batches), the ratio (the head and dense layers' cost: target <= 1.15), the real-time factor
// at 48 kHz, and the heap allocations while timed (must be 0). Then process() in blocks of 32 to
// 512 samples. Run: build with -DSTREAMRNN_BENCH=ON, then ./bench_audio_models [--quick].
#include "streamrnn/model_file.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/streamrnn.h"

#include "count_allocations.hpp"
#include "spec_of.hpp"

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
/// the heap allocations made by the calls.
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

/// A C API stream of one row over the model file `bytes`, freed at the end of the scope.
class CStream {
public:
    explicit CStream(const std::vector<std::uint8_t>& bytes)
    {
        if (streamrnn_model_load_buffer(bytes.data(), bytes.size(), &model_) != STREAMRNN_OK ||
            streamrnn_model_sizes(model_, &sizes_) != STREAMRNN_OK ||
            streamrnn_stream_create(model_, 1, &stream_) != STREAMRNN_OK) {
            std::fprintf(stderr, "bench_audio_models: %s\n", streamrnn_last_error());
            std::exit(1);
        }
    }
    ~CStream()
    {
        streamrnn_stream_free(stream_);
        streamrnn_model_free(model_);
    }
    CStream(const CStream&) = delete;
    CStream& operator=(const CStream&) = delete;

    std::size_t input_size() const { return sizes_.input_size; }
    std::size_t output_size() const { return sizes_.output_size; }
    void step(const float* x, float* y) { streamrnn_stream_step(stream_, x, sizes_.input_size, y, sizes_.output_size); }
    void process(std::size_t steps, const float* x, float* y)
    {
        streamrnn_stream_process(stream_, steps, x, steps * sizes_.input_size, y, steps * sizes_.output_size);
    }

private:
    streamrnn_model* model_ = nullptr;
    streamrnn_stream* stream_ = nullptr;
    streamrnn_sizes sizes_{};
};

struct Case {
    const char* name;
    std::vector<std::uint8_t> whole;      ///< the model file of the whole model
    std::vector<std::uint8_t> recurrent;  ///< of its recurrent layer alone
};

std::vector<Case> cases()
{
    using testing::spec_of;
    // NAM's LSTM: 1 -> 16, one layer, head Linear(16, 1); its initial state is part of the file.
    auto nam_lstm = std::make_shared<Model>(spec_of(CellKind::lstm, 1, 16, 1), 1);
    const std::vector<float> h0(16, 0.1f), c0(16, -0.1f);
    nam_lstm->set_initial_state(h0.data(), c0.data());
    const Sequential nam(std::vector<Block>{Block::of(nam_lstm), Block::of(std::make_shared<Linear>(16, 1, true, 2))});
    // RTNeural's Dense(8, tanh) -> LSTM(8) -> Dense(1).
    auto rt_lstm = std::make_shared<Model>(spec_of(CellKind::lstm, 8, 8, 1), 3);
    const Sequential rtneural(std::vector<Block>{Block::of(std::make_shared<Linear>(1, 8, true, 4)),
                                                 Block::of(ActivationFunction{Activation::tanh}), Block::of(rt_lstm),
                                                 Block::of(std::make_shared<Linear>(8, 1, true, 5))});
    return {{"NAM LSTM 1-16 + Linear(16, 1)", save_sequential_bytes(nam, {}), save_model_bytes(*nam_lstm)},
            {"RTNeural Dense(8) tanh LSTM(8) Dense(1)", save_sequential_bytes(rtneural, {}),
             save_model_bytes(*rt_lstm)}};
}

}  // namespace

int main(int argc, char** argv)
{
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const int batches = quick ? 5 : 31, calls = 20000;
    std::printf("The C API's streamrnn_stream_step, batch 1, a sample per call: ns per sample (median of %d\n"
                "batches of %d), the whole model against its recurrent layer alone, and heap allocations while timed\n",
                batches, calls);
    std::printf("%-42s%12s%14s%10s%12s%9s\n", "model", "whole ns", "recurrent ns", "ratio", "RTF 48 kHz",
                "allocs");
    const std::vector<Case> all = cases();
    for (const Case& c : all) {
        CStream whole(c.whole), recurrent(c.recurrent);
        std::vector<float> x(std::max(whole.input_size(), recurrent.input_size()), 0.25f), y(16);
        long whole_allocated = 0, recurrent_allocated = 0;
        float sample = 0.0f;
        const double whole_ns = median_ns(batches, calls, whole_allocated, [&] {
            x[0] = sample = sample > 0.5f ? -0.5f : sample + 0.001f;  // a changing input, as audio
            whole.step(x.data(), y.data());
        });
        const double recurrent_ns = median_ns(batches, calls, recurrent_allocated, [&] {
            x[0] = sample = sample > 0.5f ? -0.5f : sample + 0.001f;
            recurrent.step(x.data(), y.data());
        });
        std::printf("%-42s%12.1f%14.1f%9.2fx%12.4f%9ld\n", c.name, whole_ns, recurrent_ns, whole_ns / recurrent_ns,
                    whole_ns * 48e3 * 1e-9, whole_allocated + recurrent_allocated);
    }
    std::printf("\nThe whole model's streamrnn_stream_process in blocks: ns per sample, real-time factor at 48 kHz\n");
    std::printf("%-42s%8s%12s%12s\n", "model", "block", "ns/sample", "RTF 48 kHz");
    for (const Case& c : all) {
        CStream whole(c.whole);
        for (std::size_t block : {32, 64, 128, 256, 512}) {
            std::vector<float> x(block * whole.input_size(), 0.25f), y(block * whole.output_size());
            for (std::size_t i = 0; i < block; ++i)
                x[i * whole.input_size()] = 0.5f * static_cast<float>(i % 97) / 97.0f;
            long allocated = 0;
            const double ns = median_ns(batches, std::max(1, calls / static_cast<int>(block)), allocated,
                                        [&] { whole.process(block, x.data(), y.data()); }) /
                              static_cast<double>(block);
            std::printf("%-42s%8zu%12.1f%12.4f%s\n", c.name, block, ns, ns * 48e3 * 1e-9,
                        allocated ? "  (allocated!)" : "");
        }
    }
    return 0;
}
