// cpp/src/chunked.cpp: the chunked (latency-controlled) forward of a bidirectional model: the stack
// over each chunk's window of steps (stack.cpp's run_stack_chunk), its chunk's outputs kept.
// Part of streamrnn, MIT licence.
#include "streamrnn/chunked.hpp"

#include "streamrnn/errors.hpp"

#include "layer.hpp"
#include "model_access.hpp"
#include "sizes.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace streamrnn {

namespace {

void check_chunking(Chunking chunking)
{
    if (chunking.chunk < 1)
        raise(ErrorKind::argument, "chunk: expected at least 1 step, got " + std::to_string(chunking.chunk));
    if (chunking.lookahead < 0)
        raise(ErrorKind::argument, "lookahead: expected 0 or more steps, got " + std::to_string(chunking.lookahead));
}

}  // namespace

void forward_chunked(const Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                     Chunking chunking, float* y, float* h, float* c)
{
    check_chunking(chunking);
    const ModelSpec& spec = model.spec();
    if (!spec.bidirectional || chunking.chunk >= T) {  // one chunk, or nothing to cut
        model.forward(x, T, B, lengths, y, h, c);
        return;
    }
    if (lengths)
        for (Index b = 0; b < B; ++b)
            if (lengths[b] < 0 || lengths[b] > T)
                raise(ErrorKind::argument, "lengths[" + std::to_string(b) + "]: expected 0 to " + std::to_string(T) +
                                               ", got " + std::to_string(lengths[b]));
    if (B == 0)
        return;
    const Index I = spec.input_size, H = spec.hidden_size, H_out = spec.output_size();
    const Index Y = spec.directions() * H_out;
    const Index W = std::min(T, chunking.chunk + chunking.lookahead);  // the longest window
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec.batch_first);

    const std::shared_ptr<const detail::WeightSet> weights = ModelAccess::store(model).current();
    const RunWeights run{spec, weights->values.data(),
                         ModelAccess::copies(model, *weights, weight_copies_for(spec, W, B, false))};
    Workspace ws(spec, W, B, false);
    Buffer window_y(buffer_size({W, B, Y}));
    Buffer h_lookahead(buffer_size({B, H_out})), c_lookahead(buffer_size({B, spec.has_cell_state() ? H : 0}));
    std::vector<std::int64_t> window_lengths(static_cast<std::size_t>(B)), chunk_lengths(window_lengths),
        lookahead_lengths(window_lengths);
    const SeqView window_view = SeqView::time_major(window_y.data(), B, Y, Y);

    for (Index start = 0; start < T; start += chunking.chunk) {
        const Index end = std::min(T, start + chunking.chunk), window_end = std::min(T, end + chunking.lookahead);
        // Each row over its own length: the steps of this window, of its chunk and of its look-ahead.
        for (Index b = 0; b < B; ++b) {
            const Index valid = lengths ? static_cast<Index>(lengths[b]) : T;
            const auto b_ = static_cast<std::size_t>(b);
            window_lengths[b_] = std::clamp<Index>(valid - start, 0, window_end - start);
            chunk_lengths[b_] = std::clamp<Index>(valid - start, 0, end - start);
            lookahead_lengths[b_] = std::clamp<Index>(valid - end, 0, window_end - end);
        }
        const ChunkWindow window{end - start, chunk_lengths.data(), lookahead_lengths.data(), h_lookahead.data(),
                                 c_lookahead.data()};
        run_stack_chunk(run, xs.from_step(start), window_view, window_end - start, B, window_lengths.data(), window,
                        h, c, ws);
        for (Index t = 0; t < end - start; ++t)
            for (Index b = 0; b < B; ++b)
                std::copy_n(window_view.row(t, b), Y, ys.row(start + t, b));
    }
}

}  // namespace streamrnn
