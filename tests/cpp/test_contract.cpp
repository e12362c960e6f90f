// tests/cpp/test_contract.cpp: the threading contract (README, "Threads"): weights published whole
// while streams step and calls run, and what one call at a time uses refusing a second. CI runs it
// under ThreadSanitizer. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/optim.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/stream.hpp"
#include "streamrnn/streamrnn.h"

#include "count_allocations.hpp"
#include "model_access.hpp"
#include "random_values.hpp"
#include "spec_of.hpp"

#include <atomic>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace streamrnn;
using testing::random_values;
using testing::spec_of;

namespace {

/// y of one step from a zero state, for a stream of `batch` rows of `model` fed x.
std::vector<float> one_step(const std::shared_ptr<const Model>& model, Index batch, const std::vector<float>& x)
{
    Stream stream(model, batch);
    std::vector<float> y(static_cast<std::size_t>(batch * model->spec().output_size()));
    REQUIRE(stream.step(x.data(), y.data()));
    return y;
}

/// Two versions of weights for `model`, and what a step gives with each.
struct TwoVersions {
    std::vector<float> a, b, y_a, y_b;
};

TwoVersions two_versions(const std::shared_ptr<Model>& model, Index batch, const std::vector<float>& x)
{
    TwoVersions v{random_values(model->parameter_count(), 1), random_values(model->parameter_count(), 2), {}, {}};
    for (float& w : v.a)
        w *= 0.3f;
    for (float& w : v.b)
        w *= 0.3f;
    model->set_parameters(v.a.data());
    v.y_a = one_step(model, batch, x);
    model->set_parameters(v.b.data());
    v.y_b = one_step(model, batch, x);
    REQUIRE(v.y_a != v.y_b);
    return v;
}

std::string message_of(const std::exception& error) { return error.what(); }

}  // namespace

TEST_CASE("weights published while streams step are seen whole, and the stepping thread allocates, frees and locks "
          "nothing")
{
    for (Index batch : {Index(1), Index(3)})
        for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh}) {
            CAPTURE(batch);
            CAPTURE(kind_name(kind));
            auto model = std::make_shared<Model>(spec_of(kind, 8, 48, 3), 0);  // small: the transposed copies
            const std::vector<float> x = random_values(static_cast<std::size_t>(batch * 8), 3);
            const TwoVersions v = two_versions(model, batch, x);
            Stream stream(model, batch);
            std::atomic<bool> done{false};
            std::atomic<long> stepped_so_far{0};
            // Writes until the stream has stepped among them a good while, however the threads
            // are scheduled.
            std::thread writer([&] {
                for (int i = 0; i < 400 || stepped_so_far < 200; ++i)
                    model->set_parameters(i % 2 ? v.a.data() : v.b.data());
                done = true;
            });
            std::vector<float> y(v.y_a.size());
            long torn = 0, steps = 0, heap = 0, freed = 0, locked = 0;
            while (!done) {
                const long allocations = testing::thread_allocation_count(), frees = testing::thread_free_count(),
                           locks = testing::thread_lock_count();
                const bool reset = stream.reset(), stepped = stream.step(x.data(), y.data());
                heap += testing::thread_allocation_count() - allocations;
                freed += testing::thread_free_count() - frees;
                locked += testing::thread_lock_count() - locks;
                REQUIRE(reset);
                REQUIRE(stepped);
                torn += y != v.y_a && y != v.y_b;
                stepped_so_far = ++steps;
            }
            writer.join();
            CHECK(steps > 0);
            CHECK(torn == 0);
            // What the writer allocates, frees (the versions let go) and locks is on its thread.
            CHECK(heap == 0);
            CHECK(freed == 0);
            CHECK(locked == 0);
        }
}

TEST_CASE("whole-sequence forwards on several threads while the weights change see one version each")
{
    auto model = std::make_shared<Model>(spec_of(CellKind::lstm, 6, 40, 2), 0);
    const Index T = 30, B = 4;
    const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * 6), 5);
    std::vector<float> a = random_values(model->parameter_count(), 6), b = random_values(model->parameter_count(), 7);
    auto forward = [&](std::vector<float>& y) {
        std::vector<float> h(static_cast<std::size_t>(2 * B * 40), 0.0f), c(h.size(), 0.0f);
        model->forward(x.data(), T, B, nullptr, y.data(), h.data(), c.data());
    };
    std::vector<float> y_a(static_cast<std::size_t>(T * B * 40)), y_b(y_a.size());
    model->set_parameters(a.data());
    forward(y_a);
    model->set_parameters(b.data());
    forward(y_b);
    std::atomic<bool> done{false};
    std::atomic<long> torn{0}, calls{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            std::vector<float> y(y_a.size());
            while (!done) {
                forward(y);
                torn += y != y_a && y != y_b;
                ++calls;
            }
        });
    for (int i = 0; i < 200 || calls < 20; ++i)
        model->set_parameters(i % 2 ? a.data() : b.data());
    done = true;
    for (std::thread& reader : readers)
        reader.join();
    CHECK(calls > 0);
    CHECK(torn == 0);
}

