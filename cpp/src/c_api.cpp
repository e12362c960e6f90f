// cpp/src/c_api.cpp: the C API (streamrnn.h) over Model and Stream. Every argument is checked here,
// before the engine sees it, so that no C call can reach a C++ error; messages are written into a
// per-thread buffer, so that a failing real-time call allocates nothing either.
// Part of streamrnn, MIT licence.
#include "streamrnn/streamrnn.h"

#include "streamrnn/chunked.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/spec.hpp"
#include "streamrnn/pool.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/stream.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <vector>

/// A recurrent model, or a whole model (a Sequential, whose blocks' weights change by whole versions
/// as a model's do).
struct streamrnn_model {
    std::shared_ptr<streamrnn::Model> model;  // its weights change by whole versions (load_weights)
    std::shared_ptr<streamrnn::Sequential> sequential;
};

/// A Stream of a recurrent model or a SequentialStream of a whole model: the calls are the same.
struct streamrnn_stream {
    std::optional<streamrnn::Stream> stream;
    std::optional<streamrnn::SequentialStream> sequential;

    /// call(the stream), whichever kind it is.
    template <typename Call>
    decltype(auto) with(Call&& call)
    {
        return sequential ? call(*sequential) : call(*stream);
    }
    template <typename Call>
    decltype(auto) with(Call&& call) const
    {
        return sequential ? call(*sequential) : call(*stream);
    }
};

struct streamrnn_pool {
    streamrnn::Pool pool;
};

struct streamrnn_chunked_stream {
    streamrnn::ChunkedStream stream;
};

