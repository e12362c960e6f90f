// cpp/src/stack_stream.cpp: StackStream, a recurrent stack's steps with its state carried: the
// one-row path for a step of one row, the stack for the rest. Part of streamrnn, MIT licence.
#include "stack_stream.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "initial_state.hpp"
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
    check_stream_batch(batch);
    return *model;
}

}  // namespace

StackStream::StackStream(std::shared_ptr<const Model> model, Index batch)
    : model_(std::move(model)), spec_(checked(model_, batch).spec()), batch_(batch),
      kind_(weight_copies_for(spec_, block_steps, batch, true).kind()), reader_(ModelAccess::store(*model_), kind_),
      workspace_(spec_, block_steps, batch, false), forward_step_(forward_step_of(spec_))
{
    h_.assign(buffer_size({spec_.num_layers, batch, spec_.output_size()}), 0.0f);
    if (spec_.has_cell_state())
        c_.assign(buffer_size({spec_.num_layers, batch, spec_.hidden_size}), 0.0f);
    cells_.resize(static_cast<std::size_t>(spec_.num_layers));
    if (WeightCopies::of_kind(kind_).row) {
        row_step_ = row_kernels()->step(row_cell(spec_), weights_of(reader_.acquire()).copies->row_lanes);
        row_layers_.resize(static_cast<std::size_t>(spec_.num_layers));
        row_scratch_.assign(static_cast<std::size_t>(
                                row_scratch_floats(std::max(spec_.hidden_size, spec_.output_size()))),
                            0.0f);
    }
    start();
}

RunWeights StackStream::weights_of(const detail::WeightSet& set) const noexcept
{
    return {spec_, set.values.data(),
            static_cast<const DerivedWeights*>(
                set.derived[static_cast<std::size_t>(kind_)].load(std::memory_order_acquire))};
}

void StackStream::work_out_cells(const detail::WeightSet& set) noexcept
{
    const RunWeights run = weights_of(set);
    for (int layer = 0; layer < spec_.num_layers; ++layer) {
        const auto l = static_cast<std::size_t>(layer);
        if (row_step_) {
            const CellWeights w = run.cell(layer, 0, 1);
            row_layers_[l] = {run.copies->row_panels[l].data(),
                              run.copies->row_biases[l].data(),
                              run.copies->row_projections[l].empty() ? nullptr
                                                                     : run.copies->row_projections[l].data(),
                              w.input_size,
                              w.hidden_size,
                              w.output_size,
                              spec_.residual_at(layer),
                              w.peephole,
                              w.options.clip,
                              w.options.input_forget};
        } else {
            cells_[l] = run.cell(layer, 0, 1);
        }
    }
    cells_version_ = set.version;
}

void StackStream::step_rows(const float* x, float* y) noexcept
{
    const Index I = spec_.input_size, H_out = spec_.output_size();
    run_stack(weights_of(reader_.acquire()), ConstSeqView::time_major(x, batch_, I, I),
              SeqView::time_major(y, batch_, H_out, H_out), 1, batch_, nullptr, h_.data(), c_data(), workspace_);
}

void StackStream::process(ConstSeqView xs, SeqView ys, Index T) noexcept
{
    if (row_step_) {
        // One row, step after step through the row kernels, in one version of the weights.
        cells_now();
        for (Index t = 0; t < T; ++t)
            step_one_row(xs.row(t, 0), ys.row(t, 0));
        return;
    }
    const RunWeights weights = weights_of(reader_.acquire());
    for (Index t0 = 0; t0 < T; t0 += block_steps)
        run_stack(weights, xs.from_step(t0), ys.from_step(t0), std::min(block_steps, T - t0), batch_, nullptr,
                  h_.data(), c_data(), workspace_);
}

void StackStream::start() noexcept
{
    const InitialState initial = InitialState::of(spec_, reader_.acquire());
    start_state(h_, c_, spec_.num_layers, batch_, initial.h, initial.c);
}

void StackStream::start_row(Index i) noexcept
{
    const InitialState initial = InitialState::of(spec_, reader_.acquire());
    start_state_row(h_, c_, spec_.num_layers, batch_, i, initial.h, initial.c);
}

}  // namespace streamrnn
