// cpp/src/model.cpp: Model: its weights' initialisation, and its whole-sequence calls, each split
// across threads by rows of the batch where it pays. Part of streamrnn, MIT licence.
#include "streamrnn/model.hpp"

#include "streamrnn/errors.hpp"

#include "carried_state.hpp"
#include "initial_state.hpp"
#include "layer.hpp"
#include "model_access.hpp"
#include "parallel.hpp"
#include "record.hpp"
#include "sizes.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace streamrnn {

namespace {

/// Parts a training forward splits its batch into on `threads` threads (1: none).
Index training_parts(Index T, Index B, int threads)
{
    // Each part must keep the matrix kernel's tiles full and repay its thread: rows of at least
    // two tiles, and enough steps.
    constexpr Index min_rows = 16, min_steps = 8;
    if (!STREAMRNN_THREADS || threads <= 1 || T < min_steps)
        return 1;
    return std::clamp<Index>(B / min_rows, 1, threads);
}

/// Parts a forward splits its batch into: one per thread, at most one per row.
Index forward_parts(Index B, int threads)
{
    return STREAMRNN_THREADS ? std::clamp<Index>(threads, 1, std::max<Index>(B, 1)) : 1;
}

/// The state rows of every part of a batch: [L * D, B, width] split into each part's copy.
std::vector<PartState> part_states(const std::vector<BatchPart>& parts, Index cells, Index width)
{
    std::vector<PartState> states;
    for (const BatchPart& part : parts)
        states.emplace_back(cells, part.rows, width);
    return states;
}

/// Writes the initial state of `set` into the state of B rows: h [cells, B, H_out], c [cells, B, H].
void fill_from(const ModelSpec& spec, const detail::WeightSet& set, Index B, float* h, float* c)
{
    const InitialState initial = InitialState::of(spec, set);
    const Index cells = Index(spec.num_layers) * spec.directions();
    const Index c_width = spec.has_cell_state() ? spec.hidden_size : 0;
    for (Index i = 0; i < B; ++i)
        start_state_row(h, c, cells, B, spec.output_size(), c_width, i, initial.h, initial.c);
}

/// gradient [cells, H_out] then [cells, H] += dh0 [cells, B, H_out] and dc0 [cells, B, H] summed
/// over their rows.
void add_initial_state_gradient(const ModelSpec& spec, Index B, const float* dh0, const float* dc0, float* gradient)
{
    const Index cells = Index(spec.num_layers) * spec.directions();
    auto add = [&](const float* d, Index width, float* into) {
        for (Index cell = 0; cell < cells; ++cell)
            mat(into + cell * width, 1, width) += mat(d + cell * B * width, B, width).colwise().sum();
    };
    add(dh0, spec.output_size(), gradient);
    if (spec.has_cell_state())
        add(dc0, spec.hidden_size, gradient + cells * spec.output_size());
}

}  // namespace

Model::Model(const ModelSpec& spec)
    : Trainable(tensor_table(spec)), spec_(spec),
      training_(std::make_unique<TrainingState>(std::random_device{}()))
{
    store().set_derive([spec](const detail::WeightSet& set, int kind) -> std::unique_ptr<const detail::DerivedCopies> {
        return std::make_unique<DerivedWeights>(spec, WeightCopies::of_kind(kind), set.values.data());
    });
}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model::Model(const ModelSpec& spec, std::uint64_t seed) : Model(spec)
{
    training_->dropout_rng.seed(seed ^ 0x9e3779b97f4a7c15ULL);  // a stream of its own, apart from the weights'

    // uniform(-k, k) with k = 1/sqrt(H), as PyTorch initialises every RNN weight and bias.
    std::mt19937_64 engine(seed);
    const float k = 1.0f / std::sqrt(static_cast<float>(spec_.hidden_size));
    Update initial = update();
    for (const TensorInfo& tensor : tensors_)
        if (tensor.name.compare(0, 8, "initial_") != 0)  // a learned initial state starts at zeros
            fill_uniform(initial.data(), tensor, k, engine);
    initial.commit();
}

bool Model::has_initial_state() const
{
    return spec_.learn_initial_state || !store().current()->initial.empty();
}

