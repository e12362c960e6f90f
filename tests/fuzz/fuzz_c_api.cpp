// tests/fuzz/fuzz_c_api.cpp: libFuzzer harness for the C API from loading a buffer to streaming it.
// Part of streamrnn, MIT licence.
//
// Any bytes go to streamrnn_model_load_buffer; a failure must be a FORMAT error with a message,
// and no model.
// A model that loads is streamed on zeros through every stream call, each checked for the status
// streamrnn.h promises, wrong sizes included (a whole model, a Sequential, as a recurrent one: it
// refuses pools and chunked streams); then through a pool, whose snapshot is restored
// with the input's bytes mixed into it (any status but a crash, and never a changed stream). A crash, a sanitizer report or a broken check
// (abort) is a finding.
#include "streamrnn/streamrnn.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

/// A loaded model's weights are bounded by the file's size, and a step's cost is linear in them:
/// larger inputs load but do not stream.
constexpr std::size_t max_run_bytes = std::size_t(1) << 20;

void require(bool condition)
{
    if (!condition)
        std::abort();
}

void require_ok(streamrnn_status status) { require(status == STREAMRNN_OK); }

void require_argument_error(streamrnn_status status)
{
    require(status == STREAMRNN_ERROR_ARGUMENT && streamrnn_last_error()[0] != '\0');
}

/// Whether `model` is a whole model (a Sequential), which streams but has no pools or chunked streams.
bool is_whole(const streamrnn_model* model)
{
    const char* mode = nullptr;
    require_ok(streamrnn_model_mode(model, &mode));
    require(mode != nullptr);
    return std::strcmp(mode, "Sequential") == 0;
}

/// A bidirectional model's stream in chunks of 2 steps with 1 of look-ahead: 3 steps, then flush.
void chunked(const streamrnn_model* model, const streamrnn_sizes& sizes, std::size_t batch)
{
    streamrnn_chunked_stream* s = nullptr;
    require_argument_error(streamrnn_chunked_stream_create(model, batch, 0, 1, &s));
    require_ok(streamrnn_chunked_stream_create(model, batch, 2, 1, &s));
    const std::size_t T = 3, Y = 2 * sizes.output_size;
    std::vector<float> x(T * batch * sizes.input_size), y(T * batch * Y);
    std::size_t written = 0, pending = 0;
    require_ok(streamrnn_chunked_stream_process(s, T, x.data(), x.size(), y.data(), y.size(), &written));
    require(written == 2);
    require_ok(streamrnn_chunked_stream_pending(s, &pending));
    require(pending == 1);
    require_argument_error(streamrnn_chunked_stream_process(s, T, x.data(), x.size() - 1, y.data(), y.size(), &written));
    require_ok(streamrnn_chunked_stream_flush(s, y.data(), y.size(), &written));
    require(written == 1);
    require_ok(streamrnn_chunked_stream_reset(s));
    streamrnn_chunked_stream_free(s);
}