namespace {

using streamrnn::Index;
using streamrnn::ModelSpec;

thread_local char last_error[512] = "";

/// Records the message (printf-style, truncated to the buffer) and returns `status`.
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
streamrnn_status failure(streamrnn_status status, const char* format, ...) noexcept
{
    va_list arguments;
    va_start(arguments, format);
    std::vsnprintf(last_error, sizeof last_error, format, arguments);
    va_end(arguments);
    return status;
}

streamrnn_status failure(const streamrnn::Status& status) noexcept
{
    const streamrnn_status code = status.kind == streamrnn::ErrorKind::format ? STREAMRNN_ERROR_FORMAT
                                  : status.kind == streamrnn::ErrorKind::file ? STREAMRNN_ERROR_FILE
                                                                              : STREAMRNN_ERROR_ARGUMENT;
    return failure(code, "%s", status.message.c_str());
}

/// Runs a call that allocates, turning what it may throw into a status. Built without
/// exceptions, running out of memory aborts, as it does everywhere in such a build.
template <typename Call>
streamrnn_status guarded(Call call) noexcept
{
#if STREAMRNN_HAS_EXCEPTIONS
    try {
        return call();
    } catch (const std::bad_alloc&) {
        return failure(STREAMRNN_ERROR_MEMORY, "out of memory");
    } catch (const std::length_error& error) {
        return failure(STREAMRNN_ERROR_MEMORY, "%s", error.what());  // sizes past what a 32-bit host addresses
    } catch (const std::exception& error) {
        return failure(STREAMRNN_ERROR_INTERNAL, "internal error: %s", error.what());
    } catch (...) {
        return failure(STREAMRNN_ERROR_INTERNAL, "internal error: an unknown exception");
    }
#else
    return call();
#endif
}

#define STREAMRNN_REQUIRE(pointer)                                                                                 \
    do {                                                                                                           \
        if (!(pointer))                                                                                            \
            return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s is null", __func__, #pointer);                        \
    } while (false)

streamrnn_status loaded(const streamrnn::Status& status, streamrnn::LoadedModel& model, streamrnn_model** out)
{
    if (!status.ok())
        return failure(status);
    *out = new streamrnn_model{std::move(model.model), std::move(model.sequential)};
    return STREAMRNN_OK;
}

/// A whole model's refusal of a call that takes a recurrent model alone.
streamrnn_status recurrent_only(const char* function) noexcept
{
    return failure(STREAMRNN_ERROR_ARGUMENT,
                   "%s: model: a whole model (Sequential) streams through streamrnn_stream_*; pools and chunked "
                   "streams take a recurrent model", function);
}

/// A set (not learned) initial state travels with the weights, as in a model file.
void copy_initial_state(const streamrnn::Model& from, streamrnn::Model& to)
{
    const ModelSpec& spec = to.spec();
    if (spec.learn_initial_state)
        return;  // among the weights
    if (!from.has_initial_state()) {
        to.set_initial_state(nullptr, nullptr);
        return;
    }
    const auto cells = static_cast<size_t>(spec.num_layers) * static_cast<size_t>(spec.directions());
    std::vector<float> h(cells * static_cast<size_t>(spec.output_size())), c(cells * static_cast<size_t>(spec.hidden_size));
    from.initial_state(h.data(), c.data());
    to.set_initial_state(h.data(), c.data());
}

/// The sizes a stream's arrays are checked against: inputs and outputs per row and step.
struct StepSizes {
    size_t input, output;
};
StepSizes step_sizes(const streamrnn_stream& stream) noexcept
{
    if (stream.sequential)
        return {static_cast<size_t>(stream.sequential->model().input_size()),
                static_cast<size_t>(stream.sequential->model().output_size())};
    const ModelSpec& spec = stream.stream->model().spec();
    return {static_cast<size_t>(spec.input_size), static_cast<size_t>(spec.output_size())};
}

/// Checks that the array `name` of `count` floats is `expected` long, of `shape` (for the message).
streamrnn_status check_count(const char* function, const char* name, size_t count, size_t expected,
                             const char* shape) noexcept
{
    if (count != expected)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s: expected %zu floats (%s), got %zu", function, name, expected,
                       shape, count);
    return STREAMRNN_OK;
}

/// The status of a stream call that ran (`done`) or found the stream in use on another thread.
streamrnn_status ran(const char* function, const streamrnn_stream& stream, bool done) noexcept
{
    if (done)
        return STREAMRNN_OK;
    const char* holder = stream.with([](const auto& s) { return s.busy_with(); });
    return failure(STREAMRNN_ERROR_BUSY, "%s: another thread is in %s on this stream, which is for one thread at a time",
                   function, holder ? holder : "a call");
}

/// Checks the arguments of a state access: the state `which` of `stream`, `count` floats.
streamrnn_status check_state(const char* function, const streamrnn_stream* stream, streamrnn_state which,
                             const float* values, size_t count) noexcept
{
    if (!stream || !values)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s is null", function, stream ? "values" : "stream");
    const bool cell_state = which == STREAMRNN_STATE_C;
    const size_t c_size = stream->with([](const auto& s) { return s.c_size(); });
    if (which != STREAMRNN_STATE_H && !(cell_state && c_size > 0))
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: which: this model has no such state", function);
    const size_t size = cell_state ? c_size : stream->with([](const auto& s) { return s.h_size(); });
    return check_count(function, "count", count, size, "L x B x state width");
}

/// Checks the arrays of `steps` steps of a stream's rows: x of x_count floats, y of y_count.
streamrnn_status check_steps(const char* function, const streamrnn_stream* stream, size_t steps, const float* x,
                             size_t x_count, const float* y, size_t y_count) noexcept
{
    if (!stream || !x || !y)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s is null", function, !stream ? "stream" : !x ? "x" : "y");
    const auto B = static_cast<size_t>(stream->with([](const auto& s) { return s.batch(); }));
    const auto [I, O] = step_sizes(*stream);
    // The engine indexes arrays with ptrdiff_t; no real array is longer, but a wrong `steps` could
    // make the products below wrap. B * I and B * O are below 2^44, so 64 bits hold the bound.
    const unsigned long long widest = static_cast<unsigned long long>(B) * std::max(I, O);
    if (steps > static_cast<unsigned long long>(PTRDIFF_MAX) / widest)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: steps: %zu steps of %zu streams are more than memory holds",
                       function, steps, B);
    if (streamrnn_status status = check_count(function, "x_count", x_count, steps * B * I, "steps x B x I"))
        return status;
    return check_count(function, "y_count", y_count, steps * B * O, "steps x B x O");
}