void Model::initial_state(float* h0, float* c0) const
{
    const std::shared_ptr<const detail::WeightSet> set = store().current();
    const InitialState initial = InitialState::of(spec_, *set);
    const std::size_t cells = static_cast<std::size_t>(spec_.num_layers) * spec_.directions();
    const std::size_t h_floats = cells * spec_.output_size(), c_floats = cells * spec_.hidden_size;
    auto copy = [](const float* from, float* to, std::size_t n) {
        if (to && from)
            std::copy_n(from, n, to);
        else if (to)
            std::fill_n(to, n, 0.0f);
    };
    copy(initial.h, h0, h_floats);
    if (spec_.has_cell_state())
        copy(initial.c, c0, c_floats);
}

void Model::set_initial_state(const float* h0, const float* c0)
{
    const std::size_t cells = static_cast<std::size_t>(spec_.num_layers) * spec_.directions();
    const std::size_t h_floats = cells * spec_.output_size();
    const std::size_t c_floats = spec_.has_cell_state() ? cells * spec_.hidden_size : 0;
    auto write = [&](float* into) {
        if (h0)
            std::copy_n(h0, h_floats, into);
        else
            std::fill_n(into, h_floats, 0.0f);
        if (c0)
            std::copy_n(c0, c_floats, into + h_floats);
        else
            std::fill_n(into + h_floats, c_floats, 0.0f);
    };
    if (spec_.learn_initial_state) {
        Update update = this->update();
        write(update.data() + (spec_.parameter_count() - h_floats - c_floats));
        update.commit();
        return;
    }
    Buffer initial;
    if (h0 || c0) {
        initial.assign(h_floats + c_floats, 0.0f);
        write(initial.data());
    }
    store().publish_initial(std::move(initial));
}

void Model::fill_initial_state(Index B, float* h, float* c) const
{
    fill_from(spec_, *store().current(), B, h, c);
}

void Model::forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                    int threads) const
{
    check_lengths(T, B, lengths);
    if (T == 0 || B == 0)  // no step: the state stays as it is
        return;
    const Index I = spec_.input_size;
    const Index Y = spec_.directions() * spec_.output_size();
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec_.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec_.batch_first);
    const std::shared_ptr<const detail::WeightSet> weights = store().current();
    const std::vector<BatchPart> parts = split_batch(B, forward_parts(B, threads));
    if (parts.size() == 1) {
        // One part: the copies of the weights that pay over this call's steps and rows.
        const RunWeights run{spec_, weights->values.data(),
                             ModelAccess::copies(*this, *weights, weight_copies_for(spec_, T, B, false))};
        Workspace ws(spec_, T, B, false, threads);
        run_stack(run, xs, ys, T, B, lengths, h, c, ws);
        return;
    }
    // Each part works on a copy of its rows of the state ([cells, B, ...]); everything is
    // allocated here, before any thread starts.
    const Index cells = Index(spec_.num_layers) * spec_.directions();
    std::vector<PartState> hs = part_states(parts, cells, spec_.output_size());
    std::vector<PartState> cs = part_states(parts, cells, c ? spec_.hidden_size : 0);
    std::vector<Workspace> workspaces;
    std::vector<RunWeights> runs;
    workspaces.reserve(parts.size());
    for (const BatchPart& part : parts) {
        workspaces.emplace_back(spec_, T, part.rows, false, 1);
        runs.push_back({spec_, weights->values.data(),
                        ModelAccess::copies(*this, *weights, weight_copies_for(spec_, T, part.rows, false))});
    }
    run_parallel(static_cast<Index>(parts.size()), [&](Index p) {
        const BatchPart& part = parts[static_cast<std::size_t>(p)];
        PartState& part_h = hs[static_cast<std::size_t>(p)];
        PartState& part_c = cs[static_cast<std::size_t>(p)];
        part_h.gather(h, B, part);
        part_c.gather(c, B, part);
        run_stack(runs[static_cast<std::size_t>(p)], xs.from_row(part.first), ys.from_row(part.first), T, part.rows,
                  lengths ? lengths + part.first : nullptr, part_h.data(), c ? part_c.data() : nullptr,
                  workspaces[static_cast<std::size_t>(p)]);
        part_h.scatter(h, B, part);
        part_c.scatter(c, B, part);
    });
}

