// cpp/src/chunked.cpp: the chunked (latency-controlled) forward of a bidirectional model: the stack
// over each chunk's window of steps (stack.cpp's run_stack_chunk), its chunk's outputs kept.
// Part of streamrnn, MIT licence.
#include "streamrnn/chunked.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "initial_state.hpp"
#include "denormals.hpp"
#include "exclusive.hpp"
#include "layer.hpp"
#include "model_access.hpp"
#include "parallel.hpp"
#include "sizes.hpp"

#include <algorithm>
#include <optional>
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

/// Checks a chunked call's arguments, and whether it runs in windows: a bidirectional model over
/// more than one chunk (else it is the model's plain call, which checks the rest).
bool windowed(const ModelSpec& spec, Index T, Index B, const std::int64_t* lengths, Chunking chunking)
{
    check_chunking(chunking);
    if (!spec.bidirectional || chunking.chunk >= T || B == 0)
        return false;
    check_lengths(T, B, lengths);
    return true;
}

/// The windows of T steps of B rows cut into chunks.
ChunkPlan plan_chunks(Index T, Index B, const std::int64_t* lengths, Chunking chunking)
{
    ChunkPlan plan;
    plan.B = B;
    plan.chunk_steps = chunking.chunk;
    for (Index start = 0; start < T; start += chunking.chunk) {
        const Index end = std::min(T, start + chunking.chunk), window_end = std::min(T, end + chunking.lookahead);
        plan.windows.push_back({start, window_end - start, end - start, plan.recorded});
        plan.recorded += window_end - start;
        plan.longest = std::max(plan.longest, window_end - start);
    }
    for (const ChunkPlan::Part part : {ChunkPlan::whole, ChunkPlan::chunk, ChunkPlan::lookahead})
        for (const ChunkPlan::Window& w : plan.windows) {
            const Index end = w.start + w.chunk_steps, window_end = w.start + w.steps;
            const Index from = part == ChunkPlan::lookahead ? end : w.start;
            const Index to = part == ChunkPlan::chunk ? end : window_end;
            for (Index b = 0; b < B; ++b) {
                const Index valid = lengths ? static_cast<Index>(lengths[b]) : T;
                plan.row_lengths.push_back(std::clamp<Index>(valid - from, 0, to - from));
            }
        }
    return plan;
}

/// The buffers of a group of windows (`rows` rows: the windows' rows one window after another),
/// for the forward and the backward over a plan's windows.
struct WindowBuffers {
    WindowBuffers(const ModelSpec& spec, const ChunkPlan& plan, Index rows, Index width)
        : steps(buffer_size({plan.longest, rows, width})), h_lookahead(buffer_size({rows, spec.output_size()})),
          c_lookahead(buffer_size({rows, spec.has_cell_state() ? spec.hidden_size : 0}))
    {
    }
    /// Windows [k, k + windows) of the plan, whose first is the group's longest.
    ChunkWindow window(const ChunkPlan& plan, std::size_t k)
    {
        return {std::min(plan.chunk_steps, plan.windows[k].steps), plan.lengths(k, ChunkPlan::chunk),
                plan.lengths(k, ChunkPlan::lookahead), h_lookahead.data(), c_lookahead.data(), nullptr, plan.B};
    }

    Buffer steps;  ///< [longest, rows, width]: the windows' outputs (or gradients)
    Buffer h_lookahead, c_lookahead;
};

/// Layer 0's forward direction over the windows of a chunked forward. Its inputs are the model's
/// own, the same in every window, so that its run over one window's look-ahead (from the chunk's
/// end state) is the next window's run over its chunk: it runs once over each step, as far as a
/// window needs, and keeps its state at the ends of the chunks ahead, which is the state carried
/// from chunk to chunk. The windows start at one chunk after another. Allocates at construction
/// only.
class FirstForward {
public:
    FirstForward(const ModelSpec& spec, Index window_steps, Index batch, Chunking chunking)
        : C(chunking.chunk), H_out(spec.output_size()), H(spec.has_cell_state() ? spec.hidden_size : 0), B(batch),
          ends(1 + chunking.lookahead / chunking.chunk), y(buffer_size({window_steps, B, H_out})),
          h_run(buffer_size({B, H_out})), c_run(buffer_size({B, H})), h_ends(buffer_size({ends, B, H_out})),
          c_ends(buffer_size({ends, B, H})), part_lengths(static_cast<std::size_t>(B))
    {
    }

