// tests/cpp/test_batcher.cpp: a pool's slot calls on other threads while one steps, and a Batcher fed
// by many threads, which gives what each stream stepped alone would, frame by frame in order.
// Threads only; ThreadSanitizer runs these too. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/batcher.hpp"
#include "streamrnn/errors.hpp"
#include "streamrnn/stream.hpp"

#include "random_values.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace streamrnn;
using testing::random_values;

namespace {

std::shared_ptr<const Model> small_lstm()
{
    ModelSpec spec;
    spec.kind = CellKind::lstm;
    spec.input_size = 3;
    spec.hidden_size = 6;
    spec.num_layers = 2;
    return std::make_shared<const Model>(spec, 9);
}

}  // namespace

TEST_CASE("slot calls on other threads wait for a step in progress, and a second stepping thread is refused")
{
    auto model = small_lstm();
    Pool pool(model, 16);
    std::vector<StreamId> stepped(4);
    for (StreamId& id : stepped)
        REQUIRE(pool.open(&id));
    std::atomic<bool> done{false};
    std::atomic<int> refused{0}, opened{0};
    std::thread stepper([&] {
        const std::vector<float> x = random_values(4 * 3, 1);
        std::vector<float> y(4 * 6);
        for (int t = 0; t < 2000 || opened < 50; ++t) {
            const PoolResult result = pool.step(stepped.data(), 4, x.data(), y.data());
            CHECK((result || result.status == PoolStatus::busy));
        }
        done = true;
    });
    std::thread second_stepper([&] {
        const std::vector<float> x = random_values(3, 2);
        std::vector<float> y(6);
        while (!done)
            if (pool.step(stepped.data(), 1, x.data(), y.data()).status == PoolStatus::busy)
                ++refused;
    });
    // Opening, snapshotting and closing streams all the while: each call succeeds, none races.
    std::vector<unsigned char> bytes(pool.snapshot_size());
    std::vector<float> h(pool.h_size()), c(pool.c_size());
    while (!done) {
        StreamId id, copy;
        REQUIRE(pool.open(&id));
        REQUIRE(pool.snapshot(stepped[0], bytes.data(), bytes.size()));
        REQUIRE(pool.restore(bytes.data(), bytes.size(), &copy));
        REQUIRE(pool.get_state(copy, h.data(), c.data()));
        REQUIRE(pool.close(copy));
        REQUIRE(pool.close(id));
        ++opened;
    }
    stepper.join();
    second_stepper.join();
    CHECK(opened >= 50);
    CHECK(pool.size() == 4);
}

TEST_CASE("a batcher fed by many threads gives each stream what stepping it alone gives, in order")
{
    auto model = small_lstm();
    const Index I = 3, H_out = 6, streams = 24, frames = 40;
    Pool pool(model, streams);
    std::vector<StreamId> ids(streams);
    for (StreamId& id : ids)
        REQUIRE(pool.open(&id));
    // Ticket = stream * frames + frame.
    std::vector<float> results(std::size_t(streams * frames * H_out), NAN);
    std::vector<int> statuses(std::size_t(streams * frames), -1);
    std::mutex results_mutex;
    std::vector<Index> batch_sizes;
    {
        Batcher batcher(pool, 8, 0.0005, [&](const Batcher::Result* done, Index n) {
            const std::lock_guard<std::mutex> lock(results_mutex);
            batch_sizes.push_back(n);
            for (Index i = 0; i < n; ++i) {
                statuses[done[i].ticket] = int(done[i].status);
                if (done[i].y)
                    std::copy_n(done[i].y, H_out, &results[done[i].ticket * H_out]);
            }
        });
        std::vector<std::thread> producers;
        for (int p = 0; p < 6; ++p)
            producers.emplace_back([&, p] {
                // Each producer owns 4 streams and submits their frames interleaved.
                for (Index f = 0; f < frames; ++f)
                    for (Index s = p * 4; s < p * 4 + 4; ++s) {
                        const std::vector<float> x = random_values(std::size_t(I), unsigned(s * frames + f));
                        CHECK(batcher.submit(ids[std::size_t(s)], x.data(), std::uint64_t(s * frames + f)));
                    }
            });
        for (std::thread& producer : producers)
            producer.join();
        batcher.close();
        CHECK(batcher.pending() == 0);
        CHECK(batcher.frames() == std::uint64_t(streams * frames));
        CHECK(!batcher.submit(ids[0], results.data(), 0));
    }
    double worst = 0.0;
    for (Index s = 0; s < streams; ++s) {
        Stream alone(model, 1);
        for (Index f = 0; f < frames; ++f) {
            const std::vector<float> x = random_values(std::size_t(I), unsigned(s * frames + f));
            std::vector<float> y(static_cast<std::size_t>(H_out));
            alone.step(x.data(), y.data());
            CHECK(statuses[std::size_t(s * frames + f)] == int(PoolStatus::ok));
            for (Index k = 0; k < H_out; ++k) {
                const double d = std::abs(double(y[std::size_t(k)]) - results[std::size_t((s * frames + f) * H_out + k)]);
                worst = d <= worst ? worst : d;
            }
        }
    }
    CHECK(worst <= 2e-6);
    for (Index n : batch_sizes)
        CHECK(n <= 8);
}

