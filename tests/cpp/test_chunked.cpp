// tests/cpp/test_chunked.cpp: the chunked forward of a bidirectional model: one chunk is the plain
// forward, chunks with a look-ahead reach fewer steps of the reverse direction, bad chunkings are
// refused; a chunked stream gives the chunked forward without allocating; threads split the batch
// alike. (tests/test_chunked.py checks the chunks against PyTorch.) Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/chunked.hpp"
#include "streamrnn/errors.hpp"

#include "count_allocations.hpp"
#include "random_values.hpp"
#include "spec_of.hpp"

#include <memory>

#include <vector>

using namespace streamrnn;
using testing::random_values;

TEST_CASE("a bidirectional model in one chunk is its plain forward; in chunks, only the reverse direction changes")
{
    ModelSpec spec = testing::spec_of(CellKind::lstm, 3, 4, 1);
    spec.bidirectional = true;
    const Model model(spec, 5);
    const Index T = 9, B = 2, Y = 8;
    const std::vector<float> x = random_values(std::size_t(T * B * 3), 2);
    std::vector<float> y(std::size_t(T * B * Y)), y_one(y.size()), h(2 * B * 4, 0.0f), c(h.size(), 0.0f);
    std::vector<float> h_one(h), c_one(c);
    model.forward(x.data(), T, B, nullptr, y.data(), h.data(), c.data());
    forward_chunked(model, x.data(), T, B, nullptr, {T, 2}, y_one.data(), h_one.data(), c_one.data());
    CHECK(y_one == y);
    CHECK(h_one == h);

    std::vector<float> y_chunks(y.size()), h_chunks(2 * B * 4, 0.0f), c_chunks(h_chunks.size(), 0.0f);
    forward_chunked(model, x.data(), T, B, nullptr, {2, 1}, y_chunks.data(), h_chunks.data(), c_chunks.data());
    // One layer: the forward direction's outputs and final state are the plain forward's.
    bool reverse_differs = false;
    for (Index t = 0; t < T; ++t)
        for (Index b = 0; b < B; ++b)
            for (Index k = 0; k < Y; ++k) {
                const std::size_t i = std::size_t((t * B + b) * Y + k);
                if (k < 4)
                    CHECK(y_chunks[i] == doctest::Approx(y[i]).epsilon(1e-6));
                else
                    reverse_differs = reverse_differs || y_chunks[i] != y[i];
            }
    CHECK(reverse_differs);
    for (Index i = 0; i < B * 4; ++i)
        CHECK(h_chunks[std::size_t(i)] == doctest::Approx(h[std::size_t(i)]).epsilon(1e-6));

    CHECK_THROWS_AS(forward_chunked(model, x.data(), T, B, nullptr, {0, 1}, y.data(), h.data(), c.data()),
                    ArgumentError);
    CHECK_THROWS_AS(forward_chunked(model, x.data(), T, B, nullptr, {2, -1}, y.data(), h.data(), c.data()),
                    ArgumentError);
    const std::int64_t too_long[] = {3, 10};
    CHECK_THROWS_AS(forward_chunked(model, x.data(), T, B, too_long, {2, 1}, y.data(), h.data(), c.data()),
                    ArgumentError);
}

TEST_CASE("a chunked stream fed step by step gives the chunked forward, and allocates nothing")
{
    ModelSpec spec = testing::spec_of(CellKind::gru, 3, 5, 2);
    spec.bidirectional = true;
    auto model = std::make_shared<const Model>(spec, 7);
    const Index T = 13, B = 2, Y = 10;
    const std::vector<float> x = random_values(std::size_t(T * B * 3), 3);
    std::vector<float> y(std::size_t(T * B * Y)), h(4 * B * 5, 0.0f);
    forward_chunked(*model, x.data(), T, B, nullptr, {3, 2}, y.data(), h.data(), nullptr);

    ChunkedStream stream(model, B, {3, 2});
    std::vector<float> streamed(y.size());
    Index done = 0;
    const long allocations = testing::allocation_count();
    for (Index t = 0; t < T; ++t) {
        CHECK(stream.completed_by(1) == (t + 1 < 5 ? 0 : ((t + 1 - 2) / 3 * 3)) - done);
        done += stream.process(x.data() + t * B * 3, 1, streamed.data() + done * B * Y);
    }
    CHECK(done == 9);
    CHECK(stream.pending() == 4);
    done += stream.flush(streamed.data() + done * B * Y);
    CHECK(testing::allocation_count() == allocations);
    CHECK(done == T);
    CHECK(stream.pending() == 0);
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(streamed[i] == doctest::Approx(y[i]).epsilon(1e-5));
    CHECK_THROWS_AS(ChunkedStream(model, 0, {3, 2}), ArgumentError);
    CHECK_THROWS_AS(ChunkedStream(model, 1, {0, 2}), ArgumentError);
}

TEST_CASE("the chunked forward split across threads by rows gives one thread's")
{
    ModelSpec spec = testing::spec_of(CellKind::lstm, 3, 4, 2);
    spec.bidirectional = true;
    const Model model(spec, 9);
    const Index T = 40, Y = 8, cells = 4;
    for (const Index B : {Index(2), Index(5)}) {  // windows in groups (B <= 2), and one at a time
        INFO("B = " << B);
        const std::vector<float> x = random_values(std::size_t(T * B * 3), 4);
        const std::vector<std::int64_t> lengths = {40, 7, 0, 33, 21};
        std::vector<float> y(std::size_t(T * B * Y)), h(std::size_t(cells * B * 4), 0.0f), c(h);
        std::vector<float> y_split(y.size()), h_split(h), c_split(c);
        forward_chunked(model, x.data(), T, B, lengths.data(), {2, 3}, y.data(), h.data(), c.data(), 1);
        forward_chunked(model, x.data(), T, B, lengths.data(), {2, 3}, y_split.data(), h_split.data(),
                        c_split.data(), 2);
        for (std::size_t i = 0; i < y.size(); ++i)
            CHECK(y_split[i] == doctest::Approx(y[i]).epsilon(1e-5));
        for (std::size_t i = 0; i < h.size(); ++i) {
            CHECK(h_split[i] == doctest::Approx(h[i]).epsilon(1e-5));
            CHECK(c_split[i] == doctest::Approx(c[i]).epsilon(1e-5));
        }
    }
}
