// cpp/src/stream.cpp: Stream, stepping a unidirectional model with its state carried.
// Part of streamrnn, MIT licence.
#include "streamrnn/stream.hpp"

#include "streamrnn/errors.hpp"

#include "denormals.hpp"
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
              "batch: expected 1 to " + std::to_string(max_batch) + " streams, got " +
                  std::to_string(batch));
    return *model;
}

}  // namespace

Stream::Stream(std::shared_ptr<const Model> model, Index batch)
    : model_(std::move(model)), batch_(batch),
      workspace_(checked(model_, batch).spec(), block_steps, batch, false,
                 weight_copies_for(model_->spec(), block_steps, batch, true))
{
    const ModelSpec& spec = model_->spec();
    h_.assign(buffer_size({spec.num_layers, batch, spec.output_size()}), 0.0f);
    if (spec.has_cell_state())
        c_.assign(buffer_size({spec.num_layers, batch, spec.hidden_size}), 0.0f);
}

void Stream::step(const float* x, float* y) noexcept
{
    if (batch_ > 1) {
        process(x, y, 1);
        return;
    }
    const FlushDenormals flushed(flush_denormals_);
    model_->step_row(x, y, h_.data(), c_.empty() ? nullptr : c_.data(), workspace_);
}

void Stream::process(const float* x, float* y, Index T) noexcept
{
    const FlushDenormals flushed(flush_denormals_);
    const ModelSpec& spec = model_->spec();
    const ConstSeqView xs = ConstSeqView::of(x, T, batch_, spec.input_size, spec.input_size, spec.batch_first);
    const SeqView ys = SeqView::of(y, T, batch_, spec.output_size(), spec.output_size(), spec.batch_first);
    for (Index t0 = 0; t0 < T; t0 += block_steps) {
        model_->run(xs.from_step(t0), ys.from_step(t0), std::min(block_steps, T - t0), batch_, nullptr, h_.data(),
                    c_.empty() ? nullptr : c_.data(), workspace_);
    }
}

void Stream::reset() noexcept
{
    std::fill(h_.begin(), h_.end(), 0.0f);
    std::fill(c_.begin(), c_.end(), 0.0f);
}

void Stream::reset(Index i) noexcept
{
    if (i < 0 || i >= batch_)
        return;
    const ModelSpec& spec = model_->spec();
    for (Index layer = 0; layer < spec.num_layers; ++layer) {
        mat(h_.data() + (layer * batch_ + i) * spec.output_size(), 1, spec.output_size()).setZero();
        if (!c_.empty())
            mat(c_.data() + (layer * batch_ + i) * spec.hidden_size, 1, spec.hidden_size).setZero();
    }
}

}  // namespace streamrnn
