// cpp/src/stream.cpp: Stream, stepping a unidirectional model with its state carried: the
// one-row path for a step of one stream, the stack for the rest.
// Part of streamrnn, MIT licence.
#include "streamrnn/stream.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "denormals.hpp"
#include "exclusive.hpp"
#include "layer.hpp"
#include "model_access.hpp"
#include "sizes.hpp"

#include <algorithm>

namespace streamrnn {

namespace {

const Model& checked(const std::shared_ptr<const Model>& model, Index batch)
{
    if (!model)
        raise(ErrorKind::argument, "stream: no model");
    if (model->spec().bidirectional)
        raise(ErrorKind::argument,
              "stream: a bidirectional model needs the whole sequence (its reverse direction starts "
              "at the end); stream a unidirectional model or call the model on the sequence");
    // The cap keeps every buffer size far from overflowing 64 bits; on a 32-bit host the sizes
    // are checked where the buffers are made.
    constexpr Index max_batch = Index(1) << 24;
    if (batch < 1 || batch > max_batch)
        raise(ErrorKind::argument,
              "batch: expected 1 to " + std::to_string(max_batch) + " streams, got " + std::to_string(batch));
    return *model;
}

}  // namespace

struct Stream::Impl {
    Impl(std::shared_ptr<const Model> model_, Index batch_)
        : model(std::move(model_)), spec(checked(model, batch_).spec()), batch(batch_),
          kind(weight_copies_for(spec, block_steps, batch, true).kind()),
          reader(ModelAccess::store(*model), kind), workspace(spec, block_steps, batch, false),
          forward_step(forward_step_of(spec))
    {
        h.assign(buffer_size({spec.num_layers, batch, spec.output_size()}), 0.0f);
        if (spec.has_cell_state())
            c.assign(buffer_size({spec.num_layers, batch, spec.hidden_size}), 0.0f);
        cells.resize(static_cast<std::size_t>(spec.num_layers));
        if (WeightCopies::of_kind(kind).row) {
            row_step = row_kernels()->step(row_cell(spec), weights().copies->row_lanes);
            row_layers.resize(static_cast<std::size_t>(spec.num_layers));
            row_scratch.assign(static_cast<std::size_t>(
                                   row_scratch_floats(std::max(spec.hidden_size, spec.output_size()))),
                               0.0f);
        }
    }

    /// The weights of a run: the current version and the stream's copies of it.
    RunWeights weights_of(const detail::WeightSet& set) const noexcept
    {
        return {spec, set.values.data(),
                static_cast<const DerivedWeights*>(
                    set.derived[static_cast<std::size_t>(kind)].load(std::memory_order_acquire))};
    }
    RunWeights weights() noexcept { return weights_of(reader.acquire()); }

    /// Each layer's weights as a step of one row multiplies them, in the current version: worked
    /// out again only when the version changes (by number, not address: a version let go may be
    /// freed, and a later one made in its place).
    void cells_now() noexcept
    {
        const detail::WeightSet& set = reader.acquire();
        if (set.version != cells_version)
            work_out_cells(set);
    }
    void work_out_cells(const detail::WeightSet& set) noexcept
    {
        const RunWeights run = weights_of(set);
        for (int layer = 0; layer < spec.num_layers; ++layer) {
            const auto l = static_cast<std::size_t>(layer);
            if (row_step) {
                const CellWeights w = run.cell(layer, 0, 1);
                row_layers[l] = {run.copies->row_panels[l].data(),
                                 run.copies->row_biases[l].data(),
                                 run.copies->row_projections[l].empty() ? nullptr
                                                                        : run.copies->row_projections[l].data(),
                                 w.input_size,
                                 w.hidden_size,
                                 w.output_size,
                                 spec.residual_at(layer),
                                 w.peephole,
                                 w.options.clip,
                                 w.options.input_forget};
            } else {
                cells[l] = run.cell(layer, 0, 1);
            }
        }
        cells_version = set.version;
    }
    /// One step of the row, with the weights of the last cells_now(): through the row kernels where
    /// there are, else the engine's step_row.
    void step_one_row(const float* x, float* y) noexcept
    {
        if (row_step)
            row_step(row_layers.data(), spec.num_layers, x, y, h.data(), c_data(), row_scratch.data());
        else
            step_row(spec, forward_step, cells.data(), x, y, h.data(), c_data(), workspace);
    }
    float* c_data() noexcept { return c.empty() ? nullptr : c.data(); }

