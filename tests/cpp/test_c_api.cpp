// tests/cpp/test_c_api.cpp: the C API streams as Stream does, reports every bad argument and file
// as a status with a message and changes nothing then, and its streaming calls allocate nothing,
// lock nothing and throw nothing; subnormals are flushed while a stream steps.
// Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/chunked.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/stream.hpp"
#include "streamrnn/streamrnn.h"

#include "count_allocations.hpp"
#include "random_values.hpp"
#include "spec_of.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

using namespace streamrnn;

namespace {

const std::string data_dir = STREAMRNN_TEST_DATA;

std::vector<unsigned char> file_bytes(const std::string& path)
{
    std::ifstream file(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

using testing::random_values;

/// A model and a stream of it, freed at the end of the scope.
struct Handles {
    streamrnn_model* model = nullptr;
    streamrnn_stream* stream = nullptr;
    streamrnn_sizes sizes{};

    Handles(const std::string& name, std::size_t batch)
    {
        REQUIRE(streamrnn_model_load_file((data_dir + "/" + name + ".safetensors").c_str(), &model) == STREAMRNN_OK);
        REQUIRE(streamrnn_model_sizes(model, &sizes) == STREAMRNN_OK);
        REQUIRE(streamrnn_stream_create(model, batch, &stream) == STREAMRNN_OK);
    }
    ~Handles()
    {
        streamrnn_stream_free(stream);
        streamrnn_model_free(model);
    }
};

bool message_has(const char* text) { return std::strstr(streamrnn_last_error(), text) != nullptr; }

}  // namespace

TEST_CASE("the C API streams as the C++ Stream does, from a file or from memory")
{
    for (const char* name : {"lstm_proj", "gru_cho", "rnn_relu"}) {
        CAPTURE(name);
        const std::string path = data_dir + "/" + name + ".safetensors";
        const auto bytes = file_bytes(path);
        streamrnn_model* from_memory = nullptr;
        REQUIRE(streamrnn_model_load_buffer(bytes.data(), bytes.size(), &from_memory) == STREAMRNN_OK);

        const std::size_t B = 3, T = 20;
        Handles c(name, B);
        const auto model = std::make_shared<const Model>(load_model(path));
        Stream reference(model, static_cast<Index>(B));
        const ModelSpec& spec = model->spec();
        CHECK(c.sizes.input_size == std::size_t(spec.input_size));
        CHECK(c.sizes.output_size == std::size_t(spec.output_size()));
        CHECK(c.sizes.hidden_size == std::size_t(spec.hidden_size));
        CHECK(c.sizes.num_layers == 2);
        CHECK(c.sizes.h_size == std::size_t(2 * spec.output_size()));
        CHECK(c.sizes.c_size == (spec.has_cell_state() ? std::size_t(2 * spec.hidden_size) : 0));
        const char* mode = nullptr;
        REQUIRE(streamrnn_model_mode(from_memory, &mode) == STREAMRNN_OK);
        CHECK(std::string(mode) == kind_name(spec.kind));

        streamrnn_stream* memory_stream = nullptr;
        REQUIRE(streamrnn_stream_create(from_memory, B, &memory_stream) == STREAMRNN_OK);
        streamrnn_model_free(from_memory);  // the stream keeps the model alive

        const std::size_t I = c.sizes.input_size, O = c.sizes.output_size;
        const std::vector<float> x = random_values(T * B * I, 4);
        std::vector<float> y_step(T * B * O), y_process(T * B * O), y_reference(T * B * O);
        for (std::size_t t = 0; t < T; ++t) {
            REQUIRE(streamrnn_stream_step(c.stream, &x[t * B * I], B * I, &y_step[t * B * O], B * O) == STREAMRNN_OK);
            reference.step(&x[t * B * I], &y_reference[t * B * O]);
        }
        REQUIRE(streamrnn_stream_process(memory_stream, T, x.data(), x.size(), y_process.data(), y_process.size())
                == STREAMRNN_OK);
        CHECK(y_step == y_reference);
        for (std::size_t i = 0; i < y_step.size(); ++i)
            CHECK(std::abs(y_process[i] - y_step[i]) <= 1e-6f);

        std::vector<float> h(B * c.sizes.h_size);
        REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
        std::vector<float> h_reference(reference.h_size());
        reference.get_state(h_reference.data(), nullptr);
        CHECK(h == h_reference);
        streamrnn_stream_free(memory_stream);
    }
}

TEST_CASE("the version is the project's (CMakeLists.txt and config.hpp agree)")
{
    CHECK(std::string(streamrnn_version()) == STREAMRNN_PROJECT_VERSION);
}

TEST_CASE("state moves in and out, and resets zero one stream or all")
{
    const std::size_t B = 2;
    Handles c("lstm_proj", B);
    std::vector<float> h = random_values(B * c.sizes.h_size, 5), cell = random_values(B * c.sizes.c_size, 6);
    REQUIRE(streamrnn_stream_set_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_set_state(c.stream, STREAMRNN_STATE_C, cell.data(), cell.size()) == STREAMRNN_OK);
    std::vector<float> back(h.size());
    REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, back.data(), back.size()) == STREAMRNN_OK);
    CHECK(back == h);

