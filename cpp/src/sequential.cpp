// cpp/src/sequential.cpp: Sequential, blocks run one after another over whole sequences (forward,
// training forward, backward side by side), and SequentialStream, the same a step at a time.
// Part of streamrnn, MIT licence.
#include "streamrnn/sequential.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "cells/options.hpp"
#include "denormals.hpp"
#include "exclusive.hpp"
#include "kernels/gemm.hpp"
#include "kernels/row_kernels.hpp"
#include "model_access.hpp"
#include "sizes.hpp"
#include "stack_stream.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

namespace streamrnn {

namespace {

bool is_block_function(const ActivationFunction& f)
{
    switch (f.kind) {
    case Activation::sigmoid:
    case Activation::tanh:
    case Activation::relu:
    case Activation::softsign:
    case Activation::gelu: return f.alpha == 0.0f && f.beta == 0.0f;
    case Activation::leaky_relu:
    case Activation::elu: return f.beta == 0.0f && std::isfinite(f.alpha);
    case Activation::affine: return f.alpha == 1.0f && f.beta == 0.0f;
    default: return false;
    }
}

std::string block_where(std::size_t index, const Block& block)
{
    return "blocks[" + std::to_string(index) + "] (" + block.name() + ")";
}

/// out [N, width] = f(in), element by element, in fixed blocks of eight: Eigen runs a vector of
/// dynamic size shorter than its widest packet (AVX-512's sixteen) element by element, a scalar
/// tanh each, where a block of eight is one AVX packet.
void apply_function(const ActivationFunction& f, const float* in, Index N, Index width, float* out) noexcept
{
    const Index n = N * width;
    std::copy_n(in, n, out);
    Index i = 0;
    for (; i + 8 <= n; i += 8)
        cells::activate(f, Eigen::Map<Eigen::Matrix<float, 8, 1>>(out + i));
    if (i < n)
        cells::activate(f, Eigen::Map<Eigen::VectorXf>(out + i, n - i));
}

/// y [N, out] = x [N, in] W^T + b, with the weights of one version (`values`: W then b).
void linear_rows(const Linear& linear, const float* values, const float* x, Index N, float* y, GemmSpace& space) noexcept
{
    const Index in = linear.in_features(), out = linear.out_features();
    auto result = mat(y, N, out);
    space.multiply_transposed(mat(x, N, in), mat(values, out, in), result, false);
    if (linear.has_bias())
        result.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(values + out * in, out);
}

/// y [out] = W x + b for one row (a stream's step of one row), with the weights of one version: a
/// vector of eight partial sums per output, kept in a register. Eigen's general product costs more
/// in its setup than in its arithmetic at the sizes of audio models' heads.
void linear_row(const Linear& linear, const float* values, const float* x, float* y) noexcept
{
    using Lanes = Eigen::Array<float, 8, 1>;
    const Index in = linear.in_features(), out = linear.out_features();
    const float* bias = linear.has_bias() ? values + out * in : nullptr;
    if (in == 1) {  // a mono sample in: one product per output, vectorised across them
        for (Index o = 0; o < out; ++o)
            y[o] = (bias ? bias[o] : 0.0f) + values[o] * x[0];
        return;
    }
    for (Index o = 0; o < out; ++o) {
        const float* w = values + o * in;
        Index i = 0;
        float sum = bias ? bias[o] : 0.0f;
        if (in >= 8) {
            Lanes partial = Lanes::Map(w) * Lanes::Map(x);
            for (i = 8; i + 8 <= in; i += 8)
                partial += Lanes::Map(w + i) * Lanes::Map(x + i);
            sum += partial.sum();
        }
        for (; i < in; ++i)
            sum += w[i] * x[i];
        y[o] = sum;
    }
}

/// Zeros the rows of y [T x B rows of width, in its layout] at or past each row's length.
void zero_past_lengths(float* y, Index T, Index B, Index width, bool batch_first, const std::int64_t* lengths)
{
    if (!lengths)
        return;
    const SeqView ys = SeqView::of(y, T, B, width, width, batch_first);
    for (Index b = 0; b < B; ++b)
        for (Index t = std::max<Index>(lengths[b], 0); t < T; ++t)
            std::fill_n(ys.row(t, b), width, 0.0f);
}

/// A recurrent block's state for B rows, where the caller gave none.
struct OwnState {
    Buffer h, c;
    OwnState(const ModelSpec& spec, Index B)
    {
        const Index cells = Index(spec.num_layers) * spec.directions();
        h.assign(buffer_size({cells, B, spec.output_size()}), 0.0f);
        if (spec.has_cell_state())
            c.assign(buffer_size({cells, B, spec.hidden_size}), 0.0f);
    }
    StateRef ref() { return {h.data(), c.empty() ? nullptr : c.data()}; }
};

}  // namespace

// ---- Block --------------------------------------------------------------------------------------

namespace {

/// The block functions by name, as Block::name gives them.
constexpr std::pair<const char*, Activation> block_functions[] = {
    {"Tanh", Activation::tanh},      {"Sigmoid", Activation::sigmoid}, {"ReLU", Activation::relu},
    {"LeakyReLU", Activation::leaky_relu}, {"ELU", Activation::elu},   {"Softsign", Activation::softsign},
    {"GELU", Activation::gelu},      {"Identity", Activation::affine}};

}  // namespace

bool block_function_takes_alpha(const std::string& name) { return name == "LeakyReLU" || name == "ELU"; }

bool block_function(const std::string& name, float alpha, ActivationFunction& function)
{
    for (const auto& [text, kind] : block_functions)
        if (name == text) {
            function = {kind, kind == Activation::affine ? 1.0f : block_function_takes_alpha(name) ? alpha : 0.0f,
                        0.0f};
            return true;
        }
    return false;
}

Block Block::of(std::shared_ptr<Linear> linear)
{
    Block block;
    block.kind = Kind::linear;
    block.linear = std::move(linear);
    return block;
}

Block Block::of(ActivationFunction function)
{
    Block block;
    block.kind = Kind::function;
    block.function = function;
    return block;
}

Block Block::of(std::shared_ptr<Model> recurrent)
{
    Block block;
    block.kind = Kind::recurrent;
    block.recurrent = std::move(recurrent);
    return block;
}

int Block::input_size() const
{
    switch (kind) {
    case Kind::linear: return linear->in_features();
    case Kind::recurrent: return recurrent->spec().input_size;
    default: return -1;
    }
}

int Block::output_size() const
{
    switch (kind) {
    case Kind::linear: return linear->out_features();
    case Kind::recurrent: return recurrent->spec().directions() * recurrent->spec().output_size();
    default: return -1;
    }
}

std::string Block::name() const
{
    switch (kind) {
    case Kind::linear: return "Linear";
    case Kind::recurrent: {
        const CellKind cell = recurrent->spec().kind;
        return cell == CellKind::lstm ? "LSTM" : cell == CellKind::gru ? "GRU" : "RNN";
    }
    default: break;
    }
    for (const auto& [text, function_kind] : block_functions)
        if (function.kind == function_kind)
            return text;
    return activation_name(function.kind);
}

// ---- Sequential: whole sequences ----------------------------------------------------------------

/// What backward reads beyond the blocks' own records.
struct Sequential::Record {
    Exclusive use;
    bool recorded = false;
    Index T = 0, B = 0;
    std::vector<std::int64_t> lengths;
    std::vector<Buffer> function_inputs;  ///< per block: a function's input, else empty
};

std::string Sequential::problem(const std::vector<Block>& blocks)
{
    if (blocks.empty())
        return "blocks: a Sequential needs at least one block";
    int width = -1;  // the features between blocks; -1 until a block fixes them
    const ModelSpec* first_recurrent = nullptr;
    for (std::size_t k = 0; k < blocks.size(); ++k) {
        const Block& block = blocks[k];
        if ((block.kind == Block::Kind::linear && !block.linear) ||
            (block.kind == Block::Kind::recurrent && !block.recurrent))
            return "blocks[" + std::to_string(k) + "]: no block";
        if (block.kind == Block::Kind::function && !is_block_function(block.function))
            return block_where(k, block) + ": not a block's function (Tanh, Sigmoid, ReLU, LeakyReLU, ELU, "
                                           "Softsign, GELU, Identity)";
        if (block.kind == Block::Kind::recurrent) {
            const ModelSpec& spec = block.recurrent->spec();
            if (spec.is_cell)
                return block_where(k, block) + ": a cell steps once per call; use the layer";
            if (first_recurrent && spec.batch_first != first_recurrent->batch_first)
                return block_where(k, block) + ": batch_first=" + (spec.batch_first ? "True" : "False") +
                       ", but an earlier recurrent block's is not: one layout for all";
            first_recurrent = first_recurrent ? first_recurrent : &spec;
        }
        if (block.input_size() >= 0) {
            if (width >= 0 && width != block.input_size())
                return block_where(k, block) + ": takes " + std::to_string(block.input_size()) +
                       " features, but the block before gives " + std::to_string(width);
            width = block.output_size();
        }
    }
    if (width < 0)
        return "blocks: only element-wise functions; a Sequential needs a Linear or a recurrent block to fix its "
               "sizes";
    return {};
}

Sequential::Sequential(std::vector<Block> blocks) : blocks_(std::move(blocks)), record_(std::make_unique<Record>())
{
    if (const std::string problem = Sequential::problem(blocks_); !problem.empty())
        raise(ErrorKind::argument, problem);
    for (std::size_t k = 0; k < blocks_.size(); ++k) {
        const Block& block = blocks_[k];
        if (block.kind == Block::Kind::recurrent) {
            batch_first_ = block.recurrent->spec().batch_first;
            recurrent_.push_back(k);
        }
        if (block.input_size() >= 0) {
            input_size_ = input_size_ > 0 ? input_size_ : block.input_size();
            output_size_ = block.output_size();
        }
    }
}

Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;
Sequential::~Sequential() = default;

bool Sequential::bidirectional() const
{
    return std::any_of(recurrent_.begin(), recurrent_.end(),
                       [&](std::size_t k) { return blocks_[k].recurrent->spec().bidirectional; });
}

namespace {

/// The features after each block: its own output size, or (a function) the one before.
std::vector<Index> widths_after(const Sequential& model)
{
    std::vector<Index> widths;
    Index width = model.input_size();
    for (const Block& block : model.blocks()) {
        width = block.output_size() < 0 ? width : block.output_size();
        widths.push_back(width);
    }
    return widths;
}

/// Runs N rows through every block into y: run(k, in, out) computes block k, from in (the input,
/// or the last block's output) into out, one of two buffers in turn, each made here.
template <typename Run>
void through_blocks(const Sequential& model, const float* x, Index N, float* y, Run&& run)
{
    const std::vector<Index> widths = widths_after(model);
    const Index widest = *std::max_element(widths.begin(), widths.end());
    Buffer a(buffer_size({N, widest})), b(buffer_size({N, widest}));
    const float* in = x;
    for (std::size_t k = 0; k < model.blocks().size(); ++k) {
        float* out = in == a.data() ? b.data() : a.data();
        run(k, in, out);
        in = out;
    }
    std::copy_n(in, N * model.output_size(), y);
}

}  // namespace

void Sequential::forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y,
                         const StateRef* states, int threads) const
{
    check_lengths(T, B, lengths);
    const Index N = T * B;
    const std::vector<Index> widths = widths_after(*this);
    std::size_t r = 0;  // recurrent blocks so far
    through_blocks(*this, x, N, y, [&](std::size_t k, const float* in, float* out) {
        const Block& block = blocks_[k];
        if (block.kind == Block::Kind::linear) {
            block.linear->forward(in, N, out);
        } else if (block.kind == Block::Kind::function) {
            apply_function(block.function, in, N, widths[k], out);
        } else {
            const Model& model = *block.recurrent;
            std::optional<OwnState> own;
            StateRef state = states ? states[r] : StateRef{};
            if (!states) {
                state = own.emplace(model.spec(), B).ref();
                model.fill_initial_state(B, state.h, state.c);
            }
            model.forward(in, T, B, lengths, out, state.h, state.c, threads);
            ++r;
        }
    });
    zero_past_lengths(y, T, B, output_size_, batch_first_, lengths);
}

