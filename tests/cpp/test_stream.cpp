// tests/cpp/test_stream.cpp: a Stream, stepped in any chunking, equals the whole-sequence forward,
// and step / process / reset allocate nothing. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/errors.hpp"
#include "streamrnn/stream.hpp"

#include "count_allocations.hpp"
#include "random_values.hpp"
#include "seq_view.hpp"

#include <cmath>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

using namespace streamrnn;

namespace {

std::vector<ModelSpec> stream_specs()
{
    std::vector<ModelSpec> specs;
    for (CellKind kind : {CellKind::rnn_tanh, CellKind::rnn_relu, CellKind::lstm, CellKind::gru}) {
        ModelSpec spec;
        spec.kind = kind;
        spec.input_size = 5;
        spec.hidden_size = 7;
        spec.num_layers = 2;
        specs.push_back(spec);
    }
    specs[2].proj_size = 5;  // LSTM with projection: layer 1 input 5 = output 5, so residual applies at 0 too
    specs[2].residual = true;
    specs[3].reset_after = false;
    specs[3].batch_first = true;
    return specs;
}

using testing::random_values;

}  // namespace

TEST_CASE("a stream fed in chunks of every size gives the whole-sequence outputs and state")
{
    const Index T = 150, B = 3;  // T past Stream::block_steps, so process runs several blocks
    for (const ModelSpec& spec : stream_specs()) {
        CAPTURE(kind_name(spec.kind));
        auto model = std::make_shared<const Model>(spec, 7);
        const Index I = spec.input_size, H_out = spec.output_size();
        const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * I), 1);
        std::vector<float> y(static_cast<std::size_t>(T * B * H_out));
        std::vector<float> h(static_cast<std::size_t>(spec.num_layers * B * H_out), 0.0f);
        std::vector<float> c(static_cast<std::size_t>(spec.num_layers * B * spec.hidden_size), 0.0f);
        model->forward(x.data(), T, B, nullptr, y.data(), h.data(), spec.has_cell_state() ? c.data() : nullptr);

        for (Index chunk : {Index(1), Index(13), Index(64), Index(150)}) {
            CAPTURE(chunk);
            Stream stream(model, B);
            std::vector<float> streamed(y.size());
            for (Index t0 = 0; t0 < T; t0 += chunk) {
                const Index steps = std::min(chunk, T - t0);
                // A chunk is its own (steps, B, I) or (B, steps, I) array, as a caller hands it over.
                std::vector<float> x_chunk(static_cast<std::size_t>(steps * B * I));
                std::vector<float> y_chunk(static_cast<std::size_t>(steps * B * H_out));
                const auto x_all = ConstSeqView::of(x.data(), T, B, I, I, spec.batch_first);
                const auto x_part = SeqView::of(x_chunk.data(), steps, B, I, I, spec.batch_first);
                for (Index t = 0; t < steps; ++t)
                    for (Index b = 0; b < B; ++b)
                        std::copy(x_all.row(t0 + t, b), x_all.row(t0 + t, b) + I, x_part.row(t, b));
                if (steps == 1 && !spec.batch_first)
                    stream.step(x_chunk.data(), y_chunk.data());
                else
                    stream.process(x_chunk.data(), y_chunk.data(), steps);
                const auto y_all = SeqView::of(streamed.data(), T, B, H_out, H_out, spec.batch_first);
                const auto y_part = ConstSeqView::of(y_chunk.data(), steps, B, H_out, H_out, spec.batch_first);
                for (Index t = 0; t < steps; ++t)
                    for (Index b = 0; b < B; ++b)
                        std::copy(y_part.row(t, b), y_part.row(t, b) + H_out, y_all.row(t0 + t, b));
            }
            float worst = 0.0f;
            for (std::size_t i = 0; i < y.size(); ++i)
                worst = std::max(worst, std::abs(y[i] - streamed[i]));
            std::vector<float> h_stream(stream.h_size());
            REQUIRE(stream.get_state(h_stream.data(), nullptr));
            for (std::size_t i = 0; i < h.size(); ++i)
                worst = std::max(worst, std::abs(h[i] - h_stream[i]));
            CHECK(worst <= 1e-5f);
        }
    }
}