void Model::forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                          float* c, int threads, bool from_initial_state)
{
    check_lengths(T, B, lengths);
    const Exclusive::Hold hold(training_->record_use, "forward(train=True)", "this model's training record");
    const Index I = spec_.input_size, Y = spec_.directions() * spec_.output_size();
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec_.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec_.batch_first);
    ForwardRecord& record = training_->record;
    const std::vector<BatchPart> parts =
        T == 0 || B == 0 ? std::vector<BatchPart>{} : split_batch(B, training_parts(T, B, threads));

    // Everything is allocated before the record changes: a forward that fails keeps the last one.
    // The record's buffers serve again: a training loop then allocates (and the system zeroes
    // pages) once, not every step, and never holds two records at a time.
    std::shared_ptr<const detail::WeightSet> weights = store().current();
    const Index cells = Index(spec_.num_layers) * spec_.directions();
    const bool split = parts.size() > 1;
    std::vector<PartState> hs = part_states(split ? parts : std::vector<BatchPart>{}, cells, spec_.output_size());
    std::vector<PartState> cs =
        part_states(split ? parts : std::vector<BatchPart>{}, cells, c ? spec_.hidden_size : 0);
    std::vector<Workspace> workspaces;
    // Copies of its own, not the model's shared ones: training changes the weights after every
    // step, and copies kept with them through backward would only add to its peak memory.
    std::vector<DerivedWeights> copies;
    std::vector<std::mt19937_64> rngs;
    workspaces.reserve(parts.size());
    copies.reserve(parts.size());
    for (const BatchPart& part : parts) {
        workspaces.emplace_back(spec_, T, part.rows, true, split ? 1 : threads);
        copies.emplace_back(spec_, weight_copies_for(spec_, T, part.rows, false), weights->values.data());
        if (split)
            rngs.emplace_back(training_->dropout_rng());  // a dropout stream of its own per part
    }
    if (from_initial_state)
        fill_from(spec_, *weights, B, h, c);
    prepare_record(record, spec_, T, B, lengths, parts);
    training_->recorded = false;  // until the new record is complete
    training_->from_initial_state = from_initial_state;
    record.weights = std::move(weights);
    run_parallel(static_cast<Index>(parts.size()), [&](Index p) {
        const std::size_t k = static_cast<std::size_t>(p);
        ForwardRecord::Part& part = record.parts[k];
        const RunWeights run{spec_, record.weights->values.data(), &copies[k]};
        float* part_h = h;
        float* part_c = c;
        if (split) {
            hs[k].gather(h, B, part.rows);
            cs[k].gather(c, B, part.rows);
            part_h = hs[k].data();
            part_c = c ? cs[k].data() : nullptr;
        }
        run_stack(run, xs.from_row(part.rows.first), ys.from_row(part.rows.first), T, part.rows.rows,
                  record.lengths.empty() ? nullptr : record.lengths.data() + part.rows.first, part_h, part_c,
                  workspaces[k], &part.view, split ? &rngs[k] : &training_->dropout_rng);
        if (split) {
            hs[k].scatter(h, B, part.rows);
            cs[k].scatter(c, B, part.rows);
        }
    });
    training_->recorded = true;
}

Index Model::recorded_steps(const char* call) const
{
    const Exclusive::Hold hold(training_->record_use, call, "this model's training record");
    if (!training_->recorded)
        raise_no_training_forward("model");
    return training_->record.T;
}

Index Model::recorded_batch(const char* call) const
{
    const Exclusive::Hold hold(training_->record_use, call, "this model's training record");
    if (!training_->recorded)
        raise_no_training_forward("model");
    return training_->record.B;
}