    /// Runs over the window's steps [done, steps): x its input from its first step, lengths each
    /// row's valid steps in the window (or null); from (h, c), the carried state [B, H_out] and
    /// [B, H] (null without a cell state), where it has run over none of them yet.
    void advance(const RunWeights& weights, ConstSeqView x, Index steps, const std::int64_t* lengths, const float* h,
                 const float* c, Workspace& ws) noexcept
    {
        if (done == 0) {
            std::copy_n(h, h_run.size(), h_run.data());
            std::copy_n(c, c_run.size(), c_run.data());
        }
        const SeqView out = SeqView::time_major(y.data(), B, H_out, H_out);
        while (done < steps) {
            const Index next = std::min(steps, (done / C + 1) * C);  // a chunk's end, or the window's
            for (Index b = 0; lengths && b < B; ++b)
                part_lengths[static_cast<std::size_t>(b)] = std::clamp<Index>(lengths[b] - done, 0, next - done);
            scan_layer(weights, 0, 0, x.from_step(done), out.from_step(done), next - done, B,
                       lengths ? part_lengths.data() : nullptr, h_run.data(), H ? c_run.data() : nullptr, ws, nullptr);
            done = next;
            if (done % C == 0) {
                const Index slot = (chunks + done / C - 1) % ends;
                std::copy_n(h_run.data(), B * H_out, h_ends.data() + slot * B * H_out);
                std::copy_n(c_run.data(), B * H, c_ends.data() + slot * B * H);
            }
        }
    }

    /// [steps, B, H_out], time-major: the outputs over the window's steps run so far.
    const float* outputs() const noexcept { return y.data(); }

    /// The window's first `chunk` steps (C, or fewer where the input ends there) are done: the
    /// state at their end into h and c, and the steps after them become the next window's first.
    void finish_chunk(Index chunk, float* h, float* c) noexcept
    {
        const Index slot = chunks % ends;
        std::copy_n(chunk == C ? h_ends.data() + slot * B * H_out : h_run.data(), B * H_out, h);
        if (H)
            std::copy_n(chunk == C ? c_ends.data() + slot * B * H : c_run.data(), B * H, c);
        std::copy(y.begin() + chunk * B * H_out, y.begin() + done * B * H_out, y.begin());
        done -= chunk;
        ++chunks;
    }

    /// The carried state changed (set, reset, or new weights): runs from it again.
    void restart() noexcept
    {
        done = 0;
        chunks = 0;
    }

private:
    Index C, H_out, H, B;
    Index ends;  ///< the chunk ends a window's steps reach, at most
    Buffer y;    ///< [window steps, B, H_out]
    Index done = 0;
    Index chunks = 0;            ///< chunks finished since the last restart
    Buffer h_run, c_run;         ///< the state after step done - 1
    Buffer h_ends, c_ends;       ///< [ends, B, ...]: the state at the chunk ends ahead, by chunk % ends
    std::vector<std::int64_t> part_lengths;
};