void Sequential::forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y,
                               const StateRef* states, int threads, bool from_initial_state)
{
    check_lengths(T, B, lengths);
    Record& record = *record_;
    const Exclusive::Hold hold(record.use, "forward(train=True)", "this model's training record");
    const Index N = T * B;
    const std::vector<Index> widths = widths_after(*this);
    std::vector<Buffer> function_inputs(blocks_.size());
    std::size_t r = 0;
    record.recorded = false;  // until the new record is complete
    through_blocks(*this, x, N, y, [&](std::size_t k, const float* in, float* out) {
        const Block& block = blocks_[k];
        if (block.kind == Block::Kind::linear) {
            block.linear->forward_train(in, N, out);
        } else if (block.kind == Block::Kind::function) {
            const Index in_width = k == 0 ? input_size_ : widths[k - 1];
            function_inputs[k].assign(in, in + N * in_width);
            apply_function(block.function, in, N, in_width, out);
        } else {
            Model& model = *block.recurrent;
            std::optional<OwnState> own;
            StateRef state = states ? states[r] : own.emplace(model.spec(), B).ref();
            model.forward_train(in, T, B, lengths, out, state.h, state.c, threads, !states || from_initial_state);
            ++r;
        }
    });
    zero_past_lengths(y, T, B, output_size_, batch_first_, lengths);
    record.T = T;
    record.B = B;
    record.lengths.assign(lengths ? lengths : nullptr, lengths ? lengths + B : nullptr);
    record.function_inputs = std::move(function_inputs);
    record.recorded = true;
}

