// cpp/src/stream.cpp: Stream, a StackStream behind the guard that keeps it to one thread at a
// time, in the floating point mode its steps want. Part of streamrnn, MIT licence.
#include "streamrnn/stream.hpp"

#include "carried_state.hpp"
#include "denormals.hpp"
#include "exclusive.hpp"
#include "stack_stream.hpp"

namespace streamrnn {

static_assert(Stream::block_steps == StackStream::block_steps, "one block size for every stream");

struct Stream::Impl {
    Impl(std::shared_ptr<const Model> model, Index batch) : stack(std::move(model), batch) {}

    StackStream stack;
    bool flush_denormals = true;
    mutable Exclusive in_use;
};

Stream::Stream(std::shared_ptr<const Model> model, Index batch) : impl_(std::make_unique<Impl>(std::move(model), batch))
{
}

Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

const Model& Stream::model() const { return impl_->stack.model(); }
Index Stream::batch() const { return impl_->stack.batch(); }
std::size_t Stream::h_size() const { return impl_->stack.h().size(); }
std::size_t Stream::c_size() const { return impl_->stack.c().size(); }

bool Stream::step(const float* x, float* y) noexcept
{
    Impl& s = *impl_;
    // The floating point mode first, then the stream: its atomic exchange, which waits for earlier
    // stores, next to the mode's writes costs more (bench_step: up to 13 ns a step otherwise).
    const FlushDenormals flushed(s.flush_denormals);
    const Exclusive::TryHold use(s.in_use, "step");
    if (!use)
        return false;
    s.stack.step(x, y);
    return true;
}

bool Stream::process(const float* x, float* y, Index T) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "process");
    if (!use)
        return false;
    const FlushDenormals flushed(s.flush_denormals);
    const ModelSpec& spec = s.stack.spec();
    const Index I = spec.input_size, H_out = spec.output_size(), B = s.stack.batch();
    s.stack.process(ConstSeqView::of(x, T, B, I, I, spec.batch_first), SeqView::of(y, T, B, H_out, H_out, spec.batch_first),
                    T);
    return true;
}

bool Stream::reset() noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] { s.stack.start(); });
}

bool Stream::reset(Index i) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] { s.stack.start_row(i); });
}

bool Stream::get_state(float* h, float* c) const noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] { copy_state_out(s.stack.h(), s.stack.c(), h, c); });
}

bool Stream::set_state(const float* h, const float* c) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] { copy_state_in(s.stack.h(), s.stack.c(), h, c); });
}

const char* Stream::busy_with() const noexcept { return impl_->in_use.holder(); }

void Stream::set_flush_denormals(bool flush) noexcept { impl_->flush_denormals = flush; }
bool Stream::flush_denormals() const noexcept { return impl_->flush_denormals; }

}  // namespace streamrnn