    REQUIRE(streamrnn_stream_reset_row(c.stream, 1) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, back.data(), back.size()) == STREAMRNN_OK);
    const std::size_t O = c.sizes.output_size;
    for (std::size_t layer = 0; layer < c.sizes.num_layers; ++layer)
        for (std::size_t k = 0; k < O; ++k) {
            CHECK(back[(layer * B + 0) * O + k] == h[(layer * B + 0) * O + k]);
            CHECK(back[(layer * B + 1) * O + k] == 0.0f);
        }
    REQUIRE(streamrnn_stream_reset(c.stream) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_C, cell.data(), cell.size()) == STREAMRNN_OK);
    for (float v : cell)
        CHECK(v == 0.0f);
    std::size_t batch = 0;
    REQUIRE(streamrnn_stream_batch(c.stream, &batch) == STREAMRNN_OK);
    CHECK(batch == B);
}

TEST_CASE("bad arguments are errors with a message, and a failed call changes nothing")
{
    Handles c("gru_cho", 2);
    const std::size_t I = c.sizes.input_size, O = c.sizes.output_size;
    std::vector<float> x = random_values(2 * I, 7), y(2 * O), h(2 * c.sizes.h_size);
    REQUIRE(streamrnn_stream_step(c.stream, x.data(), x.size(), y.data(), y.size()) == STREAMRNN_OK);
    std::vector<float> h_before(h.size());
    REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, h_before.data(), h_before.size()) == STREAMRNN_OK);

    CHECK(streamrnn_stream_step(c.stream, x.data(), x.size() - 1, y.data(), y.size()) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("x_count: expected 6 floats"));
    CHECK(streamrnn_stream_step(c.stream, x.data(), x.size(), y.data(), y.size() + 1) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("y_count"));
    CHECK(streamrnn_stream_process(c.stream, 3, x.data(), x.size(), y.data(), y.size()) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(streamrnn_stream_process(c.stream, std::size_t(-1) / 2, x.data(), x.size(), y.data(), y.size())
          == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("steps"));
    CHECK(streamrnn_stream_step(c.stream, nullptr, x.size(), y.data(), y.size()) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("x is null"));
    CHECK(streamrnn_stream_step(nullptr, x.data(), x.size(), y.data(), y.size()) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_C, h.data(), h.size()) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("no such state"));
    CHECK(streamrnn_stream_set_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size() + 1) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(streamrnn_stream_reset_row(c.stream, 2) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("row: expected 0 to 1, got 2"));

    REQUIRE(streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
    CHECK(h == h_before);

    streamrnn_stream* stream = nullptr;
    CHECK(streamrnn_stream_create(c.model, 0, &stream) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("batch: expected 1 to 16777216 streams, got 0"));
    CHECK(stream == nullptr);
    CHECK(streamrnn_stream_create(nullptr, 1, &stream) == STREAMRNN_ERROR_ARGUMENT);
    streamrnn_sizes sizes;
    CHECK(streamrnn_model_sizes(c.model, nullptr) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(streamrnn_model_sizes(nullptr, &sizes) == STREAMRNN_ERROR_ARGUMENT);
}

TEST_CASE("a missing, truncated, corrupt or bidirectional model file is an error with a message")
{
    streamrnn_model* model = nullptr;
    CHECK(streamrnn_model_load_file((data_dir + "/no such file").c_str(), &model) == STREAMRNN_ERROR_FILE);
    CHECK(message_has("No such file"));
    CHECK(model == nullptr);

    auto bytes = file_bytes(data_dir + "/rnn_relu.safetensors");
    for (std::size_t size : {std::size_t(0), std::size_t(7), std::size_t(100), bytes.size() - 1}) {
        CAPTURE(size);
        CHECK(streamrnn_model_load_buffer(bytes.data(), size, &model) == STREAMRNN_ERROR_FORMAT);
        CHECK(message_has("model file: "));
        CHECK(model == nullptr);
    }
    auto corrupt = bytes;
    corrupt[20] = '{';
    CHECK(streamrnn_model_load_buffer(corrupt.data(), corrupt.size(), &model) == STREAMRNN_ERROR_FORMAT);
    const std::string version = "\"format_version\":\"1\"";
    auto other_version = bytes;
    const auto at = std::search(other_version.begin(), other_version.end(), version.begin(), version.end());
    REQUIRE(at != other_version.end());
    at[version.size() - 2] = '9';
    CHECK(streamrnn_model_load_buffer(other_version.data(), other_version.size(), &model) == STREAMRNN_ERROR_FORMAT);
    CHECK(message_has("format_version \"9\" is not supported"));
    CHECK(streamrnn_model_load_buffer(nullptr, 10, &model) == STREAMRNN_ERROR_ARGUMENT);

    ModelSpec spec;
    spec.kind = CellKind::gru;
    spec.input_size = 2;
    spec.hidden_size = 3;
    spec.bidirectional = true;
    const auto saved = save_model_bytes(Model(spec, 1));
    REQUIRE(streamrnn_model_load_buffer(saved.data(), saved.size(), &model) == STREAMRNN_OK);
    streamrnn_sizes sizes;
    REQUIRE(streamrnn_model_sizes(model, &sizes) == STREAMRNN_OK);
    CHECK(sizes.bidirectional == 1);
    streamrnn_stream* stream = nullptr;
    CHECK(streamrnn_stream_create(model, 1, &stream) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("bidirectional"));
    streamrnn_model_free(model);
}

TEST_CASE("streaming calls allocate nothing, lock nothing and throw nothing, failing ones included")
{
    static_assert(noexcept(std::declval<Stream&>().step(nullptr, nullptr)));
    static_assert(noexcept(std::declval<Stream&>().process(nullptr, nullptr, 1)));
    static_assert(noexcept(std::declval<Stream&>().reset()));
    for (const char* name : {"lstm_proj", "gru_cho", "rnn_relu"})
        for (std::size_t B : {std::size_t(1), std::size_t(8)}) {
            CAPTURE(name);
            CAPTURE(B);
            Handles c(name, B);
            const std::size_t I = c.sizes.input_size, O = c.sizes.output_size, T = 100;
            const std::vector<float> x = random_values(T * B * I, 8);
            std::vector<float> y(T * B * O), h(B * c.sizes.h_size);
            const long allocations = testing::allocation_count(), locks = testing::lock_count();
            for (std::size_t t = 0; t < 10; ++t)
                streamrnn_stream_step(c.stream, &x[t * B * I], B * I, &y[t * B * O], B * O);
            streamrnn_stream_process(c.stream, T, x.data(), x.size(), y.data(), y.size());
            streamrnn_stream_get_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size());
            streamrnn_stream_set_state(c.stream, STREAMRNN_STATE_H, h.data(), h.size());
            streamrnn_stream_reset_row(c.stream, B - 1);
            streamrnn_stream_reset(c.stream);
            CHECK(streamrnn_stream_step(c.stream, x.data(), 1, y.data(), y.size()) == STREAMRNN_ERROR_ARGUMENT);
            CHECK(streamrnn_stream_reset_row(c.stream, B) == STREAMRNN_ERROR_ARGUMENT);
            CHECK(testing::allocation_count() == allocations);
            CHECK(testing::lock_count() == locks);
        }
}