/// The status of a pool call; `ids` (or null) the call's ids, for the message of a refused one.
streamrnn_status pooled(const char* function, const streamrnn::PoolResult& result,
                        const streamrnn_id* ids = nullptr) noexcept
{
    using streamrnn::PoolStatus;
    const char* text = streamrnn::pool_status_text(result.status);
    const unsigned long long id = ids && result.at >= 0 ? ids[result.at] : 0;
    switch (result.status) {
    case PoolStatus::ok: return STREAMRNN_OK;
    case PoolStatus::busy: return failure(STREAMRNN_ERROR_BUSY, "%s: %s", function, text);
    case PoolStatus::unknown_id:
        return ids ? failure(STREAMRNN_ERROR_UNKNOWN_ID, "%s: ids[%lld] = %llu: %s", function,
                             static_cast<long long>(result.at), id, text)
                   : failure(STREAMRNN_ERROR_UNKNOWN_ID, "%s: id: %s", function, text);
    case PoolStatus::repeated_id:
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: ids[%lld] = %llu: %s", function, static_cast<long long>(result.at),
                       id, text);
    case PoolStatus::full: return failure(STREAMRNN_ERROR_FULL, "%s: %s", function, text);
    case PoolStatus::bad_snapshot: return failure(STREAMRNN_ERROR_FORMAT, "%s: data: %s", function, text);
    case PoolStatus::other_model:
    case PoolStatus::other_weights: return failure(STREAMRNN_ERROR_ARGUMENT, "%s: data: %s", function, text);
    }
    return failure(STREAMRNN_ERROR_INTERNAL, "%s: internal error: an unknown pool status", function);
}

/// Checks a pool's state access, as check_state a stream's.
streamrnn_status check_pool_state(const char* function, const streamrnn_pool* pool, streamrnn_state which,
                                  const float* values, size_t count) noexcept
{
    if (!pool || !values)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s is null", function, pool ? "values" : "pool");
    const ModelSpec& spec = pool->pool.model().spec();
    const bool cell_state = which == STREAMRNN_STATE_C;
    if (which != STREAMRNN_STATE_H && !(cell_state && spec.has_cell_state()))
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: which: this %s has no such state", function,
                       streamrnn::kind_name(spec.kind));
    const size_t size = cell_state ? pool->pool.c_size() : pool->pool.h_size();
    return check_count(function, "count", count, size, "L x state width");
}

/// Checks the arrays of `steps` steps of n streams of a pool, as check_steps a stream's.
streamrnn_status check_pool_steps(const char* function, const streamrnn_pool* pool, const streamrnn_id* ids, size_t n,
                                  size_t steps, const float* x, size_t x_count, const float* y, size_t y_count) noexcept
{
    if (!pool || (n > 0 && (!ids || !x || !y)))
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s is null", function,
                       !pool ? "pool" : !ids ? "ids" : !x ? "x" : "y");
    const auto capacity = static_cast<size_t>(pool->pool.capacity());
    if (n > capacity)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: n: %zu ids, more than the pool's %zu slots", function, n,
                       capacity);
    const ModelSpec& spec = pool->pool.model().spec();
    const auto I = static_cast<size_t>(spec.input_size), O = static_cast<size_t>(spec.output_size());
    const unsigned long long widest = static_cast<unsigned long long>(std::max<size_t>(n, 1)) * std::max(I, O);
    if (steps > static_cast<unsigned long long>(PTRDIFF_MAX) / widest)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: steps: %zu steps of %zu streams are more than memory holds",
                       function, steps, n);
    if (streamrnn_status status = check_count(function, "x_count", x_count, steps * n * I, "steps x n x I"))
        return status;
    return check_count(function, "y_count", y_count, steps * n * O, "steps x n x O");
}