TEST_CASE("reset(i) zeros stream i and leaves the others bit for bit")
{
    ModelSpec spec;
    spec.kind = CellKind::lstm;
    spec.input_size = 3;
    spec.hidden_size = 4;
    spec.num_layers = 2;
    Stream stream(std::make_shared<const Model>(spec, 3), 3);
    const std::vector<float> x = random_values(9, 2);
    std::vector<float> y(12);
    stream.step(x.data(), y.data());
    std::vector<float> h_before(stream.h_size()), h_after(stream.h_size());
    stream.get_state(h_before.data(), nullptr);
    stream.reset(1);
    stream.get_state(h_after.data(), nullptr);
    for (Index layer = 0; layer < 2; ++layer)
        for (Index b = 0; b < 3; ++b)
            for (Index k = 0; k < 4; ++k) {
                const auto i = static_cast<std::size_t>((layer * 3 + b) * 4 + k);
                if (b == 1)
                    CHECK(h_after[i] == 0.0f);
                else
                    CHECK(h_after[i] == h_before[i]);
            }
}

TEST_CASE("step, process and reset allocate nothing once the stream exists")
{
    // Sizes where Eigen's own matrix products would take their packing space from the heap
    // (B = 8), and a small model of one stream, which keeps transposed weights (B = 1).
    for (const auto& [hidden, batch] : {std::pair<int, Index>{160, 8}, std::pair<int, Index>{32, 1}})
    for (ModelSpec spec : stream_specs()) {
        // A copy: CAPTURE's lambda cannot capture a structured binding before C++20 (clang rejects it).
        const Index B = batch;
        CAPTURE(kind_name(spec.kind));
        CAPTURE(B);
        spec.hidden_size = hidden;
        if (spec.proj_size)
            spec.proj_size = hidden / 2;
        const Index T = 100;
        Stream stream(std::make_shared<const Model>(spec, 1), B);
        const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * spec.input_size), 3);
        std::vector<float> y(static_cast<std::size_t>(T * B * spec.output_size()));
        const long before = testing::allocation_count();
        for (int i = 0; i < 10; ++i)
            stream.step(x.data(), y.data());
        stream.process(x.data(), y.data(), T);
        stream.reset(B - 1);
        stream.reset();
        CHECK(testing::allocation_count() == before);
    }
}

TEST_CASE("a bidirectional model or an empty batch cannot stream")
{
    ModelSpec spec;
    spec.kind = CellKind::gru;
    spec.input_size = 2;
    spec.hidden_size = 3;
    auto model = std::make_shared<const Model>(spec, 1);
    CHECK_THROWS_AS(Stream(model, 0), streamrnn::ArgumentError);
    spec.bidirectional = true;
    CHECK_THROWS_AS(Stream(std::make_shared<const Model>(spec, 1), 1), streamrnn::ArgumentError);
}

// Only a 32-bit host (armhf) can reach these sizes: the engine's caps keep every product of
// sizes far inside a 64-bit Index, where such calls would instead try to allocate terabytes.
TEST_CASE("on a 32-bit host, buffers of more floats than Index counts throw instead of wrapping around" *
          doctest::skip(sizeof(Index) > 4))
{
    SUBCASE("the record of a long training sequence: T * B * G")
    {
        // LSTM gates: T x 4H = (2^18 + 1) x 2^14 floats, 2^32 + 2^14, which wraps around to 2^14.
        // (A forward keeps a chunk of steps' gates, not all T: it would run, for minutes under
        // qemu.)
        ModelSpec spec;
        spec.kind = CellKind::lstm;
        spec.input_size = 1;
        spec.hidden_size = 1 << 12;
        spec.proj_size = 1;
        Model model(spec, 1);
        const Index T = (Index(1) << 18) + 1;
        std::vector<float> x(static_cast<std::size_t>(T), 0.5f), y(x.size());
        std::vector<float> h(1), c(static_cast<std::size_t>(spec.hidden_size));
        CHECK_THROWS_AS(model.forward_train(x.data(), T, 1, nullptr, y.data(), h.data(), c.data()), std::length_error);
    }
    SUBCASE("a wide stream: batch * G")
    {
        ModelSpec spec;
        spec.kind = CellKind::gru;
        spec.input_size = 1;
        spec.hidden_size = 1 << 8;
        CHECK_THROWS_AS(Stream(std::make_shared<const Model>(spec, 1), Index(1) << 24), std::length_error);
    }
    SUBCASE("weights: W_ih of an LSTM with I = H = 2^16 is 2^18 x 2^16 floats")
    {
        ModelSpec spec;
        spec.kind = CellKind::lstm;
        spec.input_size = 1 << 16;
        spec.hidden_size = 1 << 16;
        CHECK_THROWS_AS(Model{spec}, std::length_error);
    }
}