/// Every window of `plan` through the stack, its chunk's outputs into ys, and h, c the state
/// after them (as forward_chunked's). With a record, each window is kept from its recorded_at step,
/// and dropout drawn from rng. Else layer 0's forward direction runs once over every step
/// (FirstForward), and windows run in groups: their reverse directions and look-ahead runs are
/// independent of one another, so a group of G windows of B rows makes products of G * B rows (at
/// B = 1, matrix products in place of matrix-vector ones); the forward directions' chunks still
/// run one window after another, carrying their state.
void run_windows(const RunWeights& weights, const ChunkPlan& plan, Chunking chunking, ConstSeqView xs, SeqView ys,
                 float* h, float* c, const RecordView* record, std::mt19937_64* rng)
{
    const ModelSpec& spec = weights.spec;
    const Index B = plan.B, K = static_cast<Index>(plan.windows.size());
    const Index I = spec.input_size, Y = spec.directions() * spec.output_size(), H_out = spec.output_size();
    const Index H = c ? spec.hidden_size : 0, cells = Index(spec.num_layers) * spec.directions();
    // Groups pay where a window's rows alone make thin products: at B = 1 and 2 (a BLSTM 2x256 at
    // 30/30: 1.15x the full forward against 2.1x one window at a time, at B = 2 1.3x against
    // 1.5x); from B = 4 on, the windows' chunks, which read every G-th block of a group's rows,
    // cost more than the group saves (1.64x against 1.49x at B = 4). A record keeps one window's
    // rows per step (RecordView).
    constexpr Index group_rows = 32;
    const Index G = record || B > 2 ? 1 : std::clamp<Index>(group_rows / B, 1, K), rows = G * B;
    Workspace ws(spec, plan.longest, rows, record != nullptr);
    WindowBuffers buffers(spec, plan, rows, Y);
    Buffer inputs(buffer_size({plan.longest, rows, I}));
    Buffer group_h(buffer_size({cells, rows, H_out})), group_c(buffer_size({cells, rows, H}));
    std::optional<FirstForward> first;
    Buffer first_y;
    if (!record && spec.num_layers > 1) {  // one layer runs no look-ahead forward (stack.cpp, runs_ahead)
        first.emplace(spec, plan.longest, B, chunking);
        first_y.resize(buffer_size({plan.longest, rows, H_out}));
    }
    // Rows [0, n) of a group's step t, time-major.
    auto group_view = [](float* data, Index n, Index width) { return SeqView::time_major(data, n, width, width); };

    for (Index k0 = 0; k0 < K; k0 += G) {
        const Index k1 = std::min(K, k0 + G), n = (k1 - k0) * B;
        const ChunkPlan::Window& longest = plan.windows[static_cast<std::size_t>(k0)];
        const SeqView in = group_view(inputs.data(), n, I), out = group_view(buffers.steps.data(), n, Y);
        ChunkWindow window = buffers.window(plan, static_cast<std::size_t>(k0));
        for (Index k = k0; k < k1; ++k) {
            const ChunkPlan::Window& w = plan.windows[static_cast<std::size_t>(k)];
            const Index row = (k - k0) * B;
            for (Index t = 0; t < w.steps; ++t)
                for (Index b = 0; b < B; ++b)
                    std::copy_n(xs.row(w.start + t, b), I, in.row(t, row + b));
            if (first) {
                first->advance(weights, xs.from_step(w.start), w.steps, plan.lengths(static_cast<std::size_t>(k),
                               ChunkPlan::whole), h, c, ws);
                const ConstSeqView run = ConstSeqView::time_major(first->outputs(), B, H_out, H_out);
                const SeqView kept = group_view(first_y.data(), n, H_out);
                for (Index t = 0; t < w.steps; ++t)
                    for (Index b = 0; b < B; ++b)
                        std::copy_n(run.row(t, b), H_out, kept.row(t, row + b));
                first->finish_chunk(w.chunk_steps, h, c);
            }
        }
        if (first)
            window.first_forward = first_y.data();
        // The forward directions' chunks start from the carried state (the group's first window;
        // each later one from the one before it).
        for (Index cell = 0; cell < cells; cell += spec.directions()) {
            std::copy_n(h + cell * B * H_out, B * H_out, group_h.data() + cell * n * H_out);
            std::copy_n(c ? c + cell * B * H : nullptr, B * H, group_c.data() + cell * n * H);
        }
        RecordView kept = record ? record->from_step(spec, longest.recorded_at, B) : RecordView{};
        const std::int64_t* reached = plan.lengths(static_cast<std::size_t>(k0), ChunkPlan::whole);
        run_stack_chunk(weights, in, out, longest.steps, n, reached, window, group_h.data(), H ? group_c.data() : nullptr,
                        ws, record ? &kept : nullptr, rng);
        // The state after the group: the forward directions' at the end of its last chunk (layer
        // 0's, FirstForward's); the reverse directions' at the end of the last run reaching a row.
        for (Index cell = 0; cell < cells; ++cell) {
            const bool forward = cell % spec.directions() == 0;
            if (forward && cell == 0 && first)
                continue;
            for (Index b = 0; b < B; ++b)
                for (Index k = k1 - 1; k >= k0; --k) {
                    if (!forward && plan.lengths(static_cast<std::size_t>(k), ChunkPlan::whole)[b] == 0)
                        continue;
                    const Index row = (k - k0) * B + b;
                    std::copy_n(group_h.data() + (cell * n + row) * H_out, H_out, h + (cell * B + b) * H_out);
                    std::copy_n(group_c.data() + (cell * n + row) * H, H, c ? c + (cell * B + b) * H : nullptr);
                    break;
                }
        }
        for (Index k = k0; k < k1; ++k) {
            const ChunkPlan::Window& w = plan.windows[static_cast<std::size_t>(k)];
            for (Index t = 0; t < w.chunk_steps; ++t)
                for (Index b = 0; b < B; ++b)
                    std::copy_n(out.row(t, (k - k0) * B + b), Y, ys.row(w.start + t, b));
        }
    }
}

}  // namespace