    std::shared_ptr<const Model> model;
    const ModelSpec& spec;
    Index batch;
    int kind;  ///< of the copies of the weights it multiplies (WeightCopies)
    detail::WeightStore::Reader reader;
    Buffer h;
    Buffer c;
    Workspace workspace;
    ForwardStep forward_step;        ///< the cell's step (one-row steps)
    std::vector<CellWeights> cells;  ///< per layer, of version cells_version (one-row steps)
    RowStep row_step = nullptr;      ///< the row kernels' step, where a row steps through them
    std::vector<RowLayer> row_layers;  ///< per layer, of version cells_version (row_step)
    Buffer row_scratch;
    std::uint64_t cells_version = ~std::uint64_t(0);  ///< none yet: no version has this number
    bool flush_denormals = true;
    mutable Exclusive in_use;
};

Stream::Stream(std::shared_ptr<const Model> model, Index batch) : impl_(std::make_unique<Impl>(std::move(model), batch))
{
}

Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

const Model& Stream::model() const { return *impl_->model; }
Index Stream::batch() const { return impl_->batch; }
std::size_t Stream::h_size() const { return impl_->h.size(); }
std::size_t Stream::c_size() const { return impl_->c.size(); }

bool Stream::step(const float* x, float* y) noexcept
{
    Impl& s = *impl_;
    // The floating point mode first, then the stream: its atomic exchange, which waits for earlier
    // stores, next to the mode's writes costs more (bench_step: up to 13 ns a step otherwise).
    const FlushDenormals flushed(s.flush_denormals);
    const Exclusive::TryHold use(s.in_use, "step");
    if (!use)
        return false;
    if (s.batch == 1) {
        s.cells_now();
        s.step_one_row(x, y);
    } else {
        const Index I = s.spec.input_size, H_out = s.spec.output_size();
        run_stack(s.weights(), ConstSeqView::time_major(x, s.batch, I, I), SeqView::time_major(y, s.batch, H_out, H_out),
                  1, s.batch, nullptr, s.h.data(), s.c_data(), s.workspace);
    }
    return true;
}

bool Stream::process(const float* x, float* y, Index T) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "process");
    if (!use)
        return false;
    const FlushDenormals flushed(s.flush_denormals);
    const Index I = s.spec.input_size, H_out = s.spec.output_size();
    if (s.row_step) {
        // One row, step after step through the row kernels, in one version of the weights.
        s.cells_now();
        for (Index t = 0; t < T; ++t)
            s.step_one_row(x + t * I, y + t * H_out);
        return true;
    }
    const RunWeights weights = s.weights();
    const ConstSeqView xs = ConstSeqView::of(x, T, s.batch, I, I, s.spec.batch_first);
    const SeqView ys = SeqView::of(y, T, s.batch, H_out, H_out, s.spec.batch_first);
    for (Index t0 = 0; t0 < T; t0 += block_steps)
        run_stack(weights, xs.from_step(t0), ys.from_step(t0), std::min(block_steps, T - t0), s.batch, nullptr,
                  s.h.data(), s.c_data(), s.workspace);
    return true;
}

bool Stream::reset() noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] {
        std::fill(s.h.begin(), s.h.end(), 0.0f);
        std::fill(s.c.begin(), s.c.end(), 0.0f);
    });
}

bool Stream::reset(Index i) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] {
        zero_state_row(s.h, s.c, s.spec.num_layers, s.batch, i);
    });
}

bool Stream::get_state(float* h, float* c) const noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        copy_state_out(s.h, s.c, h, c);
    });
}

bool Stream::set_state(const float* h, const float* c) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        copy_state_in(s.h, s.c, h, c);
    });
}

const char* Stream::busy_with() const noexcept { return impl_->in_use.holder(); }

void Stream::set_flush_denormals(bool flush) noexcept { impl_->flush_denormals = flush; }
bool Stream::flush_denormals() const noexcept { return impl_->flush_denormals; }

}  // namespace streamrnn
