/* examples/embedded/stream.c: streams a file of samples through a model, in C, and prints the
 * outputs. Part of streamrnn, MIT licence.
 *
 *   stream_c [-t] MODEL INPUT [CHUNK]
 *     -t     also report the time per step of the streaming loop, on stderr
 *     MODEL  a model file, as Python's `model.save(path)` writes it
 *     INPUT  raw float32 values, I per step (numpy: x.astype("<f4").tofile(path))
 *     CHUNK  steps per call: 1 (the default) calls streamrnn_stream_step per step, more calls
 *            streamrnn_stream_process on chunks of that many steps
 * Prints one line per step: the model's O outputs, as "%.9g" (enough digits to read back the
 * exact float32). The same as `python -m streamrnn run MODEL INPUT` prints.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */

#include <streamrnn/streamrnn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reports a failed call and leaves. */
static int fail(const char* what)
{
    fprintf(stderr, "stream_c: %s: %s\n", what, streamrnn_last_error());
    return 1;
}

/* The whole file as floats; *count is how many. Null when it cannot be read. */
static float* read_floats(const char* path, size_t* count)
{
    FILE* file = fopen(path, "rb");
    float* values = NULL;
    long bytes;
    if (!file)
        return NULL;
    if (fseek(file, 0, SEEK_END) == 0 && (bytes = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0) {
        *count = (size_t)bytes / sizeof(float);
        values = malloc(*count ? *count * sizeof(float) : 1);
        if (values && fread(values, sizeof(float), *count, file) != *count) {
            free(values);
            values = NULL;
        }
    }
    fclose(file);
    return values;
}

int main(int argc, char** argv)
{
    streamrnn_model* model = NULL;
    streamrnn_stream* stream = NULL;
    streamrnn_sizes sizes;
    size_t count = 0, steps, chunk = 1, t, k;
    float *x, *y;
    struct timespec start, end;
    const int timed = argc > 1 && strcmp(argv[1], "-t") == 0;

    argc -= timed;
    argv += timed;
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: stream_c [-t] MODEL INPUT [CHUNK]\n");
        return 2;
    }
    if (argc == 4 && (chunk = strtoul(argv[3], NULL, 10)) == 0) {
        fprintf(stderr, "stream_c: CHUNK must be a positive number of steps\n");
        return 2;
    }
    if (streamrnn_model_load_file(argv[1], &model) != STREAMRNN_OK)
        return fail("loading the model");
    streamrnn_model_sizes(model, &sizes);
    /* Everything the stream needs is allocated here, before the first step. */
    if (streamrnn_stream_create(model, 1, &stream) != STREAMRNN_OK)
        return fail("creating the stream");

    x = read_floats(argv[2], &count);
    if (!x || count % sizes.input_size != 0) {
        fprintf(stderr, "stream_c: %s: expected a file of float32 values, %zu per step\n", argv[2], sizes.input_size);
        return 1;
    }
    steps = count / sizes.input_size;
    y = malloc((steps ? steps : 1) * sizes.output_size * sizeof(float));
    if (!y)
        return 1;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (t = 0; t < steps; t += chunk) {
        const size_t n = steps - t < chunk ? steps - t : chunk;
        const float* in = x + t * sizes.input_size;
        float* out = y + t * sizes.output_size;
        const streamrnn_status status =
            n == 1 ? streamrnn_stream_step(stream, in, sizes.input_size, out, sizes.output_size)
                   : streamrnn_stream_process(stream, n, in, n * sizes.input_size, out, n * sizes.output_size);
        if (status != STREAMRNN_OK)
            return fail("stepping");
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (timed && steps)
        fprintf(stderr, "%zu steps, %.1f ns per step\n", steps,
                ((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec)) / (double)steps);
    for (t = 0; t < steps; ++t) {
        for (k = 0; k < sizes.output_size; ++k)
            printf(k ? " %.9g" : "%.9g", (double)y[t * sizes.output_size + k]);
        printf("\n");
    }

    free(x);
    free(y);
    streamrnn_stream_free(stream);
    streamrnn_model_free(model);
    return 0;
}
