// cpp/src/chunked.cpp: the chunked (latency-controlled) forward of a bidirectional model: the stack
// over each chunk's window of steps (stack.cpp's run_stack_chunk), its chunk's outputs kept.
// Part of streamrnn, MIT licence.
#include "streamrnn/chunked.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "denormals.hpp"
#include "exclusive.hpp"
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

namespace {

const Model& checked_model(const std::shared_ptr<const Model>& model, Index batch, Chunking chunking)
{
    if (!model)
        raise(ErrorKind::argument, "stream: no model");
    check_chunking(chunking);
    constexpr Index max_batch = Index(1) << 24;
    if (batch < 1 || batch > max_batch)
        raise(ErrorKind::argument,
              "batch: expected 1 to " + std::to_string(max_batch) + " streams, got " + std::to_string(batch));
    return *model;
}

}  // namespace

struct ChunkedStream::Impl {
    Impl(std::shared_ptr<const Model> model_, Index batch_, Chunking chunking_)
        : model(std::move(model_)), spec(checked_model(model, batch_, chunking_).spec()), batch(batch_),
          chunking(chunking_), window_steps(chunking_.chunk + chunking_.lookahead),
          I(spec.input_size), Y(spec.directions() * spec.output_size()),
          kind(weight_copies_for(spec, window_steps, batch, true).kind()), reader(ModelAccess::store(*model), kind),
          workspace(spec, window_steps, batch, false)
    {
        const Index cells = Index(spec.num_layers) * spec.directions();
        h.assign(buffer_size({cells, batch, spec.output_size()}), 0.0f);
        c.assign(buffer_size({cells, batch, spec.has_cell_state() ? spec.hidden_size : 0}), 0.0f);
        inputs.assign(buffer_size({window_steps, batch, I}), 0.0f);
        window_y.assign(buffer_size({window_steps, batch, Y}), 0.0f);
        h_lookahead.assign(buffer_size({batch, spec.output_size()}), 0.0f);
        c_lookahead.assign(buffer_size({batch, spec.has_cell_state() ? spec.hidden_size : 0}), 0.0f);
    }

    Index completed_by(Index T) const noexcept
    {
        const Index total = buffered + T;
        return total < window_steps ? 0 : (total - chunking.lookahead) / chunking.chunk * chunking.chunk;
    }

    /// Runs the stack over the first `steps` buffered steps, the first `chunk_steps` of them the
    /// chunk, and writes the chunk's outputs to y from output step `at`; the chunk's inputs leave
    /// the buffer.
    void run_window(Index steps, Index chunk_steps, const SeqView& y, Index at) noexcept
    {
        const detail::WeightSet& set = reader.acquire();
        const RunWeights weights{spec, set.values.data(),
                                 static_cast<const DerivedWeights*>(
                                     set.derived[static_cast<std::size_t>(kind)].load(std::memory_order_acquire))};
        const ChunkWindow window{chunk_steps, nullptr, nullptr, h_lookahead.data(), c_lookahead.data()};
        const SeqView window_view = SeqView::time_major(window_y.data(), batch, Y, Y);
        run_stack_chunk(weights, ConstSeqView::time_major(inputs.data(), batch, I, I), window_view, steps, batch,
                        nullptr, window, h.data(), c.empty() ? nullptr : c.data(), workspace);
        for (Index t = 0; t < chunk_steps; ++t)
            for (Index b = 0; b < batch; ++b)
                std::copy_n(window_view.row(t, b), Y, y.row(at + t, b));
        std::copy(inputs.begin() + chunk_steps * batch * I, inputs.begin() + buffered * batch * I, inputs.begin());
        buffered -= chunk_steps;
    }

    void clear() noexcept
    {
        std::fill(h.begin(), h.end(), 0.0f);
        std::fill(c.begin(), c.end(), 0.0f);
        buffered = 0;
    }

    std::shared_ptr<const Model> model;
    const ModelSpec& spec;
    Index batch;
    Chunking chunking;
    Index window_steps;  ///< chunk + lookahead
    Index I, Y;
    int kind;  ///< of the copies of the weights it multiplies (WeightCopies)
    detail::WeightStore::Reader reader;
    Workspace workspace;
    Buffer h, c;  ///< [L * D, B, ...]
    Buffer inputs;    ///< [window_steps, B, I], time-major: the pending steps, oldest first
    Index buffered = 0;
    Buffer window_y;  ///< [window_steps, B, Y]: a window's outputs
    Buffer h_lookahead, c_lookahead;
    bool flush_denormals = true;
    mutable Exclusive in_use;
};

ChunkedStream::ChunkedStream(std::shared_ptr<const Model> model, Index batch, Chunking chunking)
    : impl_(std::make_unique<Impl>(std::move(model), batch, chunking))
{
}

ChunkedStream::ChunkedStream(ChunkedStream&&) noexcept = default;
ChunkedStream& ChunkedStream::operator=(ChunkedStream&&) noexcept = default;
ChunkedStream::~ChunkedStream() = default;

const Model& ChunkedStream::model() const { return *impl_->model; }
Index ChunkedStream::batch() const { return impl_->batch; }
Chunking ChunkedStream::chunking() const { return impl_->chunking; }
std::size_t ChunkedStream::h_size() const { return impl_->h.size(); }
std::size_t ChunkedStream::c_size() const { return impl_->c.size(); }
Index ChunkedStream::pending() const noexcept { return impl_->buffered; }
Index ChunkedStream::completed_by(Index T) const noexcept { return impl_->completed_by(T); }

Index ChunkedStream::process(const float* x, Index T, float* y) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "process");
    if (!use)
        return -1;
    const FlushDenormals flushed(s.flush_denormals);
    const Index B = s.batch, I = s.I;
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, s.spec.batch_first);
    const SeqView ys = SeqView::of(y, s.completed_by(T), B, s.Y, s.Y, s.spec.batch_first);
    Index done = 0;
    for (Index t = 0; t < T; ++t) {
        for (Index b = 0; b < B; ++b)
            std::copy_n(xs.row(t, b), I, s.inputs.data() + (s.buffered * B + b) * I);
        if (++s.buffered == s.window_steps) {
            s.run_window(s.window_steps, s.chunking.chunk, ys, done);
            done += s.chunking.chunk;
        }
    }
    return done;
}

Index ChunkedStream::flush(float* y) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "flush");
    if (!use)
        return -1;
    const FlushDenormals flushed(s.flush_denormals);
    const Index steps = s.buffered;
    const SeqView ys = SeqView::of(y, steps, s.batch, s.Y, s.Y, s.spec.batch_first);
    for (Index done = 0; s.buffered > 0;) {
        const Index chunk = std::min(s.chunking.chunk, s.buffered);
        s.run_window(s.buffered, chunk, ys, done);
        done += chunk;
    }
    s.clear();
    return steps;
}

bool ChunkedStream::reset() noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "reset");
    if (!use)
        return false;
    s.clear();
    return true;
}

bool ChunkedStream::reset(Index i) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "reset");
    if (!use)
        return false;
    zero_state_row(s.h, s.c, Index(s.spec.num_layers) * s.spec.directions(), s.batch, i);
    return true;
}

bool ChunkedStream::get_state(float* h, float* c) const noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "state");
    if (!use)
        return false;
    copy_state_out(s.h, s.c, h, c);
    return true;
}

bool ChunkedStream::set_state(const float* h, const float* c) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "state");
    if (!use)
        return false;
    copy_state_in(s.h, s.c, h, c);
    return true;
}

const char* ChunkedStream::busy_with() const noexcept { return impl_->in_use.holder(); }

}  // namespace streamrnn