namespace {

/// Two threads step one stream (a Stream or a SequentialStream, of `make()`): the overlapping calls
/// are refused, and the state is that of as many whole steps as ran, every one of them whole.
template <typename Make>
void check_overlapping_steps(Make make, Index inputs, Index outputs)
{
    const Index B = 2;
    const std::vector<float> x = random_values(static_cast<std::size_t>(B * inputs), 1);
    auto stream = make(B);
    std::atomic<long> done_steps{0}, refused{0};
    auto loop = [&] {
        std::vector<float> y(static_cast<std::size_t>(B * outputs));
        for (int i = 0; i < 2000; ++i) {
            if (stream.step(x.data(), y.data()))
                ++done_steps;
            else
                ++refused;
        }
    };
    std::thread other(loop);
    loop();
    other.join();
    auto reference = make(B);
    std::vector<float> y(static_cast<std::size_t>(B * outputs));
    for (long i = 0; i < done_steps; ++i)
        reference.step(x.data(), y.data());
    std::vector<float> h(stream.h_size()), h_reference(reference.h_size());
    stream.get_state(h.data(), nullptr);
    reference.get_state(h_reference.data(), nullptr);
    CHECK(h == h_reference);
    CHECK(done_steps + refused == 4000);
    MESSAGE("refused " << refused << " of 4000 overlapping steps");
}

}  // namespace

TEST_CASE("a stream stepped by two threads refuses the overlapping call and keeps its state whole")
{
    auto model = std::make_shared<const Model>(spec_of(CellKind::gru, 4, 96, 2), 0);
    check_overlapping_steps([&](Index B) { return Stream(model, B); }, 4, 96);
}

TEST_CASE("a whole model's stream stepped by two threads refuses the overlapping call and keeps its state whole")
{
    auto whole = std::make_shared<const Sequential>(std::vector<Block>{
        Block::of(std::make_shared<Linear>(4, 8, true, 1)), Block::of(ActivationFunction{Activation::tanh}),
        Block::of(std::make_shared<Model>(spec_of(CellKind::lstm, 8, 32, 2), 2)),
        Block::of(std::make_shared<Linear>(32, 3, true, 3))});
    check_overlapping_steps([&](Index B) { return SequentialStream(whole, B); }, 4, 3);
}

TEST_CASE("an initial state set while a stream resets and steps: every reset starts from one whole version")
{
    auto model = std::make_shared<Model>(spec_of(CellKind::lstm, 2, 16, 2), 0);
    const std::vector<float> a(2 * 16 * 2, 0.25f), b(2 * 16 * 2, -0.5f);  // h0 then c0, twice the L x H floats
    model->set_initial_state(a.data(), a.data() + 32);
    Stream stream(model, 1);
    std::atomic<bool> done{false};
    std::atomic<long> resets{0};
    long torn = 0;
    std::thread resetting([&] {
        std::vector<float> h(stream.h_size()), c(stream.c_size()), x(2, 0.1f), y(16);
        while (!done || resets < 20) {
            stream.reset();
            stream.get_state(h.data(), c.data());
            const bool from_a = h[0] == 0.25f;
            for (std::size_t k = 0; k < h.size(); ++k)
                torn += h[k] != (from_a ? 0.25f : -0.5f) || c[k] != (from_a ? 0.25f : -0.5f);
            stream.step(x.data(), y.data());
            ++resets;
        }
    });
    for (int i = 0; i < 200 || resets < 20; ++i) {
        const std::vector<float>& next = i % 2 ? a : b;
        model->set_initial_state(next.data(), next.data() + 32);
    }
    done = true;
    resetting.join();
    CHECK(torn == 0);
}

