// cpp/include/streamrnn/chunked.hpp: latency-controlled chunks of a bidirectional model (LC-BLSTM,
// Zhang et al. 2016): the reverse direction runs over each chunk and a short look-ahead only, so
// that the model's outputs come a bounded delay after its inputs. Part of streamrnn, MIT licence.
#pragma once

#include "model.hpp"

#include <cstdint>

namespace streamrnn {

/// How a sequence is cut: chunks of `chunk` steps (>= 1), each with the `lookahead` steps (>= 0)
/// after it.
struct Chunking {
    Index chunk = 1;
    Index lookahead = 0;
};

/// The whole-sequence forward of a bidirectional model, chunked. Per layer and chunk: the forward
/// direction carries its state from the end of the previous chunk, runs over the chunk, then over
/// the look-ahead steps from the chunk's end state without keeping that state; the reverse
/// direction starts from zeros at the last look-ahead step and runs back over the look-ahead and
/// the chunk. The next layer's inputs on the look-ahead steps are this layer's outputs there;
/// only the chunk's own steps are outputs. Each row is chunked over its own length.
///   x, y, lengths: as Model::forward's.
///   h [L * D, B, H_out], c [L * D, B, H] (LSTM, else null): in, the forward directions' initial
///   state (the reverse entries are not read); out, the forward directions' state after each
///   row's last step, and the reverse directions' at the end of their last run (the first step of
///   the row's last chunk).
/// With chunk >= T it is Model::forward. A unidirectional model is run by Model::forward (the
/// chunks change nothing there). Throws ArgumentError for a chunk < 1, a lookahead < 0 or a
/// length outside [0, T]; std::bad_alloc when the buffers of a chunk do not fit in memory.
void forward_chunked(const Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                     Chunking chunking, float* y, float* h, float* c);

}  // namespace streamrnn