/// The status of a chunked stream's call that wrote `written` steps, or -1: busy.
streamrnn_status chunked_ran(const char* function, const streamrnn::ChunkedStream& stream, Index written,
                             size_t* outputs) noexcept
{
    if (written < 0) {
        const char* holder = stream.busy_with();
        return failure(STREAMRNN_ERROR_BUSY, "%s: another thread is in %s on this stream, which is for one thread at a time",
                       function, holder ? holder : "a call");
    }
    *outputs = static_cast<size_t>(written);
    return STREAMRNN_OK;
}

/// Checks that y of y_count floats holds `steps` output steps of the stream.
streamrnn_status check_chunk_outputs(const char* function, const streamrnn::ChunkedStream& stream, size_t steps,
                                     const float* y, size_t y_count) noexcept
{
    const ModelSpec& spec = stream.model().spec();
    const size_t needed = steps * static_cast<size_t>(stream.batch()) *
                          static_cast<size_t>(spec.directions() * spec.output_size());
    if (needed > 0 && !y)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: y is null", function);
    if (y_count < needed)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: y_count: expected at least %zu floats (outputs x B x D x O), got %zu",
                       function, needed, y_count);
    return STREAMRNN_OK;
}

}  // namespace

extern "C" {

#define STREAMRNN_TEXT(x) #x
#define STREAMRNN_VERSION_TEXT(major, minor, patch)                                                               \
    STREAMRNN_TEXT(major) "." STREAMRNN_TEXT(minor) "." STREAMRNN_TEXT(patch)

const char* streamrnn_version(void)
{
    return STREAMRNN_VERSION_TEXT(STREAMRNN_VERSION_MAJOR, STREAMRNN_VERSION_MINOR, STREAMRNN_VERSION_PATCH);
}

const char* streamrnn_last_error(void) { return last_error; }

streamrnn_status streamrnn_model_load_file(const char* path, streamrnn_model** model)
{
    STREAMRNN_REQUIRE(path);
    STREAMRNN_REQUIRE(model);
    return guarded([&] {
        streamrnn::LoadedModel read;
        return loaded(streamrnn::try_load_any_model(std::string(path), read), read, model);
    });
}

streamrnn_status streamrnn_model_load_buffer(const void* data, size_t size, streamrnn_model** model)
{
    STREAMRNN_REQUIRE(data);
    STREAMRNN_REQUIRE(model);
    return guarded([&] {
        streamrnn::LoadedModel read;
        return loaded(streamrnn::try_load_any_model(data, size, read), read, model);
    });
}

void streamrnn_model_free(streamrnn_model* model) { delete model; }

streamrnn_status streamrnn_model_load_weights(streamrnn_model* model, const streamrnn_model* from)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(from);
    // Pairs of the same architecture, block by block for whole models.
    std::vector<std::pair<streamrnn::Trainable*, const streamrnn::Trainable*>> pairs;
    std::vector<std::pair<streamrnn::Model*, const streamrnn::Model*>> recurrent_pairs;
    bool same = !model->sequential == !from->sequential;
    if (same && model->sequential) {
        const auto& to_blocks = model->sequential->blocks();
        const auto& from_blocks = from->sequential->blocks();
        same = to_blocks.size() == from_blocks.size();
        for (size_t k = 0; same && k < to_blocks.size(); ++k) {
            const streamrnn::Block& to = to_blocks[k];
            const streamrnn::Block& source = from_blocks[k];
            same = to.kind == source.kind && to.name() == source.name();
            if (same && to.kind == streamrnn::Block::Kind::recurrent) {
                same = to.recurrent->spec() == source.recurrent->spec();
                pairs.emplace_back(to.recurrent.get(), source.recurrent.get());
                recurrent_pairs.emplace_back(to.recurrent.get(), source.recurrent.get());
            } else if (same && to.kind == streamrnn::Block::Kind::linear) {
                same = to.linear->in_features() == source.linear->in_features() &&
                       to.linear->out_features() == source.linear->out_features() &&
                       to.linear->has_bias() == source.linear->has_bias();
                pairs.emplace_back(to.linear.get(), source.linear.get());
            } else if (same) {
                same = to.function == source.function;
            }
        }
    } else if (same) {
        same = from->model->spec() == model->model->spec();
        pairs.emplace_back(model->model.get(), from->model.get());
        recurrent_pairs.emplace_back(model->model.get(), from->model.get());
    }
    if (!same)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: from: a model of another architecture than the model's", __func__);
    return guarded([&] {
        for (auto& [to, source] : pairs) {
            const streamrnn::Trainable::Weights weights = source->weights();
            to->set_parameters(weights.data());
        }
        for (auto& [to, source] : recurrent_pairs)
            copy_initial_state(*source, *to);
        return STREAMRNN_OK;
    });
}