TEST_CASE("the training record is for one call at a time: a second is refused naming both")
{
    Model model(spec_of(CellKind::lstm, 3, 4, 1), 0);
    const Index T = 4, B = 2;
    const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * 3), 1);
    std::vector<float> y(static_cast<std::size_t>(T * B * 4)), h(static_cast<std::size_t>(B * 4)), c(h.size());
    model.forward_train(x.data(), T, B, nullptr, y.data(), h.data(), c.data());
    std::vector<float> dx(x.size()), dh0(h.size()), dc0(c.size());
    // Another call holds the record: what a backward on a second thread meets.
    Exclusive& record = ModelAccess::record_use(model);
    REQUIRE(record.try_take("forward(train=True)"));
    try {
        model.backward(y.data(), nullptr, nullptr, dx.data(), dh0.data(), dc0.data());
        FAIL("backward ran while another call held the record");
    } catch (const ConcurrencyError& error) {
        CHECK(message_of(error).find("backward") != std::string::npos);
        CHECK(message_of(error).find("forward(train=True)") != std::string::npos);
    }
    CHECK_THROWS_AS(model.forward_train(x.data(), T, B, nullptr, y.data(), h.data(), c.data()), ConcurrencyError);
    // Its sizes too: a backward reads them first, and a training forward running has none yet.
    CHECK_THROWS_AS(model.recorded_steps("backward"), ConcurrencyError);
    CHECK_THROWS_AS(model.recorded_batch("backward"), ConcurrencyError);
    record.release();
    model.backward(y.data(), nullptr, nullptr, dx.data(), dh0.data(), dc0.data());
}

TEST_CASE("the gradients are for one call at a time: zero_grad, backward and optimizer steps refuse a second")
{
    Model model(spec_of(CellKind::gru, 3, 4, 1), 0);
    const Index T = 3, B = 2;
    const std::vector<float> x = random_values(static_cast<std::size_t>(T * B * 3), 1);
    std::vector<float> y(static_cast<std::size_t>(T * B * 4)), h(static_cast<std::size_t>(B * 4));
    model.forward_train(x.data(), T, B, nullptr, y.data(), h.data(), nullptr);
    std::vector<float> dx(x.size()), dh0(h.size());
    SGD sgd({0.1});
    {
        Trainable::GradientLease held = model.lease_gradients("backward");
        for (const char* expected : {"zero_grad", "optimizer step", "clip_grad_norm"}) {
            CAPTURE(expected);
            try {
                if (std::string(expected) == "zero_grad")
                    model.zero_grad();
                else if (std::string(expected) == "optimizer step")
                    sgd.step(Modules{&model});
                else
                    clip_grad_norm(Modules{&model}, 1.0);
                FAIL("the call ran while the gradients were held");
            } catch (const ConcurrencyError& error) {
                CHECK(message_of(error).find(expected) != std::string::npos);
                CHECK(message_of(error).find("backward") != std::string::npos);
            }
        }
        CHECK_THROWS_AS(model.backward(y.data(), nullptr, nullptr, dx.data(), dh0.data(), nullptr), ConcurrencyError);
    }
    model.backward(y.data(), nullptr, nullptr, dx.data(), dh0.data(), nullptr);
    const std::uint64_t before = model.version();
    sgd.step(Modules{&model});
    CHECK(model.version() == before + 1);  // one new version for the whole step
    CHECK_THROWS_AS(sgd.step(Modules{&model, &model}), ArgumentError);
}

TEST_CASE("a backward for a record that another thread's training forward replaced is refused")
{
    // B3: the caller sized dx and dstate from the record; if the record changed meanwhile, the
    // backward must not write past those arrays.
    Model model(spec_of(CellKind::rnn_tanh, 3, 4, 1), 0);
    std::vector<float> x = random_values(7 * 3 * 3, 1), y(7 * 3 * 4), h(3 * 4);
    model.forward_train(x.data(), 5, 2, nullptr, y.data(), h.data(), nullptr);
    const Index T = model.recorded_steps(), B = model.recorded_batch();
    model.forward_train(x.data(), 7, 3, nullptr, y.data(), h.data(), nullptr);  // "another thread"
    std::vector<float> dy(static_cast<std::size_t>(T * B * 4)), dx(static_cast<std::size_t>(T * B * 3)),
        dh0(static_cast<std::size_t>(B * 4));
    CHECK_THROWS_AS(model.backward(dy.data(), nullptr, nullptr, dx.data(), dh0.data(), nullptr, 1, T, B),
                    ConcurrencyError);
}