TEST_CASE("models with ONNX's cell options stream through the C API as their whole-sequence forward, allocating nothing")
{
    ModelSpec lstm;
    lstm.kind = CellKind::lstm;
    lstm.input_size = 3;
    lstm.hidden_size = 5;
    lstm.num_layers = 2;
    lstm.peepholes = true;
    lstm.clip = 0.5;
    lstm.input_forget = true;
    ModelSpec gru = lstm;
    gru.kind = CellKind::gru;
    gru.peepholes = gru.input_forget = false;
    gru.activations = {{Activation::hard_sigmoid, 0.3f, 0.5f}, {Activation::softsign}};
    ModelSpec lstm_functions = lstm;  // functions of its own: the general step, not the row kernels
    lstm_functions.activations = {{Activation::sigmoid}, {Activation::elu, 0.7f}, {Activation::softplus}};
    for (const ModelSpec& spec : {lstm, gru, lstm_functions})
        for (std::size_t B : {std::size_t(1), std::size_t(4)}) {
            CAPTURE(kind_name(spec.kind));
            CAPTURE(B);
            const Model model(spec, 5);
            const std::vector<std::uint8_t> bytes = save_model_bytes(model);
            streamrnn_model* loaded = nullptr;
            streamrnn_stream* stream = nullptr;
            REQUIRE(streamrnn_model_load_buffer(bytes.data(), bytes.size(), &loaded) == STREAMRNN_OK);
            REQUIRE(streamrnn_stream_create(loaded, B, &stream) == STREAMRNN_OK);
            const std::size_t T = 30, I = 3, O = 5;
            const std::vector<float> x = random_values(T * B * I, 9);
            std::vector<float> y(T * B * O), y_reference(T * B * O);
            std::vector<float> h(2 * B * O, 0.0f), c(spec.has_cell_state() ? 2 * B * O : 0, 0.0f);
            model.forward(x.data(), T, static_cast<Index>(B), nullptr, y_reference.data(), h.data(),
                          spec.has_cell_state() ? c.data() : nullptr);
            const long allocations = testing::allocation_count();
            for (std::size_t t = 0; t < T; ++t)
                REQUIRE(streamrnn_stream_step(stream, &x[t * B * I], B * I, &y[t * B * O], B * O) == STREAMRNN_OK);
            CHECK(testing::allocation_count() == allocations);
            double worst = 0.0;
            for (std::size_t i = 0; i < y.size(); ++i)
                worst = std::max(worst, double(std::abs(y[i] - y_reference[i])));
            CHECK(worst <= 2e-6);
            streamrnn_stream_free(stream);
            streamrnn_model_free(loaded);
        }
}