Index Sequential::recorded_steps() const
{
    const Exclusive::Hold hold(record_->use, "recorded_steps", "this model's training record");
    if (!record_->recorded)
        raise_no_training_forward("model");
    return record_->T;
}

Index Sequential::recorded_batch() const
{
    const Exclusive::Hold hold(record_->use, "recorded_batch", "this model's training record");
    if (!record_->recorded)
        raise_no_training_forward("model");
    return record_->B;
}

void Sequential::backward(const float* dy, const StateRef* final_gradients, float* dx,
                          const StateRef* initial_gradients, int threads)
{
    Record& record = *record_;
    const Exclusive::Hold hold(record.use, "backward", "this model's training record");
    if (!record.recorded)
        raise_no_training_forward("model");
    const Index T = record.T, B = record.B, N = T * B;
    const std::int64_t* lengths = record.lengths.empty() ? nullptr : record.lengths.data();
    const std::vector<Index> widths = widths_after(*this);
    const Index widest = std::max(Index(input_size_), *std::max_element(widths.begin(), widths.end()));
    // The gradient flows back through two buffers in turn; the steps past a row's length gave
    // zeros whatever their input, so no gradient leaves them.
    Buffer a(buffer_size({N, widest})), b(buffer_size({N, widest}));
    std::copy_n(dy, N * output_size_, a.data());
    zero_past_lengths(a.data(), T, B, output_size_, batch_first_, lengths);
    float* d_out = a.data();
    std::size_t r = recurrent_.size();
    for (std::size_t k = blocks_.size(); k-- > 0;) {
        const Block& block = blocks_[k];
        const Index in_width = k == 0 ? input_size_ : widths[k - 1];
        float* d_in = k == 0 && dx ? dx : d_out == a.data() ? b.data() : a.data();
        if (block.kind == Block::Kind::linear) {
            block.linear->backward(d_out, k == 0 && !dx ? nullptr : d_in);
        } else if (block.kind == Block::Kind::function) {
            const auto slope = cells::slopes(block.function, mat(record.function_inputs[k].data(), N, in_width).array(),
                                             0.0f);
            mat(d_in, N, in_width) = (mat(d_out, N, in_width).array() * slope).matrix();
        } else {
            --r;
            Model& model = *block.recurrent;
            const StateRef given_final = final_gradients ? final_gradients[r] : StateRef{};
            std::optional<OwnState> own;
            StateRef d_initial = initial_gradients ? initial_gradients[r] : own.emplace(model.spec(), B).ref();
            model.backward(d_out, given_final.h, given_final.c, d_in, d_initial.h, d_initial.c, threads);
        }
        d_out = d_in;
    }
}