TEST_CASE("a training forward that fails for want of memory keeps the last record for its backward")
{
    // B7: the new record is made before the old one goes. Sizes whose record would overflow Index;
    // and, on a 64-bit host whose heap reports what it cannot give (the sanitizers' heaps stop
    // the program instead), more than any memory.
    std::vector<Index> sizes{std::numeric_limits<Index>::max() / 4};
#if !defined(STREAMRNN_SANITIZER_HEAP)
    if (sizeof(Index) >= 8)
        sizes.push_back(Index(1) << (sizeof(Index) >= 8 ? 36 : 0));
#endif
    for (Index T : sizes) {
        CAPTURE(T);
        Model model(spec_of(CellKind::lstm, 2, 3, 2), 0);
        const Index T0 = 4, B = 2;
        const std::vector<float> x = random_values(static_cast<std::size_t>(T0 * B * 2), 1);
        const std::vector<float> dy = random_values(static_cast<std::size_t>(T0 * B * 3), 2);
        std::vector<float> y(dy.size()), h(2 * B * 3, 0.0f), c(h.size(), 0.0f);
        auto backward = [&](std::vector<float>& dx) {
            std::vector<float> dh0(h.size()), dc0(c.size());
            model.zero_grad();
            model.backward(dy.data(), nullptr, nullptr, dx.data(), dh0.data(), dc0.data());
            return std::vector<float>(model.gradients().begin(), model.gradients().end());
        };
        model.forward_train(x.data(), T0, B, nullptr, y.data(), h.data(), c.data());
        std::vector<float> dx(x.size()), dx_after(x.size());
        const std::vector<float> expected = backward(dx);
        std::vector<float> none(1);
        CHECK_THROWS(model.forward_train(none.data(), T, 1, nullptr, none.data(), h.data(), c.data()));
        CHECK(model.recorded_steps() == T0);
        CHECK(backward(dx_after) == expected);
        CHECK(dx_after == dx);
    }
}

TEST_CASE("the C API loads another model's weights while a thread steps a stream of it, whole and real-time")
{
    // An audio plugin's case: a tuned copy arrives while the callback steps.
    const ModelSpec spec = spec_of(CellKind::lstm, 2, 24, 2);
    auto c_model = [&](std::uint64_t seed) {
        const std::vector<std::uint8_t> bytes = save_model_bytes(Model(spec, seed));
        streamrnn_model* model = nullptr;
        REQUIRE(streamrnn_model_load_buffer(bytes.data(), bytes.size(), &model) == STREAMRNN_OK);
        return model;
    };
    streamrnn_model *live = c_model(1), *tuned = c_model(2), *original = c_model(1);
    const std::vector<float> x{0.5f, -0.25f};
    auto step_once = [&](streamrnn_stream* stream, std::vector<float>& y) {
        REQUIRE(streamrnn_stream_reset(stream) == STREAMRNN_OK);
        return streamrnn_stream_step(stream, x.data(), x.size(), y.data(), y.size()) == STREAMRNN_OK;
    };
    std::vector<float> y_original(24), y_tuned(24), y(24);
    streamrnn_stream* stream = nullptr;
    REQUIRE(streamrnn_stream_create(live, 1, &stream) == STREAMRNN_OK);
    REQUIRE(step_once(stream, y_original));
    REQUIRE(streamrnn_model_load_weights(live, tuned) == STREAMRNN_OK);
    REQUIRE(step_once(stream, y_tuned));
    REQUIRE(y_original != y_tuned);

    std::atomic<bool> done{false};
    std::atomic<long> steps{0}, failed_loads{0};
    std::thread loader([&] {
        for (int i = 0; i < 300 || steps < 200; ++i)
            failed_loads += streamrnn_model_load_weights(live, i % 2 ? tuned : original) != STREAMRNN_OK;
        done = true;
    });
    long torn = 0, heap = 0, freed = 0, locked = 0;
    while (!done) {
        const long allocations = testing::thread_allocation_count(), frees = testing::thread_free_count(),
                   locks = testing::thread_lock_count();
        const bool ran = step_once(stream, y);
        heap += testing::thread_allocation_count() - allocations;
        freed += testing::thread_free_count() - frees;
        locked += testing::thread_lock_count() - locks;
        REQUIRE(ran);
        torn += y != y_original && y != y_tuned;
        ++steps;
    }
    loader.join();
    CHECK(failed_loads == 0);
    CHECK(torn == 0);
    CHECK(heap == 0);
    CHECK(freed == 0);
    CHECK(locked == 0);

    ModelSpec other = spec;
    other.hidden_size = 23;
    const std::vector<std::uint8_t> bytes = save_model_bytes(Model(other, 3));
    streamrnn_model* mismatched = nullptr;
    REQUIRE(streamrnn_model_load_buffer(bytes.data(), bytes.size(), &mismatched) == STREAMRNN_OK);
    CHECK(streamrnn_model_load_weights(live, mismatched) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(std::string(streamrnn_last_error()).find("architecture") != std::string::npos);
    for (streamrnn_model* model : {live, tuned, original, mismatched})
        streamrnn_model_free(model);
    streamrnn_stream_free(stream);
}