streamrnn_status streamrnn_model_sizes(const streamrnn_model* model, streamrnn_sizes* sizes)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(sizes);
    if (model->sequential) {
        // The whole model's steps, and its recurrent blocks' state one after another.
        const streamrnn::Sequential& whole = *model->sequential;
        *sizes = streamrnn_sizes{};
        sizes->input_size = static_cast<size_t>(whole.input_size());
        sizes->output_size = static_cast<size_t>(whole.output_size());
        for (size_t k : whole.recurrent_blocks()) {
            const ModelSpec& spec = whole.blocks()[k].recurrent->spec();
            const auto L = static_cast<size_t>(spec.num_layers);
            sizes->hidden_size = std::max(sizes->hidden_size, static_cast<size_t>(spec.hidden_size));
            sizes->num_layers += L;
            sizes->h_size += L * static_cast<size_t>(spec.output_size());
            sizes->c_size += spec.has_cell_state() ? L * static_cast<size_t>(spec.hidden_size) : 0;
        }
        sizes->bidirectional = whole.bidirectional() ? 1 : 0;
        sizes->batch_first = whole.batch_first() ? 1 : 0;
        return STREAMRNN_OK;
    }
    const ModelSpec& spec = model->model->spec();
    const auto L = static_cast<size_t>(spec.num_layers);
    sizes->input_size = static_cast<size_t>(spec.input_size);
    sizes->output_size = static_cast<size_t>(spec.output_size());
    sizes->hidden_size = static_cast<size_t>(spec.hidden_size);
    sizes->num_layers = L;
    sizes->h_size = L * sizes->output_size;
    sizes->c_size = spec.has_cell_state() ? L * sizes->hidden_size : 0;
    sizes->bidirectional = spec.bidirectional ? 1 : 0;
    sizes->batch_first = spec.batch_first ? 1 : 0;
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_model_mode(const streamrnn_model* model, const char** mode)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(mode);
    *mode = model->sequential ? "Sequential" : streamrnn::kind_name(model->model->spec().kind);
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_stream_create(const streamrnn_model* model, size_t batch, streamrnn_stream** stream)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(stream);
    if (model->sequential ? model->sequential->bidirectional() : model->model->spec().bidirectional)
        return failure(STREAMRNN_ERROR_ARGUMENT,
                       "%s: a bidirectional model needs the whole sequence (its reverse "
                       "direction starts at the end) and cannot stream", __func__);
    constexpr size_t max_batch = size_t(1) << 24;
    if (batch < 1 || batch > max_batch)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: batch: expected 1 to %zu streams, got %zu", __func__, max_batch,
                       batch);
    return guarded([&] {
        auto made = std::make_unique<streamrnn_stream>();
        if (model->sequential)
            made->sequential.emplace(model->sequential, static_cast<Index>(batch));
        else
            made->stream.emplace(model->model, static_cast<Index>(batch));
        *stream = made.release();
        return STREAMRNN_OK;
    });
}

void streamrnn_stream_free(streamrnn_stream* stream) { delete stream; }