// ---- SequentialStream: a step at a time ----------------------------------------------------------

namespace {

const Sequential& checked(const std::shared_ptr<const Sequential>& model, Index batch)
{
    if (!model)
        raise(ErrorKind::argument, "stream: no model");
    for (std::size_t k : model->recurrent_blocks())
        if (model->blocks()[k].recurrent->spec().bidirectional)
            raise(ErrorKind::argument, block_where(k, model->blocks()[k]) +
                                           ": a bidirectional block needs the whole sequence (its reverse direction "
                                           "starts at the end); call the model on the sequence");
    check_stream_batch(batch);
    return *model;
}

}  // namespace

struct SequentialStream::Impl {
    static constexpr Index block_steps = StackStream::block_steps;

    /// What stepping one block needs.
    struct Part {
        const Block* block = nullptr;
        Index in_width = 0, out_width = 0;
        std::unique_ptr<StackStream> stack;                   ///< recurrent
        std::unique_ptr<detail::WeightStore::Reader> reader;  ///< linear: its weights, lock-free
        std::unique_ptr<GemmSpace> space;                     ///< linear
        /// Function tanh or sigmoid where this CPU has row kernels: theirs, as the recurrent
        /// blocks' steps compute them (shorter than Eigen's); else null.
        void (*squash)(RowFunction, float*, std::ptrdiff_t) noexcept = nullptr;
        RowFunction squash_function = RowFunction::tanh;
    };

