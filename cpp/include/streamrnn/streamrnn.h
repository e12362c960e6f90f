/* cpp/include/streamrnn/streamrnn.h: the C API, for programs in C and in other languages.
 * Part of streamrnn, MIT licence.
 *
 * A model is loaded from the file that Python's `model.save(path)` writes (safetensors), from a
 * path or from memory: a recurrent model, or a whole model (streamrnn.Sequential: Linear layers and
 * element-wise functions around recurrent layers, stepped as one). A stream holds the state of
 * `batch` independent streams of one model and every buffer that stepping them needs. A stream
 * starts from the model's initial state (zeros unless the file sets or learned one), and its
 * resets return to it. Every call returns a status; when it is not
 * STREAMRNN_OK, streamrnn_last_error() says why, and the call changed nothing.
 *
 * Real time: once a stream exists, streamrnn_stream_step, _process, _reset, _reset_row,
 * _get_state and _set_state allocate no memory, take no lock and block on nothing, also when
 * they fail; a real-time thread may call them.
 *
 * Threads: calls on different streams may run on different threads at once. A stream is for one
 * thread at a time: a call that overlaps another call on the same stream from a second thread
 * does nothing and returns STREAMRNN_ERROR_BUSY (it never blocks, and never corrupts the
 * stream). Models are read-only once loaded and may be shared by any number of streams and
 * threads.
 *
 * A pool (streamrnn_pool_*) holds many live streams of one model in slots, each with its own
 * id, and steps any of them together as one batch: streams open and close at any time. Its
 * step, process, reset and state calls are real-time as a stream's are; the slot calls (open,
 * close, fork, reset, the state and snapshot calls) may come from any thread, also while another
 * thread steps: they wait for the step, and a step waits for them (each copies one stream's
 * state). Two steps that overlap: the later returns STREAMRNN_ERROR_BUSY.
 *
 * Sizes, per stream (see streamrnn_sizes): I inputs and O outputs per step, and the state
 * h: [L, B, O] and (LSTM) c: [L, B, H], B the stream's batch. All arrays are float32, row-major,
 * in the machine's byte order.
 */
#ifndef STREAMRNN_STREAMRNN_H
#define STREAMRNN_STREAMRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum streamrnn_status {
    STREAMRNN_OK = 0,
    STREAMRNN_ERROR_ARGUMENT = 1, /* a null pointer, a size that does not match, an index out of range */
    STREAMRNN_ERROR_FORMAT = 2,   /* a model file that is truncated, corrupt, of another version or kind */
    STREAMRNN_ERROR_FILE = 3,     /* the system could not open or read the file (the message has errno's text) */
    STREAMRNN_ERROR_MEMORY = 4,   /* out of memory */
    STREAMRNN_ERROR_INTERNAL = 5, /* anything else: a bug in streamrnn, please report it */
    STREAMRNN_ERROR_BUSY = 6,     /* another thread is in a call on the same stream: nothing was done */
    STREAMRNN_ERROR_UNKNOWN_ID = 7, /* a pool has no open stream of that id (closed, or never opened) */
    STREAMRNN_ERROR_FULL = 8        /* every slot of a pool is taken */
} streamrnn_status;

/* Which state tensor of a stream. */
typedef enum streamrnn_state {
    STREAMRNN_STATE_H = 0, /* [L, B, O]: the hidden state (every kind) */
    STREAMRNN_STATE_C = 1  /* [L, B, H]: the cell state (LSTM only) */
} streamrnn_state;

typedef struct streamrnn_model streamrnn_model;
typedef struct streamrnn_stream streamrnn_stream;
typedef struct streamrnn_pool streamrnn_pool;
typedef struct streamrnn_chunked_stream streamrnn_chunked_stream;
/* A stream of a pool; never reused within the pool. */
typedef uint64_t streamrnn_id;

/* The sizes of a model, in floats. A whole model's are its inputs and outputs per step, and its
 * recurrent blocks' state one after another: h_size and c_size are their sums (num_layers too,
 * hidden_size the largest). */
typedef struct streamrnn_sizes {
    size_t input_size;  /* I: inputs per step and stream */
    size_t output_size; /* O: outputs per step and stream (the projection size when there is one) */
    size_t hidden_size; /* H */
    size_t num_layers;  /* L */
    size_t h_size;      /* floats of h per stream: L * O */
    size_t c_size;      /* floats of c per stream: L * H for an LSTM, else 0 */
    int bidirectional;  /* 1 for a bidirectional model: it runs whole sequences only, never streams */
    int batch_first;    /* 1 when process() reads and writes [B, T, ...]; 0 for [T, B, ...] */
} streamrnn_sizes;