streamrnn_status streamrnn_stream_batch(const streamrnn_stream* stream, size_t* batch)
{
    STREAMRNN_REQUIRE(stream);
    STREAMRNN_REQUIRE(batch);
    *batch = static_cast<size_t>(stream->with([](const auto& s) { return s.batch(); }));
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_stream_step(streamrnn_stream* stream, const float* x, size_t x_count, float* y,
                                       size_t y_count)
{
    if (streamrnn_status status = check_steps(__func__, stream, 1, x, x_count, y, y_count))
        return status;
    return ran(__func__, *stream, stream->with([&](auto& s) { return s.step(x, y); }));
}

streamrnn_status streamrnn_stream_process(streamrnn_stream* stream, size_t steps, const float* x, size_t x_count,
                                          float* y, size_t y_count)
{
    if (streamrnn_status status = check_steps(__func__, stream, steps, x, x_count, y, y_count))
        return status;
    return ran(__func__, *stream,
               steps == 0 || stream->with([&](auto& s) { return s.process(x, y, static_cast<Index>(steps)); }));
}

streamrnn_status streamrnn_stream_get_state(const streamrnn_stream* stream, streamrnn_state which, float* values,
                                            size_t count)
{
    if (streamrnn_status status = check_state(__func__, stream, which, values, count))
        return status;
    const bool cell = which == STREAMRNN_STATE_C;
    return ran(__func__, *stream,
               stream->with([&](const auto& s) { return s.get_state(cell ? nullptr : values, cell ? values : nullptr); }));
}

streamrnn_status streamrnn_stream_set_state(streamrnn_stream* stream, streamrnn_state which, const float* values,
                                            size_t count)
{
    if (streamrnn_status status = check_state(__func__, stream, which, values, count))
        return status;
    const bool cell = which == STREAMRNN_STATE_C;
    return ran(__func__, *stream,
               stream->with([&](auto& s) { return s.set_state(cell ? nullptr : values, cell ? values : nullptr); }));
}

streamrnn_status streamrnn_stream_reset(streamrnn_stream* stream)
{
    STREAMRNN_REQUIRE(stream);
    return ran(__func__, *stream, stream->with([](auto& s) { return s.reset(); }));
}

streamrnn_status streamrnn_stream_reset_row(streamrnn_stream* stream, size_t row)
{
    STREAMRNN_REQUIRE(stream);
    const auto batch = static_cast<size_t>(stream->with([](const auto& s) { return s.batch(); }));
    if (row >= batch)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: row: expected 0 to %zu, got %zu", __func__, batch - 1, row);
    return ran(__func__, *stream, stream->with([&](auto& s) { return s.reset(static_cast<Index>(row)); }));
}

streamrnn_status streamrnn_stream_set_flush_denormals(streamrnn_stream* stream, int flush)
{
    STREAMRNN_REQUIRE(stream);
    stream->with([&](auto& s) { s.set_flush_denormals(flush != 0); });
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_pool_create(const streamrnn_model* model, size_t capacity, streamrnn_pool** pool)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(pool);
    if (model->sequential)
        return recurrent_only(__func__);
    if (model->model->spec().bidirectional)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: model: a bidirectional model needs the whole sequence (its reverse "
                       "direction starts at the end) and cannot stream", __func__);
    constexpr size_t max_capacity = size_t(1) << 24;
    if (capacity < 1 || capacity > max_capacity)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: capacity: expected 1 to %zu streams, got %zu", __func__,
                       max_capacity, capacity);
    return guarded([&] {
        *pool = new streamrnn_pool{streamrnn::Pool(model->model, static_cast<Index>(capacity))};
        return STREAMRNN_OK;
    });
}

void streamrnn_pool_free(streamrnn_pool* pool) { delete pool; }

streamrnn_status streamrnn_pool_capacity(const streamrnn_pool* pool, size_t* capacity)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(capacity);
    *capacity = static_cast<size_t>(pool->pool.capacity());
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_pool_size(const streamrnn_pool* pool, size_t* open)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(open);
    *open = static_cast<size_t>(pool->pool.size());
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_pool_open(streamrnn_pool* pool, streamrnn_id* id)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(id);
    return pooled(__func__, pool->pool.open(id));
}