void forward_chunked(const Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                     Chunking chunking, float* y, float* h, float* c, int threads)
{
    if (!windowed(model.spec(), T, B, lengths, chunking)) {
        model.forward(x, T, B, lengths, y, h, c, threads);
        return;
    }
    const ModelSpec& spec = model.spec();
    const Index I = spec.input_size, Y = spec.directions() * spec.output_size();
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec.batch_first);
    const std::shared_ptr<const detail::WeightSet> weights = ModelAccess::store(model).current();
    // Each part of the batch on a thread of its own, with its own copy of its rows' state.
    const std::vector<BatchPart> parts =
        split_batch(B, STREAMRNN_THREADS ? std::clamp<Index>(threads, 1, B) : 1);
    const Index cells = Index(spec.num_layers) * spec.directions();
    std::vector<PartState> hs, cs;
    std::vector<ChunkPlan> plans;
    std::vector<RunWeights> runs;
    for (const BatchPart& part : parts) {
        hs.emplace_back(cells, part.rows, spec.output_size());
        cs.emplace_back(cells, part.rows, c ? spec.hidden_size : 0);
        plans.push_back(plan_chunks(T, part.rows, lengths ? lengths + part.first : nullptr, chunking));
        runs.push_back({spec, weights->values.data(),
                        ModelAccess::copies(model, *weights, weight_copies_for(spec, T, part.rows, false))});
    }
    run_parallel(static_cast<Index>(parts.size()), [&](Index p) {
        const std::size_t k = static_cast<std::size_t>(p);
        const BatchPart& part = parts[k];
        hs[k].gather(h, B, part);
        cs[k].gather(c, B, part);
        run_windows(runs[k], plans[k], chunking, xs.from_row(part.first), ys.from_row(part.first), hs[k].data(),
                    c ? cs[k].data() : nullptr, nullptr, nullptr);
        hs[k].scatter(h, B, part);
        cs[k].scatter(c, B, part);
    });
}

void forward_train_chunked(Model& model, const float* x, Index T, Index B, const std::int64_t* lengths,
                           Chunking chunking, float* y, float* h, float* c, bool from_initial_state)
{
    if (!windowed(model.spec(), T, B, lengths, chunking)) {
        model.forward_train(x, T, B, lengths, y, h, c, 1, from_initial_state);
        return;
    }
    const ModelSpec& spec = model.spec();
    TrainingState& training = ModelAccess::training(model);
    const Exclusive::Hold hold(training.record_use, "forward(train=True)", "this model's training record");
    const Index I = spec.input_size, Y = spec.directions() * spec.output_size();
    // Everything is allocated before the record changes, as in Model::forward_train; the record
    // keeps every window's steps, one window after another.
    ChunkPlan plan = plan_chunks(T, B, lengths, chunking);
    std::shared_ptr<const detail::WeightSet> weights = ModelAccess::store(model).current();
    const DerivedWeights copies(spec, weight_copies_for(spec, T, B, false), weights->values.data());
    std::vector<std::int64_t> kept_lengths;
    if (lengths)
        kept_lengths.assign(lengths, lengths + B);
    ForwardRecord& record = training.record;
    if (from_initial_state)
        model.fill_initial_state(B, h, c);
    prepare_record(record, spec, plan.recorded, B, nullptr, {BatchPart{0, B}});
    training.recorded = false;  // until the new record is complete
    training.from_initial_state = from_initial_state;
    record.T = T;
    record.lengths = std::move(kept_lengths);
    record.chunks = std::move(plan);
    record.weights = std::move(weights);
    const RunWeights run{spec, record.weights->values.data(), &copies};
    run_windows(run, record.chunks, chunking, ConstSeqView::of(x, T, B, I, I, spec.batch_first),
                SeqView::of(y, T, B, Y, Y, spec.batch_first), h, c, &record.parts[0].view, &training.dropout_rng);
    training.recorded = true;
}