/// Every stream call of `model`, a few steps each, on zeros; `batch` is 1 or 2.
void stream(const streamrnn_model* model, std::size_t batch)
{
    streamrnn_sizes sizes{};
    require_ok(streamrnn_model_sizes(model, &sizes));
    streamrnn_stream* s = nullptr;
    if (sizes.bidirectional) {
        require_argument_error(streamrnn_stream_create(model, batch, &s));
        require(s == nullptr);
        if (is_whole(model)) {
            streamrnn_chunked_stream* chunked_stream = nullptr;
            require_argument_error(streamrnn_chunked_stream_create(model, batch, 2, 1, &chunked_stream));
        } else {
            chunked(model, sizes, batch);
        }
        return;
    }
    require_ok(streamrnn_stream_create(model, batch, &s));
    std::size_t got_batch = 0;
    require_ok(streamrnn_stream_batch(s, &got_batch));
    require(got_batch == batch);

    constexpr std::size_t T = 3;
    const std::size_t I = batch * sizes.input_size, O = batch * sizes.output_size;
    std::vector<float> x(T * I), y(T * O), h(batch * sizes.h_size), c(batch * sizes.c_size);
    require_ok(streamrnn_stream_step(s, x.data(), I, y.data(), O));
    require_ok(streamrnn_stream_process(s, T, x.data(), x.size(), y.data(), y.size()));
    require_argument_error(streamrnn_stream_step(s, x.data(), I + 1, y.data(), O));
    require_argument_error(streamrnn_stream_process(s, T, x.data(), x.size(), y.data(), y.size() - 1));

    require_ok(streamrnn_stream_get_state(s, STREAMRNN_STATE_H, h.data(), h.size()));
    require_ok(streamrnn_stream_set_state(s, STREAMRNN_STATE_H, h.data(), h.size()));
    require_argument_error(streamrnn_stream_set_state(s, STREAMRNN_STATE_H, h.data(), h.size() + 1));
    if (sizes.c_size) {
        require_ok(streamrnn_stream_get_state(s, STREAMRNN_STATE_C, c.data(), c.size()));
        require_ok(streamrnn_stream_set_state(s, STREAMRNN_STATE_C, c.data(), c.size()));
    } else {
        require_argument_error(streamrnn_stream_get_state(s, STREAMRNN_STATE_C, h.data(), h.size()));
    }

    require_ok(streamrnn_stream_set_flush_denormals(s, 0));
    require_ok(streamrnn_stream_reset_row(s, batch - 1));
    require_argument_error(streamrnn_stream_reset_row(s, batch));
    require_ok(streamrnn_stream_step(s, x.data(), I, y.data(), O));
    require_ok(streamrnn_stream_reset(s));
    streamrnn_stream_free(s);
}

/// A pool of `model`: two streams stepped, one snapshot, and that snapshot restored as it is and
/// with `data` XORed into it, which must give a new stream or a refusal, nothing else.
void pool(const streamrnn_model* model, const std::uint8_t* data, std::size_t size)
{
    streamrnn_sizes sizes{};
    require_ok(streamrnn_model_sizes(model, &sizes));
    streamrnn_pool* p = nullptr;
    if (sizes.bidirectional || is_whole(model)) {
        require_argument_error(streamrnn_pool_create(model, 2, &p));
        return;
    }
    require_ok(streamrnn_pool_create(model, 3, &p));
    streamrnn_id ids[2];
    require_ok(streamrnn_pool_open(p, &ids[0]));
    require_ok(streamrnn_pool_open(p, &ids[1]));
    std::vector<float> x(2 * sizes.input_size), y(2 * sizes.output_size);
    require_ok(streamrnn_pool_step(p, ids, 2, x.data(), x.size(), y.data(), y.size()));
    std::size_t snapshot_size = 0;
    require_ok(streamrnn_pool_snapshot_size(p, &snapshot_size));
    std::vector<unsigned char> snapshot(snapshot_size);
    require_ok(streamrnn_pool_snapshot(p, ids[1], snapshot.data(), snapshot.size()));
    streamrnn_id restored = 0;
    require_ok(streamrnn_pool_restore(p, snapshot.data(), snapshot.size(), &restored));
    require_ok(streamrnn_pool_close(p, restored));
    for (std::size_t i = 0; i < snapshot.size() && size > 0; ++i)
        snapshot[i] ^= data[i % size];
    const std::size_t cut = size % 2 ? snapshot.size() - size % snapshot.size() : snapshot.size();
    const streamrnn_status status = streamrnn_pool_restore(p, snapshot.data(), cut, &restored);
    require(status == STREAMRNN_OK || status == STREAMRNN_ERROR_FORMAT || status == STREAMRNN_ERROR_ARGUMENT);
    std::size_t open = 0;
    require_ok(streamrnn_pool_size(p, &open));
    require(open == (status == STREAMRNN_OK ? 3 : 2));
    require(streamrnn_pool_close(p, ids[0] + ids[1] + 7) == STREAMRNN_ERROR_UNKNOWN_ID);
    streamrnn_pool_free(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    streamrnn_model* model = nullptr;
    if (const streamrnn_status status = streamrnn_model_load_buffer(data, size, &model); status != STREAMRNN_OK) {
        require(status == STREAMRNN_ERROR_FORMAT && model == nullptr && streamrnn_last_error()[0] != '\0');
        return 0;
    }
    require(model != nullptr);
    if (size <= max_run_bytes) {
        // The batch from the input, so that both sizes come up.
        stream(model, 1 + size % 2);
        pool(model, data, size);
    }
    streamrnn_model_free(model);
    return 0;
}