/* "0.1.0". */
const char* streamrnn_version(void);

/* The message of the last call on this thread that failed; "" when none has. The text stays
 * valid until the next failing call on this thread. */
const char* streamrnn_last_error(void);

/* Loads a model file. On success *model is a new model, to be freed with streamrnn_model_free. */
streamrnn_status streamrnn_model_load_file(const char* path, streamrnn_model** model);
/* Loads a model from the `size` bytes of a model file at `data` (any alignment); the bytes are
 * copied, so they may be freed after the call. */
streamrnn_status streamrnn_model_load_buffer(const void* data, size_t size, streamrnn_model** model);
/* Frees a model; null is allowed. Streams made from it keep what they need: free in any order. */
void streamrnn_model_free(streamrnn_model* model);

/* Gives `model` the weights of `from`, a model of the same architecture (a tuned copy, or the same
 * model saved again): all of them at once, as a new version. Streams of `model` may be stepping on
 * other threads meanwhile: each of their steps uses the old weights or the new ones, never a mix,
 * and they still allocate, free and lock nothing (this call does, on its own thread). ARGUMENT
 * when the architectures differ. */
streamrnn_status streamrnn_model_load_weights(streamrnn_model* model, const streamrnn_model* from);

streamrnn_status streamrnn_model_sizes(const streamrnn_model* model, streamrnn_sizes* sizes);
/* "LSTM", "GRU", "RNN_TANH", "RNN_RELU" or "Sequential" (a whole model), a static string. */
streamrnn_status streamrnn_model_mode(const streamrnn_model* model, const char** mode);

/* Creates `batch` streams of `model` (1 <= batch <= 2^24), state zero: every allocation that
 * stepping them needs happens here. A bidirectional model cannot stream (ARGUMENT). */
streamrnn_status streamrnn_stream_create(const streamrnn_model* model, size_t batch, streamrnn_stream** stream);
/* Frees a stream; null is allowed. */
void streamrnn_stream_free(streamrnn_stream* stream);
streamrnn_status streamrnn_stream_batch(const streamrnn_stream* stream, size_t* batch);

/* One step of every stream: x [B, I] in, y [B, O] out. The counts are the lengths of the
 * arrays, checked against B * I and B * O. A stream of one row takes the engine's one-row path,
 * the shortest there is. */
streamrnn_status streamrnn_stream_step(streamrnn_stream* stream, const float* x, size_t x_count, float* y,
                                       size_t y_count);
/* `steps` steps of every stream: x [T, B, I] in, y [T, B, O] out ([B, T, ...] for a batch_first
 * model), T = steps; the counts are checked against T * B * I and T * B * O. Equals `steps`
 * calls of step. */
streamrnn_status streamrnn_stream_process(streamrnn_stream* stream, size_t steps, const float* x, size_t x_count,
                                          float* y, size_t y_count);

/* Copies the state out of, or into, the stream; `count` must be its size (B * h_size or
 * B * c_size). C of a model without a cell state is an ARGUMENT error. */
streamrnn_status streamrnn_stream_get_state(const streamrnn_stream* stream, streamrnn_state which, float* values,
                                            size_t count);
streamrnn_status streamrnn_stream_set_state(streamrnn_stream* stream, streamrnn_state which, const float* values,
                                            size_t count);
/* Zeros the state of every stream, or of stream `row` alone (0 <= row < B). */
streamrnn_status streamrnn_stream_reset(streamrnn_stream* stream);
streamrnn_status streamrnn_stream_reset_row(streamrnn_stream* stream, size_t row);

/* Whether step and process flush subnormal floats to zero while they run (1, the default) or
 * not (0); the thread's floating point mode is restored before they return. */
streamrnn_status streamrnn_stream_set_flush_denormals(streamrnn_stream* stream, int flush);

/* A stream of `batch` rows of a model in chunks of `chunk` steps, each with the `lookahead` steps
 * after it (latency-controlled; a bidirectional model streams only so): every buffer is made here.
 * A chunk's outputs come out once its look-ahead has arrived, so at most chunk + lookahead - 1
 * steps after their input; fed a sequence in any pieces and flushed, the outputs are those of
 * the chunked whole-sequence forward (chunked.hpp). chunk >= 1. Real time as a stream, threads
 * as a stream's. Outputs have D * O floats per step and row (both directions). */
streamrnn_status streamrnn_chunked_stream_create(const streamrnn_model* model, size_t batch, size_t chunk,
                                                 size_t lookahead, streamrnn_chunked_stream** stream);
void streamrnn_chunked_stream_free(streamrnn_chunked_stream* stream);
/* The output steps that process of `steps` more steps writes (the chunks completed by then), and
 * the steps that arrived and whose outputs have not been returned (what flush writes). */