void backward_chunked(const ModelSpec& spec, const ForwardRecord& record, float* gradients, ConstSeqView dy,
                      const float* dh_n, const float* dc_n, SeqView dx, float* dh0, float* dc0)
{
    const ChunkPlan& plan = record.chunks;
    const Index B = record.B, T = record.T, I = spec.input_size, Y = spec.directions() * spec.output_size();
    const Index H_out = spec.output_size(), H = spec.hidden_size, cells = Index(spec.num_layers) * spec.directions();
    const Index C = dc0 ? H : 0;
    WindowBuffers buffers(spec, plan, B, std::max(I, Y));
    const SeqView dy_window = SeqView::time_major(buffers.steps.data(), B, Y, Y);
    Buffer dx_window(buffer_size({plan.longest, B, I}));
    const SeqView dx_view = SeqView::time_major(dx_window.data(), B, I, I);
    Buffer d_out(static_cast<std::size_t>(backward_buffer_size(spec, plan.longest, B))), d_in(d_out.size());
    // The state's gradient carried back from window to window: after it (dh_n, dc_n) and before.
    Buffer dh_after(buffer_size({cells, B, H_out}), 0.0f), dh_before(dh_after.size());
    Buffer dc_after(buffer_size({cells, B, C}), 0.0f), dc_before(dc_after.size());
    if (dh_n)
        std::copy_n(dh_n, dh_after.size(), dh_after.data());
    if (dc_n && C)
        std::copy_n(dc_n, dc_after.size(), dc_after.data());
    for (Index t = 0; t < T; ++t)
        for (Index b = 0; b < B; ++b)
            std::fill_n(dx.row(t, b), I, 0.0f);

    for (std::size_t k = plan.windows.size(); k-- > 0;) {
        const ChunkPlan::Window& w = plan.windows[k];
        // Only the chunk's own steps are outputs: the look-ahead's get no gradient from dy.
        for (Index t = 0; t < w.steps; ++t)
            for (Index b = 0; b < B; ++b) {
                float* row = dy_window.row(t, b);
                if (t < w.chunk_steps)
                    std::copy_n(dy.row(w.start + t, b), Y, row);
                else
                    std::fill_n(row, Y, 0.0f);
            }
        const RecordView kept = record.parts[0].view.from_step(spec, w.recorded_at, B);
        const std::int64_t* reached = plan.lengths(k, ChunkPlan::whole);
        const BackwardPass pass{spec, record.weights->values.data(), gradients, kept, w.steps, B, reached};
        run_backward_chunk(pass, buffers.window(plan, k), dy_window, dh_after.data(), C ? dc_after.data() : nullptr,
                           dx_view, dh_before.data(), C ? dc_before.data() : nullptr, d_out.data(), d_in.data());
        for (Index t = 0; t < w.steps; ++t)
            for (Index b = 0; b < B; ++b)
                mat(dx.row(w.start + t, b), 1, I) += mat(static_cast<const float*>(dx_view.row(t, b)), 1, I);
        // A reverse direction starts each window it reaches from zeros: no gradient goes further
        // back there; rows the window does not reach keep theirs for an earlier window.
        for (Index cell = 1; cell < cells; cell += 2)
            for (Index b = 0; b < B; ++b)
                if (reached[b] > 0) {
                    std::fill_n(dh_before.data() + (cell * B + b) * H_out, H_out, 0.0f);
                    if (C)
                        std::fill_n(dc_before.data() + (cell * B + b) * C, C, 0.0f);
                }
        std::swap(dh_after, dh_before);
        std::swap(dc_after, dc_before);
    }
    std::copy_n(dh_after.data(), dh_after.size(), dh0);
    if (C)
        std::copy_n(dc_after.data(), dc_after.size(), dc0);
}