streamrnn_status streamrnn_pool_close(streamrnn_pool* pool, streamrnn_id id)
{
    STREAMRNN_REQUIRE(pool);
    return pooled(__func__, pool->pool.close(id));
}

streamrnn_status streamrnn_pool_fork(streamrnn_pool* pool, streamrnn_id from, streamrnn_id* id)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(id);
    return pooled(__func__, pool->pool.fork(from, id));
}

streamrnn_status streamrnn_pool_step(streamrnn_pool* pool, const streamrnn_id* ids, size_t n, const float* x,
                                     size_t x_count, float* y, size_t y_count)
{
    if (streamrnn_status status = check_pool_steps(__func__, pool, ids, n, 1, x, x_count, y, y_count))
        return status;
    return pooled(__func__, pool->pool.step(ids, static_cast<Index>(n), x, y), ids);
}

streamrnn_status streamrnn_pool_process(streamrnn_pool* pool, const streamrnn_id* ids, size_t n, size_t steps,
                                        const float* x, size_t x_count, float* y, size_t y_count)
{
    if (streamrnn_status status = check_pool_steps(__func__, pool, ids, n, steps, x, x_count, y, y_count))
        return status;
    return pooled(__func__, pool->pool.process(ids, static_cast<Index>(n), x, y, static_cast<Index>(steps)), ids);
}

streamrnn_status streamrnn_pool_reset(streamrnn_pool* pool, const streamrnn_id* ids, size_t n)
{
    STREAMRNN_REQUIRE(pool);
    if (n > 0 && !ids)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: ids is null", __func__);
    if (n > static_cast<size_t>(pool->pool.capacity()))
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: n: %zu ids, more than the pool's %zu slots", __func__, n,
                       static_cast<size_t>(pool->pool.capacity()));
    return pooled(__func__, pool->pool.reset(ids, static_cast<Index>(n)), ids);
}

streamrnn_status streamrnn_pool_get_state(const streamrnn_pool* pool, streamrnn_id id, streamrnn_state which,
                                          float* values, size_t count)
{
    if (streamrnn_status status = check_pool_state(__func__, pool, which, values, count))
        return status;
    const bool cell = which == STREAMRNN_STATE_C;
    return pooled(__func__, pool->pool.get_state(id, cell ? nullptr : values, cell ? values : nullptr));
}

streamrnn_status streamrnn_pool_set_state(streamrnn_pool* pool, streamrnn_id id, streamrnn_state which,
                                          const float* values, size_t count)
{
    if (streamrnn_status status = check_pool_state(__func__, pool, which, values, count))
        return status;
    const bool cell = which == STREAMRNN_STATE_C;
    return pooled(__func__, pool->pool.set_state(id, cell ? nullptr : values, cell ? values : nullptr));
}

streamrnn_status streamrnn_pool_snapshot_size(const streamrnn_pool* pool, size_t* size)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(size);
    *size = pool->pool.snapshot_size();
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_pool_snapshot(const streamrnn_pool* pool, streamrnn_id id, void* buffer, size_t size)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(buffer);
    if (size < pool->pool.snapshot_size())
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: size: expected at least %zu bytes, got %zu", __func__,
                       pool->pool.snapshot_size(), size);
    return pooled(__func__, pool->pool.snapshot(id, buffer, size));
}

streamrnn_status streamrnn_pool_restore(streamrnn_pool* pool, const void* data, size_t size, streamrnn_id* id)
{
    STREAMRNN_REQUIRE(pool);
    STREAMRNN_REQUIRE(data);
    STREAMRNN_REQUIRE(id);
    return pooled(__func__, pool->pool.restore(data, size, id));
}