streamrnn_status streamrnn_chunked_stream_completed_by(const streamrnn_chunked_stream* stream, size_t steps,
                                                       size_t* outputs);
streamrnn_status streamrnn_chunked_stream_pending(const streamrnn_chunked_stream* stream, size_t* steps);
/* `steps` more steps: x [T, B, I] ([B, T, I] for a batch_first model), x_count = T * B * I; the
 * completed chunks' outputs into y, [T_done, B, D * O] (alike), y_count at least T_done * B * D * O
 * for T_done = completed_by(T); *outputs = T_done. */
streamrnn_status streamrnn_chunked_stream_process(streamrnn_chunked_stream* stream, size_t steps, const float* x,
                                                  size_t x_count, float* y, size_t y_count, size_t* outputs);
/* End of input: the outputs of the pending steps into y (y_count at least pending * B * D * O);
 * *outputs = pending. Then the stream starts afresh, as after reset. */
streamrnn_status streamrnn_chunked_stream_flush(streamrnn_chunked_stream* stream, float* y, size_t y_count,
                                                size_t* outputs);
/* Zeros the state and drops the pending steps. */
streamrnn_status streamrnn_chunked_stream_reset(streamrnn_chunked_stream* stream);

/* A pool of `capacity` slots (1 <= capacity <= 2^24) for streams of a unidirectional recurrent model
 * (not a whole model: ARGUMENT): every allocation that stepping them needs happens here. */
streamrnn_status streamrnn_pool_create(const streamrnn_model* model, size_t capacity, streamrnn_pool** pool);
/* Frees a pool; null is allowed. */
void streamrnn_pool_free(streamrnn_pool* pool);
streamrnn_status streamrnn_pool_capacity(const streamrnn_pool* pool, size_t* capacity);
/* Streams open now. */
streamrnn_status streamrnn_pool_size(const streamrnn_pool* pool, size_t* open);

/* A new stream at the initial state (zeros); FULL when every slot is taken. */
streamrnn_status streamrnn_pool_open(streamrnn_pool* pool, streamrnn_id* id);
/* Frees the stream's slot; the id is never valid again. */
streamrnn_status streamrnn_pool_close(streamrnn_pool* pool, streamrnn_id id);
/* A new stream with a copy of the state of `from`. */
streamrnn_status streamrnn_pool_fork(streamrnn_pool* pool, streamrnn_id from, streamrnn_id* id);

/* One step of the n streams named by ids: x [n, I] in, y [n, O] out, rows in the ids' order. An
 * unknown id (UNKNOWN_ID) or one named twice (ARGUMENT) refuses the call: no stream changes. */
streamrnn_status streamrnn_pool_step(streamrnn_pool* pool, const streamrnn_id* ids, size_t n, const float* x,
                                     size_t x_count, float* y, size_t y_count);
/* `steps` steps of the n streams: x [T, n, I] in, y [T, n, O] out ([n, T, ...] for a batch_first
 * model), checked as step is. */
streamrnn_status streamrnn_pool_process(streamrnn_pool* pool, const streamrnn_id* ids, size_t n, size_t steps,
                                        const float* x, size_t x_count, float* y, size_t y_count);
/* The n named streams back to the initial state. */
streamrnn_status streamrnn_pool_reset(streamrnn_pool* pool, const streamrnn_id* ids, size_t n);
/* Copies one stream's state out or in: `count` must be h_size or c_size (streamrnn_sizes). */
streamrnn_status streamrnn_pool_get_state(const streamrnn_pool* pool, streamrnn_id id, streamrnn_state which,
                                          float* values, size_t count);
streamrnn_status streamrnn_pool_set_state(streamrnn_pool* pool, streamrnn_id id, streamrnn_state which,
                                          const float* values, size_t count);

/* The bytes of every snapshot of the pool's streams. */
streamrnn_status streamrnn_pool_snapshot_size(const streamrnn_pool* pool, size_t* size);
/* Writes a stream's snapshot (its state, the model's architecture and a digest of its weights, in
 * a versioned form the same on every host) into `buffer` of `size` bytes, at least snapshot_size. */
streamrnn_status streamrnn_pool_snapshot(const streamrnn_pool* pool, streamrnn_id id, void* buffer, size_t size);
/* A new stream from a snapshot taken from any pool of the same model (on any host): FORMAT for
 * bytes that are not a snapshot, ARGUMENT for a snapshot of another model, FULL for a full pool. */
streamrnn_status streamrnn_pool_restore(streamrnn_pool* pool, const void* data, size_t size, streamrnn_id* id);

#ifdef __cplusplus
}
#endif

#endif /* STREAMRNN_STREAMRNN_H */