void Model::backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                     int threads, Index steps, Index batch)
{
    const Exclusive::Hold hold(training_->record_use, "backward", "this model's training record");
    if (!training_->recorded)
        raise_no_training_forward("model");
    const ForwardRecord& record = training_->record;
    const Index T = record.T, B = record.B;
    if ((steps >= 0 && steps != T) || (batch >= 0 && batch != B))
        raise(ErrorKind::busy, "backward: the training record changed after its arrays were made (another thread "
                               "ran forward(train=True) in between); the record is for one thread at a time");
    GradientLease lease = lease_gradients("backward");
    float* gradients = lease.make();
    const Index initial_floats = Index(spec_.num_layers) * spec_.directions() * spec_.initial_state_width();
    const bool learns_start = training_->from_initial_state && spec_.learn_initial_state;
    Buffer own_dc0;  // the c part of the initial state's gradient, where the caller wants none
    if (learns_start && spec_.has_cell_state() && !dc0) {
        own_dc0.assign(buffer_size({spec_.num_layers * spec_.directions(), B, spec_.hidden_size}), 0.0f);
        dc0 = own_dc0.data();
    }
    const auto run = [&] {
        const Index Y = spec_.directions() * spec_.output_size(), I = spec_.input_size;
        const Index cells = Index(spec_.num_layers) * spec_.directions();
        const Index H_out = spec_.output_size(), H = dc0 ? spec_.hidden_size : 0;
        if (record.parts.empty()) {
            // No step: the state's gradient passes through as it came.
            auto pass = [&](const float* given, float* out, Index size) {
                if (given)
                    std::copy(given, given + size, out);
                else
                    std::fill(out, out + size, 0.0f);
            };
            pass(dh_n, dh0, cells * B * H_out);
            if (dc0)
                pass(dc_n, dc0, cells * B * H);
            return;
        }
        const ConstSeqView dys = ConstSeqView::of(dy, T, B, Y, Y, spec_.batch_first);
        const SeqView dxs = SeqView::of(dx, T, B, I, I, spec_.batch_first);
        if (!record.chunks.empty()) {
            backward_chunked(spec_, record, gradients, dys, dh_n, dc_n, dxs, dh0, dc0);
            return;
        }
        const float* parameters = record.weights->values.data();
        std::vector<BatchPart> rows;
        for (const ForwardRecord::Part& part : record.parts)
            rows.push_back(part.rows);
        if (rows.size() == 1) {
            run_backward({spec_, parameters, gradients, record.parts[0].view, T, B, record.lengths_data()}, dys, dh_n,
                         dc_n, dxs, dh0, dc0, threads);
            return;
        }
        // Each part of the batch back through its own record on its own thread, into its own state
        // gradients and (past the first part) its own weight gradients, summed at the end. Everything
        // is allocated here.
        std::vector<PartState> dh_ns = part_states(rows, cells, dh_n ? H_out : 0);
        std::vector<PartState> dc_ns = part_states(rows, cells, dc_n ? H : 0);
        std::vector<PartState> dh0s = part_states(rows, cells, H_out);
        std::vector<PartState> dc0s = part_states(rows, cells, H);
        std::vector<Buffer> part_gradients(rows.size());
        for (std::size_t k = 1; k < rows.size(); ++k)
            part_gradients[k].assign(parameter_count(), 0.0f);
        run_parallel(static_cast<Index>(rows.size()), [&](Index p) {
            const std::size_t k = static_cast<std::size_t>(p);
            const BatchPart& part = rows[k];
            dh_ns[k].gather(dh_n, B, part);
            dc_ns[k].gather(dc_n, B, part);
            const BackwardPass pass{spec_,
                                    parameters,
                                    k == 0 ? gradients : part_gradients[k].data(),
                                    record.parts[k].view,
                                    T,
                                    part.rows,
                                    record.lengths.empty() ? nullptr : record.lengths.data() + part.first};
            run_backward(pass, dys.from_row(part.first), dh_n ? dh_ns[k].data() : nullptr, dc_n ? dc_ns[k].data() : nullptr,
                         dxs.from_row(part.first), dh0s[k].data(), dc0 ? dc0s[k].data() : nullptr, 1);
            dh0s[k].scatter(dh0, B, part);
            dc0s[k].scatter(dc0, B, part);
        });
        for (std::size_t k = 1; k < rows.size(); ++k)
            mat(gradients, 1, static_cast<Index>(parameter_count())) +=
                mat(static_cast<const float*>(part_gradients[k].data()), 1, static_cast<Index>(parameter_count()));
    };
    run();
    if (learns_start)  // every row started from it: its gradient is the rows' sum
        add_initial_state_gradient(spec_, B, dh0, dc0, gradients + (parameter_count() - initial_floats));
}

}  // namespace streamrnn