TEST_CASE("a pool through the C API steps its streams as streams of one row, allocating and locking nothing")
{
    for (const char* name : {"lstm_proj", "gru_cho", "rnn_relu"}) {
        CAPTURE(name);
        Handles c(name, 1);
        streamrnn_pool* pool = nullptr;
        REQUIRE(streamrnn_pool_create(c.model, 4, &pool) == STREAMRNN_OK);
        const std::size_t I = c.sizes.input_size, O = c.sizes.output_size, T = 12;
        const std::vector<float> x = random_values(T * 3 * I, 6);
        std::vector<float> y(T * 3 * O), y_alone(O), h(c.sizes.h_size);
        std::vector<unsigned char> snapshot;
        size_t snapshot_size = 0, open = 0;
        REQUIRE(streamrnn_pool_snapshot_size(pool, &snapshot_size) == STREAMRNN_OK);
        snapshot.resize(snapshot_size);
        streamrnn_id ids[3], fork = 0, restored = 0;
        const long allocations = testing::allocation_count(), locks = testing::lock_count();
        for (streamrnn_id& id : ids)
            REQUIRE(streamrnn_pool_open(pool, &id) == STREAMRNN_OK);
        // Rows in the ids' order, whichever order that is; the third stream idle meanwhile.
        const streamrnn_id order[2] = {ids[1], ids[0]};
        for (std::size_t t = 0; t < T; ++t)
            REQUIRE(streamrnn_pool_step(pool, order, 2, &x[t * 2 * I], 2 * I, &y[t * 2 * O], 2 * O) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_process(pool, ids + 2, 1, T, x.data(), T * I, y.data(), T * O) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_get_state(pool, ids[0], STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_set_state(pool, ids[2], STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_fork(pool, ids[0], &fork) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_snapshot(pool, fork, snapshot.data(), snapshot.size()) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_close(pool, fork) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_restore(pool, snapshot.data(), snapshot.size(), &restored) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_reset(pool, ids + 2, 1) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_size(pool, &open) == STREAMRNN_OK);
        CHECK(open == 4);
        CHECK(streamrnn_pool_open(pool, &fork) == STREAMRNN_ERROR_FULL);
        CHECK(streamrnn_pool_step(pool, &fork, 1, x.data(), I, y.data(), O) == STREAMRNN_ERROR_UNKNOWN_ID);
        const streamrnn_id twice[2] = {ids[0], ids[0]};
        CHECK(streamrnn_pool_step(pool, twice, 2, x.data(), 2 * I, y.data(), 2 * O) == STREAMRNN_ERROR_ARGUMENT);
        CHECK(message_has("named twice"));
        CHECK(streamrnn_pool_step(pool, ids, 1, x.data(), 2, y.data(), O) == STREAMRNN_ERROR_ARGUMENT);
        snapshot[snapshot.size() / 2] ^= 1;
        CHECK(streamrnn_pool_restore(pool, snapshot.data(), snapshot.size(), &fork) == STREAMRNN_ERROR_FORMAT);
        CHECK(testing::allocation_count() == allocations);
        CHECK(testing::lock_count() == locks);

        // The first stream, fed its rows alone, and the restored fork of it: the same state.
        Handles alone(name, 1);
        for (std::size_t t = 0; t < T; ++t)
            REQUIRE(streamrnn_stream_step(alone.stream, &x[(t * 2 + 1) * I], I, y_alone.data(), O) == STREAMRNN_OK);
        std::vector<float> h_alone(h.size()), h_restored(h.size());
        REQUIRE(streamrnn_stream_get_state(alone.stream, STREAMRNN_STATE_H, h_alone.data(), h.size()) == STREAMRNN_OK);
        REQUIRE(streamrnn_pool_get_state(pool, restored, STREAMRNN_STATE_H, h_restored.data(), h.size()) == STREAMRNN_OK);
        for (std::size_t i = 0; i < h.size(); ++i) {
            CHECK(std::abs(h_alone[i] - h[i]) <= 2e-6);
            CHECK(h_restored[i] == h[i]);
        }
        streamrnn_pool_free(pool);
    }
}

TEST_CASE("a bidirectional model streams in chunks through the C API as its chunked forward, allocating nothing")
{
    ModelSpec spec = testing::spec_of(CellKind::lstm, 3, 4, 2);
    spec.bidirectional = true;
    const Model model(spec, 8);
    const std::vector<std::uint8_t> bytes = save_model_bytes(model);
    streamrnn_model* loaded = nullptr;
    REQUIRE(streamrnn_model_load_buffer(bytes.data(), bytes.size(), &loaded) == STREAMRNN_OK);
    streamrnn_stream* plain = nullptr;
    CHECK(streamrnn_stream_create(loaded, 1, &plain) == STREAMRNN_ERROR_ARGUMENT);
    const std::size_t T = 11, B = 2, I = 3, Y = 8;
    const std::vector<float> x = random_values(T * B * I, 4);
    std::vector<float> expected(T * B * Y), h(4 * B * 4, 0.0f), c(h.size(), 0.0f);
    forward_chunked(model, x.data(), Index(T), Index(B), nullptr, {3, 2}, expected.data(), h.data(), c.data());

    streamrnn_chunked_stream* stream = nullptr;
    CHECK(streamrnn_chunked_stream_create(loaded, B, 0, 2, &stream) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("chunk"));
    REQUIRE(streamrnn_chunked_stream_create(loaded, B, 3, 2, &stream) == STREAMRNN_OK);
    std::vector<float> y(T * B * Y);
    std::size_t done = 0, written = 0, pending = 0, completed = 0;
    const long allocations = testing::allocation_count(), locks = testing::lock_count();
    for (std::size_t t0 = 0; t0 < T; t0 += 4) {
        const std::size_t steps = std::min<std::size_t>(4, T - t0);
        REQUIRE(streamrnn_chunked_stream_completed_by(stream, steps, &completed) == STREAMRNN_OK);
        REQUIRE(streamrnn_chunked_stream_process(stream, steps, &x[t0 * B * I], steps * B * I, &y[done * B * Y],
                                                 (T - done) * B * Y, &written) == STREAMRNN_OK);
        CHECK(written == completed);
        done += written;
    }
    REQUIRE(streamrnn_chunked_stream_pending(stream, &pending) == STREAMRNN_OK);
    CHECK(pending == T - done);
    CHECK(streamrnn_chunked_stream_flush(stream, y.data(), 1, &written) == (pending ? STREAMRNN_ERROR_ARGUMENT : STREAMRNN_OK));
    REQUIRE(streamrnn_chunked_stream_flush(stream, &y[done * B * Y], (T - done) * B * Y, &written) == STREAMRNN_OK);
    CHECK(written == pending);
    CHECK(streamrnn_chunked_stream_process(stream, 1, x.data(), 1, y.data(), y.size(), &written) ==
          STREAMRNN_ERROR_ARGUMENT);
    REQUIRE(streamrnn_chunked_stream_reset(stream) == STREAMRNN_OK);
    CHECK(testing::allocation_count() == allocations);
    CHECK(testing::lock_count() == locks);
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(std::abs(y[i] - expected[i]) <= 1e-5f);
    streamrnn_chunked_stream_free(stream);
    streamrnn_model_free(loaded);
}

TEST_CASE("the allocation counter sees operator new and malloc")
{
    // Without this, a counter that never counts (a sanitizer's hook not installed, say) would
    // pass the tests above. Direct calls, which the compiler may not elide as it may a new
    // expression.
    const long before = testing::allocation_count();
    long expected = before + 1;
    void* object = ::operator new(16);
    ::operator delete(object);
#if STREAMRNN_COUNTS_MALLOC
    void* volatile block = std::malloc(16);
    std::free(block);
    ++expected;
#endif
    CHECK(testing::allocation_count() == expected);
}

TEST_CASE("the lock counter sees a lock")
{
    // Without this, a counter that never counts would pass the test above.
#if STREAMRNN_COUNTS_LOCKS
    std::vector<float> x(1);
    const long before = testing::lock_count();
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mutex);
    pthread_mutex_unlock(&mutex);
    CHECK(testing::lock_count() == before + 1);
#endif
}

TEST_CASE("a stream flushes subnormals while it steps, and restores the thread's mode")
{
    // y = relu(1 * x): a subnormal x comes out as itself, or as zero when flushed.
    ModelSpec spec;
    spec.kind = CellKind::rnn_relu;
    spec.input_size = 1;
    spec.hidden_size = 1;
    spec.bias = false;
    auto model = std::make_shared<Model>(spec);
    std::vector<float> weights(model->parameter_count(), 0.0f);
    weights[0] = 1.0f;  // weight_ih; weight_hh stays 0
    model->set_parameters(weights.data());
    Stream stream(model, 1);
    const float subnormal = 1e-40f;
    REQUIRE(std::fpclassify(subnormal) == FP_SUBNORMAL);
    float y = -1.0f;
    stream.step(&subnormal, &y);
    CHECK(y == 0.0f);
    // Flushing is undone on the way out: this thread's arithmetic keeps its subnormals.
    volatile float tiny = 1e-38f;
    CHECK(std::fpclassify(tiny / 100.0f) == FP_SUBNORMAL);
#if !(defined(__arm__) && defined(__ARM_NEON))  // NEON arithmetic flushes whatever the mode
    stream.set_flush_denormals(false);
    stream.step(&subnormal, &y);
    CHECK(y == subnormal);
#endif
}

TEST_CASE("a whole model (Linear, functions, LSTM with an initial state) streams through the C API as its "
          "whole-sequence forward, allocating and locking nothing")
{
    auto first = std::make_shared<Linear>(2, 6, true, 1);
    auto lstm = std::make_shared<Model>(testing::spec_of(CellKind::lstm, 6, 5, 2), 2);
    auto head = std::make_shared<Linear>(5, 1, true, 3);
    const std::vector<float> h0 = random_values(2 * 5, 4), c0 = random_values(2 * 5, 5);
    lstm->set_initial_state(h0.data(), c0.data());
    const Sequential whole(std::vector<Block>{Block::of(first), Block::of(ActivationFunction{Activation::tanh}),
                                              Block::of(lstm), Block::of(ActivationFunction{Activation::leaky_relu, 0.1f}),
                                              Block::of(head)});
    const std::vector<std::uint8_t> file = save_sequential_bytes(whole, {{"sample_rate", "48000"}});
    streamrnn_model* model = nullptr;
    REQUIRE(streamrnn_model_load_buffer(file.data(), file.size(), &model) == STREAMRNN_OK);
    const char* mode = nullptr;
    REQUIRE(streamrnn_model_mode(model, &mode) == STREAMRNN_OK);
    CHECK(std::string(mode) == "Sequential");
    streamrnn_sizes sizes{};
    REQUIRE(streamrnn_model_sizes(model, &sizes) == STREAMRNN_OK);
    CHECK(sizes.input_size == 2);
    CHECK(sizes.output_size == 1);
    CHECK(sizes.h_size == 10);
    CHECK(sizes.c_size == 10);
    streamrnn_pool* pool = nullptr;
    CHECK(streamrnn_pool_create(model, 4, &pool) == STREAMRNN_ERROR_ARGUMENT);
    CHECK(message_has("whole model"));

    const std::size_t B = 3, T = 40;
    const std::vector<float> x = random_values(T * B * 2, 6);
    std::vector<float> expected(T * B);
    whole.forward(x.data(), T, B, nullptr, expected.data());  // every row from the initial state
    streamrnn_stream* stream = nullptr;
    REQUIRE(streamrnn_stream_create(model, B, &stream) == STREAMRNN_OK);
    std::vector<float> y(T * B), again(T * B), h(B * sizes.h_size);
    const long allocations = testing::allocation_count(), locks = testing::lock_count();
    for (std::size_t t = 0; t < 10; ++t)
        REQUIRE(streamrnn_stream_step(stream, &x[t * B * 2], B * 2, &y[t * B], B) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_process(stream, T - 10, &x[10 * B * 2], (T - 10) * B * 2, &y[10 * B], (T - 10) * B) ==
            STREAMRNN_OK);
    REQUIRE(streamrnn_stream_get_state(stream, STREAMRNN_STATE_H, h.data(), h.size()) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_reset(stream) == STREAMRNN_OK);
    REQUIRE(streamrnn_stream_process(stream, T, x.data(), x.size(), again.data(), again.size()) == STREAMRNN_OK);
    CHECK(testing::allocation_count() == allocations);
    CHECK(testing::lock_count() == locks);
    for (std::size_t i = 0; i < y.size(); ++i) {
        CHECK(y[i] == doctest::Approx(expected[i]).epsilon(1e-5));
        CHECK(again[i] == doctest::Approx(expected[i]).epsilon(1e-5));
    }
    streamrnn_stream_free(stream);
    streamrnn_model_free(model);
}