namespace {

const Model& checked_model(const std::shared_ptr<const Model>& model, Index batch, Chunking chunking)
{
    if (!model)
        raise(ErrorKind::argument, "stream: no model");
    check_chunking(chunking);
    check_stream_batch(batch);
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
        if (spec.num_layers > 1)  // one layer runs no look-ahead forward (stack.cpp, runs_ahead)
            first.emplace(spec, window_steps, batch, chunking);
        const Index cells = Index(spec.num_layers) * spec.directions();
        h.assign(buffer_size({cells, batch, spec.output_size()}), 0.0f);
        c.assign(buffer_size({cells, batch, spec.has_cell_state() ? spec.hidden_size : 0}), 0.0f);
        inputs.assign(buffer_size({window_steps, batch, I}), 0.0f);
        window_y.assign(buffer_size({window_steps, batch, Y}), 0.0f);
        h_lookahead.assign(buffer_size({batch, spec.output_size()}), 0.0f);
        c_lookahead.assign(buffer_size({batch, spec.has_cell_state() ? spec.hidden_size : 0}), 0.0f);
        start();
    }

    /// Every row from the model's initial state.
    void start() noexcept
    {
        const InitialState initial = InitialState::of(spec, reader.acquire());
        start_state(h, c, Index(spec.num_layers) * spec.directions(), batch, initial.h, initial.c);
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
        if (set.version != version) {  // a window runs with one version of the weights throughout
            restart();
            version = set.version;
        }
        float* const c_data = c.empty() ? nullptr : c.data();
        const ConstSeqView x = ConstSeqView::time_major(inputs.data(), batch, I, I);
        ChunkWindow window{chunk_steps, nullptr, nullptr, h_lookahead.data(), c_lookahead.data(), nullptr, batch};
        if (first) {
            first->advance(weights, x, steps, nullptr, h.data(), c_data, workspace);
            window.first_forward = first->outputs();
        }
        const SeqView window_view = SeqView::time_major(window_y.data(), batch, Y, Y);
        run_stack_chunk(weights, x, window_view, steps, batch, nullptr, window, h.data(), c_data, workspace);
        if (first)
            first->finish_chunk(chunk_steps, h.data(), c_data);
        for (Index t = 0; t < chunk_steps; ++t)
            for (Index b = 0; b < batch; ++b)
                std::copy_n(window_view.row(t, b), Y, y.row(at + t, b));
        std::copy(inputs.begin() + chunk_steps * batch * I, inputs.begin() + buffered * batch * I, inputs.begin());
        buffered -= chunk_steps;
    }

    void clear() noexcept
    {
        start();
        buffered = 0;
        restart();
    }

    /// The carried state changed: layer 0's forward runs from it again.
    void restart() noexcept
    {
        if (first)
            first->restart();
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
    /// Layer 0's forward direction over the pending steps, run once for every window, with the
    /// weights of `version`.
    std::optional<FirstForward> first;  ///< none for one layer
    std::uint64_t version = 0;
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
    return s.in_use.try_run("reset", [&] {
        s.clear();
    });
}

bool ChunkedStream::reset(Index i) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] {
        const InitialState initial = InitialState::of(s.spec, s.reader.acquire());
        start_state_row(s.h, s.c, Index(s.spec.num_layers) * s.spec.directions(), s.batch, i, initial.h, initial.c);
        s.restart();
    });
}

bool ChunkedStream::get_state(float* h, float* c) const noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        copy_state_out(s.h, s.c, h, c);
    });
}

bool ChunkedStream::set_state(const float* h, const float* c) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        copy_state_in(s.h, s.c, h, c);
        s.restart();
    });
}

const char* ChunkedStream::busy_with() const noexcept { return impl_->in_use.holder(); }

}  // namespace streamrnn