TEST_CASE("a batcher fails the frames of a closed stream only, and checks its arguments")
{
    auto model = small_lstm();
    Pool pool(model, 4);
    StreamId a, b;
    REQUIRE(pool.open(&a));
    REQUIRE(pool.open(&b));
    REQUIRE(pool.close(b));
    std::map<std::uint64_t, PoolStatus> statuses;
    std::mutex mutex;
    {
        Batcher batcher(pool, 4, 0.01, [&](const Batcher::Result* done, Index n) {
            const std::lock_guard<std::mutex> lock(mutex);
            for (Index i = 0; i < n; ++i)
                statuses[done[i].ticket] = done[i].status;
        });
        const std::vector<float> x(3, 0.5f);
        CHECK(batcher.submit(a, x.data(), 1));
        CHECK(batcher.submit(b, x.data(), 2));
        CHECK(batcher.submit(a, x.data(), 3));
    }
    CHECK(statuses.at(1) == PoolStatus::ok);
    CHECK(statuses.at(2) == PoolStatus::unknown_id);
    CHECK(statuses.at(3) == PoolStatus::ok);
    auto nothing = [](const Batcher::Result*, Index) {};
    CHECK_THROWS_AS(Batcher(pool, 0, 0.001, nothing), ArgumentError);
    CHECK_THROWS_AS(Batcher(pool, 5, 0.001, nothing), ArgumentError);
    CHECK_THROWS_AS(Batcher(pool, 2, -1.0, nothing), ArgumentError);
}

TEST_CASE("a batcher may be closed, and destroyed, from its own delivery")
{
    auto model = small_lstm();
    Pool pool(model, 4);
    StreamId a;
    REQUIRE(pool.open(&a));
    const std::vector<float> x(3, 0.25f);
    std::atomic<int> delivered{0};
    {
        Batcher* closing = nullptr;
        Batcher batcher(pool, 1, 0.0, [&](const Batcher::Result*, Index n) {
            delivered += int(n);
            closing->close();  // returns at once; the frames pending still get stepped
        });
        closing = &batcher;
        for (std::uint64_t t = 0; t < 3; ++t)
            batcher.submit(a, x.data(), t);
    }  // joins
    CHECK(delivered >= 1);
    CHECK(delivered <= 3);

    std::atomic<bool> destroyed{false};
    auto* owned = new Batcher(pool, 1, 0.0, [&](const Batcher::Result*, Index) {});
    Batcher* destroying = nullptr;
    destroying = new Batcher(pool, 1, 0.0, [&](const Batcher::Result*, Index) {
        // Nothing of this test's is touched after the exchange, which lets it end.
        Batcher* const self = destroying;
        if (!destroyed.exchange(true))
            delete self;  // its thread deletes what is left once this returns
    });
    destroying->submit(a, x.data(), 1);
    while (!destroyed)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    delete owned;
}