    Impl(std::shared_ptr<const Sequential> model_, Index batch_) : model(std::move(model_)), batch(batch_)
    {
        const Sequential& m = checked(model, batch);
        const std::vector<Index> widths = widths_after(m);
        Index widest = m.input_size();
        for (std::size_t k = 0; k < m.blocks().size(); ++k) {
            const Block& block = m.blocks()[k];
            Part part;
            part.block = &block;
            part.in_width = k == 0 ? m.input_size() : widths[k - 1];
            part.out_width = widths[k];
            if (block.kind == Block::Kind::recurrent) {
                part.stack = std::make_unique<StackStream>(block.recurrent, batch);
                h_floats += part.stack->h().size();
                c_floats += part.stack->c().size();
            } else if (block.kind == Block::Kind::linear) {
                part.reader = std::make_unique<detail::WeightStore::Reader>(ModelAccess::store(*block.linear), -1);
                part.space = std::make_unique<GemmSpace>(block_steps * batch, part.out_width, part.in_width);
            } else if (row_kernels() && (block.function.kind == Activation::tanh ||
                                         block.function.kind == Activation::sigmoid)) {
                part.squash = row_kernels()->squash;
                part.squash_function =
                    block.function.kind == Activation::tanh ? RowFunction::tanh : RowFunction::sigmoid;
            }
            widest = std::max(widest, part.out_width);
            parts.push_back(std::move(part));
        }
        a.assign(buffer_size({block_steps, batch, widest}), 0.0f);
        b.assign(buffer_size({block_steps, batch, widest}), 0.0f);
    }

    /// Block k on `rows` rows (n steps of every row, time-major) from in to out.
    void run_part(Part& part, const float* in, float* out, Index n) noexcept
    {
        const Block& block = *part.block;
        const Index rows = n * batch;
        if (block.kind == Block::Kind::recurrent) {
            if (n == 1)
                part.stack->step(in, out);
            else
                part.stack->process(ConstSeqView::time_major(in, batch, part.in_width, part.in_width),
                                    SeqView::time_major(out, batch, part.out_width, part.out_width), n);
        } else if (block.kind == Block::Kind::linear) {
            const float* values = part.reader->acquire().values.data();
            if (rows == 1)
                linear_row(*block.linear, values, in, out);
            else
                linear_rows(*block.linear, values, in, rows, out, *part.space);
        } else if (part.squash) {
            std::copy_n(in, rows * part.in_width, out);
            part.squash(part.squash_function, out, rows * part.in_width);
        } else {
            apply_function(block.function, in, rows, part.in_width, out);
        }
    }

    /// One step of every row: x [B, I] -> y [B, O], the blocks between them in the two buffers;
    /// the first reads x and the last writes y themselves (no copy in or out).
    void step(const float* x, float* y) noexcept
    {
        const float* in = x;
        for (std::size_t k = 0; k < parts.size(); ++k) {
            float* out = k + 1 == parts.size() ? y : in == a.data() ? b.data() : a.data();
            run_part(parts[k], in, out, 1);
            in = out;
        }
    }

