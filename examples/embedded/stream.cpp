// examples/embedded/stream.cpp: streams a file of samples through a model, in C++, and prints the
// outputs. Part of streamrnn, MIT licence.
//
//   stream_cpp MODEL INPUT [CHUNK]
// Arguments and output as examples/embedded/stream.c: one line per step, the O outputs as "%.9g".
// MODEL is a recurrent model or a whole one (a Sequential: Linear layers and functions around
// recurrent layers), which step alike.
#include <streamrnn/model_file.hpp>
#include <streamrnn/sequential.hpp>
#include <streamrnn/stream.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

int main(int argc, char** argv)
{
    if (argc < 3 || argc > 4) {
        std::fprintf(stderr, "usage: stream_cpp MODEL INPUT [CHUNK]\n");
        return 2;
    }
    const long chunk = argc == 4 ? std::strtol(argv[3], nullptr, 10) : 1;
    if (chunk < 1) {
        std::fprintf(stderr, "stream_cpp: CHUNK must be a positive number of steps\n");
        return 2;
    }
    try {
        // A stream shares the model: several streams (threads, users) may step one model. It
        // allocates all it needs; step and process never do.
        const streamrnn::LoadedModel loaded = streamrnn::load_any_model(argv[1]);
        std::optional<streamrnn::Stream> recurrent;
        std::optional<streamrnn::SequentialStream> whole;
        streamrnn::Index I, O;
        if (loaded.sequential) {
            whole.emplace(loaded.sequential, 1);
            I = loaded.sequential->input_size();
            O = loaded.sequential->output_size();
        } else {
            recurrent.emplace(loaded.model, 1);
            I = loaded.model->spec().input_size;
            O = loaded.model->spec().output_size();
        }
        auto step = [&](const float* x, float* y) { return whole ? whole->step(x, y) : recurrent->step(x, y); };
        auto process = [&](const float* x, float* y, streamrnn::Index n) {
            return whole ? whole->process(x, y, n) : recurrent->process(x, y, n);
        };

        std::ifstream file(argv[2], std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        if (!file.good() && !file.eof()) {
            std::fprintf(stderr, "stream_cpp: cannot read %s\n", argv[2]);
            return 1;
        }
        if (bytes.size() % (sizeof(float) * static_cast<std::size_t>(I)) != 0) {
            std::fprintf(stderr, "stream_cpp: %s: expected a file of float32 values, %ld per step\n", argv[2],
                         static_cast<long>(I));
            return 1;
        }
        const auto steps = static_cast<streamrnn::Index>(bytes.size() / sizeof(float) / static_cast<std::size_t>(I));
        std::vector<float> x(static_cast<std::size_t>(steps * I)), y(static_cast<std::size_t>(steps * O));
        std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(x.data()));

        for (streamrnn::Index t = 0; t < steps; t += chunk) {
            const streamrnn::Index n = std::min<streamrnn::Index>(chunk, steps - t);
            if (n == 1)
                step(x.data() + t * I, y.data() + t * O);
            else
                process(x.data() + t * I, y.data() + t * O, n);
        }
        for (streamrnn::Index t = 0; t < steps; ++t) {
            for (streamrnn::Index k = 0; k < O; ++k)
                std::printf(k ? " %.9g" : "%.9g", static_cast<double>(y[static_cast<std::size_t>(t * O + k)]));
            std::printf("\n");
        }
    } catch (const std::exception& error) {
        std::fprintf(stderr, "stream_cpp: %s\n", error.what());
        return 1;
    }
    return 0;
}