streamrnn_status streamrnn_chunked_stream_create(const streamrnn_model* model, size_t batch, size_t chunk,
                                                 size_t lookahead, streamrnn_chunked_stream** stream)
{
    STREAMRNN_REQUIRE(model);
    STREAMRNN_REQUIRE(stream);
    if (model->sequential)
        return recurrent_only(__func__);
    constexpr size_t max_batch = size_t(1) << 24, max_steps = size_t(1) << 24;
    if (batch < 1 || batch > max_batch)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: batch: expected 1 to %zu streams, got %zu", __func__, max_batch,
                       batch);
    if (chunk < 1 || chunk > max_steps || lookahead > max_steps)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: %s: expected %s to %zu steps, got %zu", __func__,
                       chunk < 1 || chunk > max_steps ? "chunk" : "lookahead", chunk < 1 ? "1" : "0", max_steps,
                       chunk < 1 || chunk > max_steps ? chunk : lookahead);
    return guarded([&] {
        *stream = new streamrnn_chunked_stream{streamrnn::ChunkedStream(
            model->model, static_cast<Index>(batch), {static_cast<Index>(chunk), static_cast<Index>(lookahead)})};
        return STREAMRNN_OK;
    });
}

void streamrnn_chunked_stream_free(streamrnn_chunked_stream* stream) { delete stream; }

streamrnn_status streamrnn_chunked_stream_completed_by(const streamrnn_chunked_stream* stream, size_t steps,
                                                       size_t* outputs)
{
    STREAMRNN_REQUIRE(stream);
    STREAMRNN_REQUIRE(outputs);
    if (steps > static_cast<size_t>(PTRDIFF_MAX) / 2)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: steps: %zu steps are more than memory holds", __func__, steps);
    *outputs = static_cast<size_t>(stream->stream.completed_by(static_cast<Index>(steps)));
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_chunked_stream_pending(const streamrnn_chunked_stream* stream, size_t* steps)
{
    STREAMRNN_REQUIRE(stream);
    STREAMRNN_REQUIRE(steps);
    *steps = static_cast<size_t>(stream->stream.pending());
    return STREAMRNN_OK;
}

streamrnn_status streamrnn_chunked_stream_process(streamrnn_chunked_stream* stream, size_t steps, const float* x,
                                                  size_t x_count, float* y, size_t y_count, size_t* outputs)
{
    STREAMRNN_REQUIRE(stream);
    STREAMRNN_REQUIRE(outputs);
    const streamrnn::ChunkedStream& s = stream->stream;
    const auto B = static_cast<size_t>(s.batch()), I = static_cast<size_t>(s.model().spec().input_size);
    if (steps > 0 && !x)
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: x is null", __func__);
    if (steps > static_cast<unsigned long long>(PTRDIFF_MAX) / 2 / (B * std::max<size_t>(I, 1)))
        return failure(STREAMRNN_ERROR_ARGUMENT, "%s: steps: %zu steps of %zu streams are more than memory holds",
                       __func__, steps, B);
    if (streamrnn_status status = check_count(__func__, "x_count", x_count, steps * B * I, "steps x B x I"))
        return status;
    const auto done = static_cast<size_t>(s.completed_by(static_cast<Index>(steps)));
    if (streamrnn_status status = check_chunk_outputs(__func__, s, done, y, y_count))
        return status;
    return chunked_ran(__func__, s, stream->stream.process(x, static_cast<Index>(steps), y), outputs);
}

streamrnn_status streamrnn_chunked_stream_flush(streamrnn_chunked_stream* stream, float* y, size_t y_count,
                                                size_t* outputs)
{
    STREAMRNN_REQUIRE(stream);
    STREAMRNN_REQUIRE(outputs);
    if (streamrnn_status status =
            check_chunk_outputs(__func__, stream->stream, static_cast<size_t>(stream->stream.pending()), y, y_count))
        return status;
    return chunked_ran(__func__, stream->stream, stream->stream.flush(y), outputs);
}

streamrnn_status streamrnn_chunked_stream_reset(streamrnn_chunked_stream* stream)
{
    STREAMRNN_REQUIRE(stream);
    size_t unused = 0;
    return chunked_ran(__func__, stream->stream, stream->stream.reset() ? 0 : -1, &unused);
}

}  // extern "C"