    /// T steps: x's rows of I -> y's rows of O, in either layout, block_steps at a time through
    /// every block (time-major between them).
    void process(ConstSeqView x, SeqView y, Index T) noexcept
    {
        const Index I = model->input_size(), O = model->output_size();
        for (Index t0 = 0; t0 < T; t0 += block_steps) {
            const Index n = std::min(block_steps, T - t0);
            for (Index t = 0; t < n; ++t)
                for (Index r = 0; r < batch; ++r)
                    std::copy_n(x.row(t0 + t, r), I, a.data() + (t * batch + r) * I);
            float* in = a.data();
            float* out = b.data();
            for (Part& part : parts) {
                run_part(part, in, out, n);
                std::swap(in, out);
            }
            for (Index t = 0; t < n; ++t)
                for (Index r = 0; r < batch; ++r)
                    std::copy_n(in + (t * batch + r) * O, O, y.row(t0 + t, r));
        }
    }

    /// Every recurrent block's part of a state copy: h floats at h, c floats at c (either null).
    template <typename Pointer, typename Copy>
    void each_state(Pointer h, Pointer c, Copy&& copy) const noexcept
    {
        for (const Part& part : parts)
            if (part.stack) {
                copy(*part.stack, h, c);
                if (h)
                    h += part.stack->h().size();
                if (c)
                    c += part.stack->c().size();
            }
    }

    std::shared_ptr<const Sequential> model;
    Index batch;
    std::vector<Part> parts;
    std::size_t h_floats = 0, c_floats = 0;
    Buffer a, b;  ///< [block_steps, batch, widest]: the rows between blocks, time-major
    bool flush_denormals = true;
    mutable Exclusive in_use;
};

SequentialStream::SequentialStream(std::shared_ptr<const Sequential> model, Index batch)
    : impl_(std::make_unique<Impl>(std::move(model), batch))
{
}

SequentialStream::SequentialStream(SequentialStream&&) noexcept = default;
SequentialStream& SequentialStream::operator=(SequentialStream&&) noexcept = default;
SequentialStream::~SequentialStream() = default;

const Sequential& SequentialStream::model() const { return *impl_->model; }
Index SequentialStream::batch() const { return impl_->batch; }
std::size_t SequentialStream::h_size() const { return impl_->h_floats; }
std::size_t SequentialStream::c_size() const { return impl_->c_floats; }

bool SequentialStream::step(const float* x, float* y) noexcept
{
    Impl& s = *impl_;
    const FlushDenormals flushed(s.flush_denormals);  // before the guard, as Stream::step
    const Exclusive::TryHold use(s.in_use, "step");
    if (!use)
        return false;
    s.step(x, y);
    return true;
}

bool SequentialStream::process(const float* x, float* y, Index T) noexcept
{
    Impl& s = *impl_;
    const Exclusive::TryHold use(s.in_use, "process");
    if (!use)
        return false;
    const FlushDenormals flushed(s.flush_denormals);
    const Index I = s.model->input_size(), O = s.model->output_size();
    const bool batch_first = s.model->batch_first();
    s.process(ConstSeqView::of(x, T, s.batch, I, I, batch_first), SeqView::of(y, T, s.batch, O, O, batch_first), T);
    return true;
}

bool SequentialStream::reset() noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] {
        for (Impl::Part& part : s.parts)
            if (part.stack)
                part.stack->start();
    });
}

bool SequentialStream::reset(Index i) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("reset", [&] {
        for (Impl::Part& part : s.parts)
            if (part.stack)
                part.stack->start_row(i);
    });
}

bool SequentialStream::get_state(float* h, float* c) const noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        s.each_state(h, c, [](const StackStream& stack, float* h_at, float* c_at) {
            copy_state_out(stack.h(), stack.c(), h_at, c_at);
        });
    });
}

bool SequentialStream::set_state(const float* h, const float* c) noexcept
{
    Impl& s = *impl_;
    return s.in_use.try_run("state", [&] {
        s.each_state(h, c, [](StackStream& stack, const float* h_at, const float* c_at) {
            copy_state_in(stack.h(), stack.c(), h_at, c_at);
        });
    });
}

const char* SequentialStream::busy_with() const noexcept { return impl_->in_use.holder(); }
void SequentialStream::set_flush_denormals(bool flush) noexcept { impl_->flush_denormals = flush; }

}  // namespace streamrnn
