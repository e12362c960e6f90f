// cpp/src/model.cpp: the parameter table, initialisation, and the stack of scans that runs a model.
// Part of streamrnn, MIT licence.
#include "streamrnn/model.hpp"

#include "streamrnn/errors.hpp"

#include "gemm.hpp"
#include "sizes.hpp"
#include "threads.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <random>
#if STREAMRNN_THREADS
#include <mutex>
#endif

namespace streamrnn {

namespace {

/// PyTorch's tensors of a recurrent model, layer by layer, direction by direction.
std::vector<TensorInfo> tensor_table(const ModelSpec& spec)
{
    spec.validate();
    std::vector<TensorInfo> table;
    const long long G = spec.gate_rows();
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        for (int direction = 0; direction < spec.directions(); ++direction) {
            const std::string suffix = spec.is_cell ? std::string()
                                                    : "_l" + std::to_string(layer) + (direction ? "_reverse" : "");
            table.push_back({"weight_ih" + suffix, {G, spec.layer_input_size(layer)}});
            table.push_back({"weight_hh" + suffix, {G, spec.output_size()}});
            if (spec.bias) {
                table.push_back({"bias_ih" + suffix, {G}});
                table.push_back({"bias_hh" + suffix, {G}});
            }
            if (spec.proj_size > 0)
                table.push_back({"weight_hr" + suffix, {spec.proj_size, spec.hidden_size}});
        }
    }
    return table;
}

/// Steps [0, T) of B rows from one view to another: a change of layout.
void copy_steps(ConstSeqView from, SeqView to, Index T, Index B)
{
    for (Index t = 0; t < T; ++t)
        to.step(t, B) = from.step(t, B);
}

/// to(t, b) += from(t, b) at every valid step: the residual join, and its gradient on the way
/// back. Padded steps stay zero, and pass nothing back.
void add_valid_steps(ConstSeqView from, SeqView to, Index T, Index B, const std::int64_t* lengths)
{
    for (Index t = 0; t < T; ++t)
        for (Index b = 0; b < B; ++b)
            if (!lengths || t < lengths[b])
                mat(to.row(t, b), 1, to.width).noalias() += mat(from.row(t, b), 1, from.width);
}

/// Copies what the backward step at time t will read into the record.
void keep_step(LayerRecord& record, Index t, const StepState& step, const StepBuffers& buffers, const CellWeights& w,
               const ModelSpec& spec)
{
    const Index B = step.h_prev.rows();
    const Index H = w.hidden_size;
    mat(record.h_prev.data() + t * B * w.output_size, B, w.output_size) = step.h_prev;
    if (spec.has_cell_state()) {
        mat(record.c_prev.data() + t * B * H, B, H) = step.c_prev;
        mat(record.c_next.data() + t * B * H, B, H) = step.c_next;
    }
    if (record.extra.empty())
        return;
    // GRU reset-after: W_hn h + b_hn, the n block of the recurrent product; otherwise the step's
    // hidden buffer (LSTM o * tanh c', GRU reset-before r * h).
    const bool reset_after_gru = spec.kind == CellKind::gru && spec.reset_after;
    mat(record.extra.data() + t * B * H, B, H) =
        reset_after_gru ? mat(static_cast<const float*>(buffers.recurrent) + 2 * H, B, H, w.gate_rows)
                        : mat(static_cast<const float*>(buffers.hidden), B, H);
}

/// The sizes and lengths a record is of.
void set_batch(ForwardRecord& record, Index T, Index B, const std::int64_t* lengths)
{
    record.T = T;
    record.B = B;
    record.lengths.clear();
    if (lengths)
        record.lengths.assign(lengths, lengths + B);
}

/// Whether transposed copies of every layer's weights are small enough to pay (WeightCopies).
/// Where the packed kernel runs it is faster for one row past 32 KiB of weights per layer (bench_step,
/// batch 1: LSTM H = 64 steps in 0.89 us against 1.22, H = 128 in 2.5 against 4.3); at H = 32 the
/// transposed copies are still faster (0.21 against 0.27 us).
bool transposed_pays(const ModelSpec& spec)
{
    const Index max_floats = PackedWeights::available() ? Index(1) << 13 : Index(1) << 18;
    for (int layer = 0; layer < spec.num_layers; ++layer)
        if (Index(spec.gate_rows()) * (spec.layer_input_size(layer) + spec.output_size()) > max_floats)
            return false;
    return true;
}

}  // namespace

WeightCopies weight_copies_for(const ModelSpec& spec, Index T, Index B, bool streaming)
{
    WeightCopies copies;
    // A whole-sequence call transposes once per call: worth it over a long enough row.
    copies.transposed = B == 1 && (streaming || T >= 32) && transposed_pays(spec);
    copies.transposed_input = copies.transposed && streaming;
    // One row of a stream with small weights keeps to the transposed copies (audio: chunks of a
    // few features); elsewhere packing costs one pass over the weights, which many steps or rows
    // repay.
    copies.packed = PackedWeights::available() && (streaming ? B > 1 || !copies.transposed : T * B >= 32);
    return copies;
}

namespace {

/// Steps per chunk of the input projections when the scan follows chunk by chunk: about 512 KB
/// of gates, which stay in L2 from the product that writes them to the steps that read them.
/// All at once, [T, B, G] goes out to memory and back (LSTM B = 32, T = 100, H = 256: 13 MB;
/// chunks make the call about 5% faster).
Index projection_chunk(Index B, Index G)
{
    constexpr Index chunk_floats = Index(1) << 17;
    // Divided twice: on a 32-bit host B * G may overflow (the buffers' sizes are checked later).
    return std::max<Index>(1, chunk_floats / std::max<Index>(B, 1) / std::max<Index>(G, 1));
}

/// Whether a second thread projects one row's inputs ahead of the scan (Model::run_layer).
bool projects_ahead(Index B, int threads)
{
    return STREAMRNN_THREADS && B == 1 && threads > 1;
}

}  // namespace

/// Copies of a model's weights that make a run's products faster (WeightCopies says which), each
/// per layer and direction or empty, made from one version of the weights.
struct DerivedWeights {
    DerivedWeights(const ModelSpec& spec, WeightCopies copies)
    {
        for (int layer = 0; layer < spec.num_layers; ++layer)
            for (int direction = 0; direction < spec.directions(); ++direction) {
                const Index I_l = spec.layer_input_size(layer), G = spec.gate_rows(), H_out = spec.output_size();
                if (copies.transposed_input)
                    transposed_ih.emplace_back(buffer_size({I_l, G}));
                if (copies.transposed)
                    transposed_hh.emplace_back(buffer_size({H_out, G}));
                if (spec.bias && spec.kind != CellKind::gru)
                    biases.emplace_back(static_cast<std::size_t>(G));
                if (copies.packed) {
                    packed_ih.emplace_back(G, I_l);
                    // One row with W_hh^T multiplies that instead.
                    if (!copies.transposed)
                        packed_hh.emplace_back(G, H_out);
                }
            }
    }

    std::vector<Buffer> transposed_ih;
    std::vector<Buffer> transposed_hh;
    std::vector<Buffer> biases;  ///< b_ih + b_hh (LSTM, RNN)
    std::vector<PackedWeights> packed_ih;
    std::vector<PackedWeights> packed_hh;
    std::uint64_t version = ~std::uint64_t(0);  ///< the model version they were made from
};

/// Model::shared_copies's copies, one set for each choice of WeightCopies.
struct Model::CopyCache {
    static std::size_t slot(WeightCopies which)
    {
        return std::size_t(which.transposed) << 2 | std::size_t(which.transposed_input) << 1 | std::size_t(which.packed);
    }
#if STREAMRNN_THREADS
    std::mutex mutex;  // whole-sequence calls on other threads may share the model
#endif
    std::shared_ptr<DerivedWeights> sets[8];
};

Workspace::Workspace(const ModelSpec& spec, Index max_steps, Index batch, bool recording, WeightCopies copies,
                     int threads)
    : Workspace(spec, max_steps, batch, recording, std::make_shared<DerivedWeights>(spec, copies), threads)
{
}

Workspace::Workspace(const ModelSpec& spec, Index max_steps, Index batch, bool recording,
                     std::shared_ptr<DerivedWeights> copies, int threads)
    : max_steps_(max_steps), batch_(batch), copies_(std::move(copies)), threads_(std::max(threads, 1))
{
    // Sizes checked: on a 32-bit host these products overflow Index long before memory runs out.
    const Index rows = checked_size({max_steps, batch});
    const Index H = spec.hidden_size;
    if (!recording) {
        projected_steps_ = projects_ahead(batch, threads_)
                               ? max_steps
                               : std::min(max_steps, projection_chunk(batch, spec.gate_rows()));
        gates_.resize(buffer_size({projected_steps_, batch, spec.gate_rows()}));
        if (spec.num_layers > 1)
            for (auto& buffer : layer_out_)
                buffer.resize(buffer_size({rows, spec.directions(), spec.output_size()}));
    }
    for (auto& buffer : state_)
        buffer.resize(buffer_size({batch, spec.output_size() + H}));
    recurrent_.resize(buffer_size({batch, spec.gate_rows()}));
    hidden_.resize(buffer_size({batch, H}));
    // The largest product of a run: all steps' input projection, or a step's recurrent one.
    const Index depth = std::max({Index(spec.input_size), Index(spec.directions()) * spec.output_size(), H});
    gemm_ = std::make_unique<GemmSpace>(std::max(rows, batch), spec.gate_rows(), depth);
}

Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;
Workspace::~Workspace() = default;

Model::Model(const ModelSpec& spec)
    : Trainable(tensor_table(spec)), spec_(spec), dropout_rng_(std::random_device{}()),
      copy_cache_(std::make_unique<CopyCache>())
{
}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model::Model(const ModelSpec& spec, std::uint64_t seed) : Model(spec)
{
    dropout_rng_.seed(seed ^ 0x9e3779b97f4a7c15ULL);  // a stream of its own, apart from the weights'

    // uniform(-k, k) with k = 1/sqrt(H), as PyTorch initialises every RNN weight and bias.
    std::mt19937_64 engine(seed);
    const float k = 1.0f / std::sqrt(static_cast<float>(spec_.hidden_size));
    for (const TensorInfo& tensor : tensors_)
        fill_uniform(tensor, k, engine);
}

CellWeights cell_weights(const ModelSpec& spec, const float* parameters, int layer, int direction)
{
    // Offsets as tensor_table lays them out: every cell's tensors have the same sizes but for
    // W_ih, whose width is the layer's input size (the model's input for layer 0, D * H_out past
    // it). O(1): a stream computes this for every layer of every step.
    const std::uint64_t G = static_cast<std::uint64_t>(spec.gate_rows());
    const std::uint64_t H = static_cast<std::uint64_t>(spec.hidden_size);
    const std::uint64_t H_out = static_cast<std::uint64_t>(spec.output_size());
    const std::uint64_t P = static_cast<std::uint64_t>(spec.proj_size);
    const std::uint64_t D = static_cast<std::uint64_t>(spec.directions());
    const std::uint64_t rest = G * H_out + (spec.bias ? 2 * G : 0) + P * H;  // all but W_ih
    const std::uint64_t first_cell = G * static_cast<std::uint64_t>(spec.input_size) + rest;
    const std::uint64_t later_cell = G * D * H_out + rest;
    const std::uint64_t cell = static_cast<std::uint64_t>(layer) * D + static_cast<std::uint64_t>(direction);
    const std::uint64_t offset = layer == 0 ? cell * first_cell : D * first_cell + (cell - D) * later_cell;
    CellWeights w;
    w.input_size = spec.layer_input_size(layer);
    w.hidden_size = spec.hidden_size;
    w.output_size = spec.output_size();
    w.gate_rows = spec.gate_rows();
    const float* at = parameters + offset;
    w.w_ih = at;
    at += G * static_cast<std::uint64_t>(w.input_size);
    w.w_hh = at;
    at += G * H_out;
    if (spec.bias) {
        w.b_ih = at;
        w.b_hh = at + G;
        at += 2 * G;
    }
    if (P > 0)
        w.w_hr = at;
    return w;
}

CellWeights Model::weights(int layer, int direction) const
{
    return cell_weights(spec_, parameters_.data(), layer, direction);
}

void check_lengths(Index T, Index B, const std::int64_t* lengths)
{
    if (lengths)
        for (Index b = 0; b < B; ++b)
            if (lengths[b] < 0 || lengths[b] > T)
                raise(ErrorKind::argument,
                      "lengths: expected every length in [0, " + std::to_string(T) + "] (T), got " +
                          std::to_string(lengths[b]) + " at index " + std::to_string(b));
}

void Model::forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                    int threads) const
{
    check_lengths(T, B, lengths);
    const Index I = spec_.input_size;
    const Index Y = spec_.directions() * spec_.output_size();
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec_.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec_.batch_first);
#if STREAMRNN_THREADS
    const Index parts = std::clamp<Index>(threads, 1, std::max<Index>(B, 1));
#else
    (void)threads;
    const Index parts = 1;
#endif
    if (parts == 1) {
        // One part: the copies of the weights that pay over this call's steps and rows.
        Workspace ws(spec_, T, B, false, shared_copies(weight_copies_for(spec_, T, B, false)), threads);
        run(xs, ys, T, B, lengths, h, c, ws);
        return;
    }
#if STREAMRNN_THREADS
    // Rows [first, first + rows) of the batch per part. The state is [cells, B, ...], so each part
    // works on a copy of its rows; everything is allocated here, before any thread starts.
    struct Part {
        Index first, rows;
        Workspace ws;
        Buffer h, c;
    };
    const Index cells = Index(spec_.num_layers) * spec_.directions();
    const Index H_out = spec_.output_size(), H = c ? spec_.hidden_size : 0;
    std::vector<Part> work;
    for (Index p = 0; p < parts; ++p) {
        const Index first = p * B / parts, rows = (p + 1) * B / parts - first;
        work.push_back({first, rows,
                        Workspace(spec_, T, rows, false, shared_copies(weight_copies_for(spec_, T, rows, false)), 1),
                        Buffer(buffer_size({cells, rows, H_out})), Buffer(buffer_size({cells, rows, H}))});
    }
    auto copy_rows = [&](Part& part, bool into_part) {
        if (into_part) {
            copy_state_rows(h, B, part.first, part.h.data(), part.rows, 0, cells, part.rows, H_out);
            if (H)
                copy_state_rows(c, B, part.first, part.c.data(), part.rows, 0, cells, part.rows, H);
        } else {
            copy_state_rows(part.h.data(), part.rows, 0, h, B, part.first, cells, part.rows, H_out);
            if (H)
                copy_state_rows(part.c.data(), part.rows, 0, c, B, part.first, cells, part.rows, H);
        }
    };
    auto run_part = [&](Part& part) {
        copy_rows(part, true);
        run(xs.from_row(part.first), ys.from_row(part.first), T, part.rows, lengths ? lengths + part.first : nullptr,
            part.h.data(), H ? part.c.data() : nullptr, part.ws);
        copy_rows(part, false);
    };
    run_parallel(parts, [&](Index part) { run_part(work[static_cast<std::size_t>(part)]); });
#endif
}

void Model::run(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h, float* c,
                Workspace& ws) const noexcept
{
    run_recorded(x, y, T, B, lengths, h, c, ws, nullptr, nullptr);
}

void Model::refresh_copies(DerivedWeights& copies) const noexcept
{
    for (int layer = 0; layer < spec_.num_layers; ++layer)
        for (int direction = 0; direction < spec_.directions(); ++direction) {
            const CellWeights w = weights(layer, direction);
            const std::size_t cell = static_cast<std::size_t>(layer * spec_.directions() + direction);
            if (!copies.transposed_ih.empty())
                mat(copies.transposed_ih[cell].data(), w.input_size, w.gate_rows) = w.input_weights().transpose();
            if (!copies.transposed_hh.empty())
                mat(copies.transposed_hh[cell].data(), w.output_size, w.gate_rows) = w.recurrent_weights().transpose();
            if (!copies.biases.empty())
                mat(copies.biases[cell].data(), 1, w.gate_rows) =
                    mat(w.b_ih, 1, w.gate_rows) + mat(w.b_hh, 1, w.gate_rows);
            if (!copies.packed_ih.empty())
                copies.packed_ih[cell].pack(w.input_weights());
            if (!copies.packed_hh.empty())
                copies.packed_hh[cell].pack(w.recurrent_weights());
        }
    copies.version = version();
}

std::shared_ptr<DerivedWeights> Model::shared_copies(WeightCopies which) const
{
#if STREAMRNN_THREADS
    const std::lock_guard<std::mutex> lock(copy_cache_->mutex);
#endif
    std::shared_ptr<DerivedWeights>& copies = copy_cache_->sets[CopyCache::slot(which)];
    // A new set, not the old one refreshed: calls still running may hold the old one. The cache
    // lets go of it first, so that the two are not both alive for its sake.
    if (!copies || copies->version != version()) {
        copies.reset();
        auto fresh = std::make_shared<DerivedWeights>(spec_, which);
        refresh_copies(*fresh);
        copies = std::move(fresh);
    }
    return copies;
}

void Model::run_recorded(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h,
                         float* c, Workspace& ws, ForwardRecord* record, std::mt19937_64* rng) const noexcept
{
    if (ws.copies_->version != version())
        refresh_copies(*ws.copies_);
    const int D = spec_.directions();
    const Index H_out = spec_.output_size();
    const Index H = spec_.hidden_size;
    const Index width = D * H_out;
    ConstSeqView in = x;
    for (int layer = 0; layer < spec_.num_layers; ++layer) {
        // Between layers the data is time-major, in the workspace or (training) in the record as
        // the next layer's input; the last layer writes y.
        const bool last = layer + 1 == spec_.num_layers;
        float* between = !last ? (record ? record->inputs[layer + 1].data() : ws.layer_out_[layer % 2].data()) : nullptr;
        SeqView out = last ? y : SeqView::time_major(between, B, width, width);
        for (int direction = 0; direction < D; ++direction) {
            const Index cell = layer * D + direction;
            run_layer(layer, direction, in, out.columns(direction * H_out, H_out), T, B, lengths,
                      h + cell * B * H_out, c ? c + cell * B * H : nullptr, ws,
                      record ? &record->layers[static_cast<std::size_t>(cell)] : nullptr);
        }
        if (spec_.residual_at(layer))
            add_valid_steps(in, out, T, B, lengths);
        if (record && !last && spec_.dropout > 0.0) {
            // Inverted dropout, as PyTorch's: keep with probability 1 - p, scaled by 1 / (1 - p).
            Buffer& mask = record->masks[static_cast<std::size_t>(layer + 1)];
            const double keep = 1.0 - spec_.dropout;
            const float scale = keep > 0.0 ? static_cast<float>(1.0 / keep) : 0.0f;
            std::bernoulli_distribution kept(keep);
            for (float& m : mask)
                m = kept(*rng) ? scale : 0.0f;
            mat(between, T * B, width).array() *= mat(mask.data(), T * B, width).array();
        }
        in = as_const(out);
    }
}

CellWeights Model::run_weights(int layer, int direction, const Workspace& ws, Index B) const noexcept
{
    CellWeights w = weights(layer, direction);
    const std::size_t cell = static_cast<std::size_t>(layer * spec_.directions() + direction);
    const DerivedWeights& copies = *ws.copies_;
    if (!copies.transposed_ih.empty() && B == 1)
        w.w_ih_t = copies.transposed_ih[cell].data();
    if (!copies.transposed_hh.empty() && B == 1)
        w.w_hh_t = copies.transposed_hh[cell].data();
    if (!copies.packed_ih.empty())
        w.w_ih_packed = &copies.packed_ih[cell];
    if (!copies.packed_hh.empty())
        w.w_hh_packed = &copies.packed_hh[cell];
    // LSTM and RNN add b_hh to every gate as they add b_ih: the two summed once (refresh_copies)
    // go in with the input projection, not b_hh in every step.
    if (!copies.biases.empty()) {
        w.b_ih = copies.biases[cell].data();
        w.b_hh = nullptr;
    }
    return w;
}

namespace {

/// out [M, G] = rows [M, I] W_ih^T + b_ih (where there is a bias), through the packed W_ih where
/// w carries it, on up to `threads` threads. The bias goes in first on every path (project_row
/// too), so that a stream's steps and a whole sequence round alike.
void project_rows(const CellWeights& w, ConstMatMap rows, MatMap out, GemmSpace& gemm, int threads)
{
    if (w.w_ih_packed) {
        w.w_ih_packed->multiply_transposed(Strided::of(rows), 0, out, false, threads, w.b_ih);
        return;
    }
    if (w.b_ih)
        out.rowwise() = Eigen::Map<const Eigen::RowVectorXf>(w.b_ih, w.gate_rows);
    gemm.multiply_transposed(rows, w.input_weights(), out, w.b_ih != nullptr);
}

/// gates [1, G] = x [1, I] W_ih^T + b_ih for one row, through W_ih^T (w.w_ih_t): the bias first,
/// so that the product adds into it.
void project_row(const CellWeights& w, const float* x, float* gates) noexcept
{
    const Index G = w.gate_rows, I = w.input_size;
    if (w.b_ih)
        std::copy_n(w.b_ih, G, gates);
    if (row_times(x, I, w.w_ih_t, G, G, gates, w.b_ih != nullptr))
        return;
    if (w.b_ih)
        mat(gates, 1, G).noalias() += mat(x, 1, I) * mat(w.w_ih_t, I, G);
    else
        mat(gates, 1, G).noalias() = mat(x, 1, I) * mat(w.w_ih_t, I, G);
}

}  // namespace

void Model::step_row(const float* x, float* y, float* h, float* c, Workspace& ws) const noexcept
{
    if (ws.copies_->version != version())
        refresh_copies(*ws.copies_);
    const Index H = spec_.hidden_size, H_out = spec_.output_size(), C = c ? H : 0;
    const StepBuffers buffers{ws.recurrent_.data(), ws.hidden_.data(), ws.gemm_.get()};
    float* const gates = ws.gates_.data();
    float* const next = ws.state_[0].data();  // h' [H_out] then c' [H]
    const float* in = x;
    for (int layer = 0; layer < spec_.num_layers; ++layer) {
        const CellWeights w = run_weights(layer, 0, ws, 1);
        if (w.w_ih_t)
            project_row(w, in, gates);
        else
            project_rows(w, mat(in, 1, w.input_size), mat(gates, 1, w.gate_rows), *ws.gemm_, 1);
        float* const h_l = h + layer * H_out;
        float* const c_l = c ? c + layer * H : nullptr;
        const StepState step{mat(static_cast<const float*>(h_l), 1, H_out), mat(static_cast<const float*>(c_l), 1, C),
                             mat(next, 1, H_out), mat(next + H_out, 1, C)};
        cell_forward_step(spec_, w, mat(gates, 1, w.gate_rows), step, buffers);
        std::copy_n(next, H_out, h_l);
        if (c)
            std::copy_n(next + H_out, H, c_l);
        // The layer's output, which the next layer reads: h', plus the layer's input on a
        // residual connection. (The cell writing h' into y itself, and no copy, measured slower:
        // LSTM H = 16, 160 against 130 ns a step.)
        const bool last = layer + 1 == spec_.num_layers;
        if (spec_.residual_at(layer)) {
            float* const out = last ? y : ws.layer_out_[layer % 2].data();
            mat(out, 1, H_out) = mat(h_l, 1, H_out) + mat(in, 1, H_out);
            in = out;
        } else if (last) {
            std::copy_n(h_l, H_out, y);
        } else {
            in = h_l;
        }
    }
}

void Model::run_layer(int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                      const std::int64_t* lengths, float* h, float* c, Workspace& ws,
                      LayerRecord* record) const noexcept
{
    const CellWeights w = run_weights(layer, direction, ws, B);
    const Index G = w.gate_rows;
    const Index H = w.hidden_size;
    const Index H_out = w.output_size;

    // The input projections of many steps in one product: gates [T, B, G] = x W_ih^T + b_ih, all
    // steps at once or a chunk at a time (projection_chunk). A time-major x is one evenly spaced
    // block of rows; otherwise each row of the batch is.
    float* const gates = record ? record->gates.data() : ws.gates_.data();
    // Steps [t0, t1) of every row, into `out` from step t0 on.
    auto project_steps = [&](Index t0, Index t1, float* out, int threads) {
        if (x.t_pitch == B * x.b_pitch) {
            project_rows(w, mat(x.row(t0, 0), (t1 - t0) * B, x.width, x.b_pitch), mat(out, (t1 - t0) * B, G),
                         *ws.gemm_, threads);
        } else {
            for (Index b = 0; b < B; ++b)
                project_rows(w, mat(x.row(t0, b), t1 - t0, x.width, x.t_pitch), mat(out + b * G, t1 - t0, G, B * G),
                             *ws.gemm_, threads);
        }
    };
    bool pipelined = false;
#if STREAMRNN_THREADS
    // One row's steps run one after another, so a second thread has nothing to share in them: it
    // projects the inputs ahead of the scan instead, a chunk at a time, and the scan waits only
    // for the first. Chunks are whole blocks of the packed product, so every value is the one
    // the single product gives.
    constexpr Index chunk = 192;
    std::atomic<Index> projected{0};  // steps ready, counted in the scan's order
    std::thread producer;
    if (B == 1 && ws.threads_ > 1 && T >= 2 * chunk && w.w_ih_packed && (record || ws.projected_steps_ >= T)) {
        auto produce = [&] {
            const Index chunks = (T + chunk - 1) / chunk;
            for (Index i = 0; i < chunks; ++i) {
                const Index k = direction == 1 ? chunks - 1 - i : i;
                const Index t0 = k * chunk, t1 = std::min(T, t0 + chunk);
                project_steps(t0, t1, gates + t0 * B * G, 1);
                projected.store(direction == 1 ? T - t0 : t1, std::memory_order_release);
            }
        };
#if STREAMRNN_HAS_EXCEPTIONS
        try {
            producer = std::thread(produce);
            pipelined = true;
        } catch (...) {  // no thread to be had: the scan projects as it would alone
        }
#else
        producer = std::thread(produce);
        pipelined = true;
#endif
    }
#endif
    // Steps projected per product, in the scan's order: all at once where `gates` holds every
    // step and threads share the product, else chunks that the scan reads while in cache.
    Index chunk_steps = T;
    bool all_projected = pipelined;  // every step's projection made, or in the making, already
    if (T * B == 1 && w.w_ih_t) {
        all_projected = true;
        project_row(w, x.data, gates);
    } else if (!pipelined) {
        chunk_steps = record ? (ws.threads_ > 1 ? T : projection_chunk(B, G)) : ws.projected_steps_;
    }
    // The step whose gates are at `gates` (the chunk's first, or 0 where gates holds all T).
    Index gates_first = 0;

    // The first step reads the caller's state where it is; the next states ping-pong between two
    // buffers, h [B, H_out] then c [B, H] in each, and the last is copied back.
    const Index C = c ? H : 0;
    const float* h_prev = h;
    const float* c_prev = c;
    const StepBuffers buffers{ws.recurrent_.data(), ws.hidden_.data(), ws.gemm_.get()};

    for (Index s = 0; s < T; ++s) {
        const Index t = direction == 1 ? T - 1 - s : s;
        if (!all_projected && s % chunk_steps == 0) {
            const Index end = std::min(T, s + chunk_steps);
            const Index t0 = direction == 1 ? T - end : s, t1 = direction == 1 ? T - s : end;
            // A record keeps every step's gates; the workspace, a chunk's.
            gates_first = record ? 0 : t0;
            project_steps(t0, t1, gates + (t0 - gates_first) * B * G, chunk_steps == T ? ws.threads_ : 1);
        }
#if STREAMRNN_THREADS
        while (pipelined && projected.load(std::memory_order_acquire) <= s)
            std::this_thread::yield();
#endif
        float* next = ws.state_[s % 2].data();
        StepState step{mat(h_prev, B, H_out), mat(c_prev, B, C), mat(next, B, H_out), mat(next + B * H_out, B, C)};
        cell_forward_step(spec_, w, mat(gates + (t - gates_first) * B * G, B, G), step, buffers);
        auto y_t = y.step(t, B);
        y_t = step.h_next;
        if (lengths) {
            // Rows past their length keep their state and output zeros (packed-sequence semantics;
            // the reverse direction thus starts from the initial state at the last valid step).
            for (Index b = 0; b < B; ++b) {
                if (t < lengths[b])
                    continue;
                step.h_next.row(b) = step.h_prev.row(b);
                step.c_next.row(b) = step.c_prev.row(b);
                y_t.row(b).setZero();
            }
        }
        if (record)
            keep_step(*record, t, step, buffers, w, spec_);
        h_prev = next;
        c_prev = next + B * H_out;
    }
    if (T > 0) {
        std::copy_n(h_prev, B * H_out, h);
        if (c)
            std::copy_n(c_prev, B * H, c);
    }
#if STREAMRNN_THREADS
    if (producer.joinable())
        producer.join();
#endif
}

Index Model::training_parts(Index T, Index B, int threads)
{
    // Each part must keep the matrix kernel's tiles full and repay its thread: rows of at least
    // two tiles, and enough steps.
    constexpr Index min_rows = 16, min_steps = 8;
    if (threads <= 1 || T < min_steps)
        return 1;
    return std::clamp<Index>(B / min_rows, 1, threads);
}

void Model::prepare_record(ForwardRecord& record, Index T, Index B, const std::int64_t* lengths) const
{
    const int L = spec_.num_layers;
    const int D = spec_.directions();
    const Index rows = checked_size({T, B});
    const Index H = spec_.hidden_size;
    const Index H_out = spec_.output_size();
    const bool keeps_extra = spec_.kind == CellKind::gru || spec_.proj_size > 0;
    set_batch(record, T, B, lengths);
    record.inputs.resize(static_cast<std::size_t>(L));
    record.masks.resize(static_cast<std::size_t>(L));
    for (int layer = 0; layer < L; ++layer) {
        record.inputs[static_cast<std::size_t>(layer)].resize(buffer_size({rows, spec_.layer_input_size(layer)}));
        if (layer > 0 && spec_.dropout > 0.0)
            record.masks[static_cast<std::size_t>(layer)].resize(buffer_size({rows, D, H_out}));
    }
    record.layers.resize(static_cast<std::size_t>(L * D));
    for (LayerRecord& layer : record.layers) {
        layer.gates.resize(buffer_size({rows, spec_.gate_rows()}));
        layer.h_prev.resize(buffer_size({rows, H_out}));
        if (spec_.has_cell_state()) {
            layer.c_prev.resize(buffer_size({rows, H}));
            layer.c_next.resize(buffer_size({rows, H}));
        }
        if (keeps_extra)
            layer.extra.resize(buffer_size({rows, H}));
    }
}

void Model::run_training(ConstSeqView x, SeqView y, Index T, Index B, float* h, float* c, Workspace& ws,
                         ForwardRecord& record, std::mt19937_64& rng) const
{
    // The first layer's input, time-major whatever x's layout, as every later layer's is.
    const Index I = spec_.input_size;
    const SeqView x_copy = SeqView::time_major(record.inputs[0].data(), B, I, I);
    copy_steps(x, x_copy, T, B);
    run_recorded(as_const(x_copy), y, T, B, record.lengths.empty() ? nullptr : record.lengths.data(), h, c, ws,
                 &record, &rng);
}

void Model::forward_train(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                          float* c, int threads)
{
    check_lengths(T, B, lengths);
    const Index I = spec_.input_size, Y = spec_.directions() * spec_.output_size();
    const ConstSeqView xs = ConstSeqView::of(x, T, B, I, I, spec_.batch_first);
    const SeqView ys = SeqView::of(y, T, B, Y, Y, spec_.batch_first);

    // The last record's buffers serve again: a training loop then allocates (and the system
    // zeroes pages) once, not every step, and never holds two records at a time.
    auto record = record_ ? std::move(record_) : std::make_unique<ForwardRecord>();
    const Index parts = training_parts(T, B, threads);
    if (parts == 1) {
        record->parts.clear();
        prepare_record(*record, T, B, lengths);
        // Copies of its own, not the model's shared ones: training changes the weights after every
        // step, and copies kept through backward would only add to its peak memory.
        Workspace ws(spec_, T, B, true, weight_copies_for(spec_, T, B, false), threads);
        run_training(xs, ys, T, B, h, c, ws, *record, dropout_rng_);
        record_ = std::move(record);
        return;
    }

    // Rows [first, first + rows) of the batch per part, each recorded on its own thread with its
    // own copy of its state rows and its own dropout stream: everything is allocated here. The
    // whole batch's record keeps only its sizes and lengths.
    set_batch(*record, T, B, lengths);
    record->inputs.clear();
    record->masks.clear();
    record->layers.clear();
    record->parts.resize(static_cast<std::size_t>(parts));
    const Index cells = Index(spec_.num_layers) * spec_.directions();
    const Index H_out = spec_.output_size(), H = c ? spec_.hidden_size : 0;
    struct Work {
        Workspace ws;
        Buffer h, c;
        std::mt19937_64 rng;
    };
    std::vector<Work> work;
    for (Index p = 0; p < parts; ++p) {
        ForwardRecord::Part& part = record->parts[static_cast<std::size_t>(p)];
        part.first = p * B / parts;
        const Index rows = (p + 1) * B / parts - part.first;
        if (!part.record)
            part.record = std::make_unique<ForwardRecord>();
        prepare_record(*part.record, T, rows, lengths ? lengths + part.first : nullptr);
        work.push_back({Workspace(spec_, T, rows, true, weight_copies_for(spec_, T, rows, false), 1),
                        Buffer(buffer_size({cells, rows, H_out})), Buffer(buffer_size({cells, rows, H})),
                        std::mt19937_64(dropout_rng_())});
        copy_state_rows(h, B, part.first, work.back().h.data(), rows, 0, cells, rows, H_out);
        if (H)
            copy_state_rows(c, B, part.first, work.back().c.data(), rows, 0, cells, rows, H);
    }
    run_parallel(parts, [&](Index p) {
        const ForwardRecord::Part& part = record->parts[static_cast<std::size_t>(p)];
        Work& mine = work[static_cast<std::size_t>(p)];
        run_training(xs.from_row(part.first), ys.from_row(part.first), T, part.record->B, mine.h.data(),
                     H ? mine.c.data() : nullptr, mine.ws, *part.record, mine.rng);
    });
    for (Index p = 0; p < parts; ++p) {
        const ForwardRecord::Part& part = record->parts[static_cast<std::size_t>(p)];
        const Work& mine = work[static_cast<std::size_t>(p)];
        const Index rows = part.record->B;
        copy_state_rows(mine.h.data(), rows, 0, h, B, part.first, cells, rows, H_out);
        if (H)
            copy_state_rows(mine.c.data(), rows, 0, c, B, part.first, cells, rows, H);
    }
    record_ = std::move(record);
}

const ForwardRecord& Model::record() const
{
    if (!record_)
        raise_no_training_forward("model");
    return *record_;
}

void Model::backward(const float* dy, const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0,
                     int threads)
{
    const ForwardRecord& record = this->record();
    const Index T = record.T, B = record.B;
    const Index Y = spec_.directions() * spec_.output_size(), I = spec_.input_size;
    const ConstSeqView dys = ConstSeqView::of(dy, T, B, Y, Y, spec_.batch_first);
    const SeqView dxs = SeqView::of(dx, T, B, I, I, spec_.batch_first);
    gradient_buffer();
    if (record.parts.empty()) {
        backward_rows(record, dys, dh_n, dc_n, dxs, dh0, dc0, gradients_.data(), threads);
        return;
    }

    // Each part of the batch back through its own record on its own thread, into its own state
    // gradients and (past the first part) its own weight gradients, summed at the end. Everything
    // is allocated here.
    const Index parts = static_cast<Index>(record.parts.size());
    const Index cells = Index(spec_.num_layers) * spec_.directions();
    const Index H_out = spec_.output_size(), H = dc0 ? spec_.hidden_size : 0;
    struct Work {
        Buffer dh_n, dc_n, dh0, dc0, gradients;
    };
    std::vector<Work> work(static_cast<std::size_t>(parts));
    for (Index p = 0; p < parts; ++p) {
        const ForwardRecord::Part& part = record.parts[static_cast<std::size_t>(p)];
        const Index rows = part.record->B;
        Work& mine = work[static_cast<std::size_t>(p)];
        auto take_rows = [&](const float* whole, Buffer& rows_of_part, Index width) {
            if (!whole || width == 0)
                return;
            rows_of_part.resize(buffer_size({cells, rows, width}));
            copy_state_rows(whole, B, part.first, rows_of_part.data(), rows, 0, cells, rows, width);
        };
        take_rows(dh_n, mine.dh_n, H_out);
        take_rows(dc_n, mine.dc_n, H);
        mine.dh0.resize(buffer_size({cells, rows, H_out}));
        mine.dc0.resize(buffer_size({cells, rows, H}));
        if (p > 0)
            mine.gradients.assign(gradients_.size(), 0.0f);
    }
    run_parallel(parts, [&](Index p) {
        const ForwardRecord::Part& part = record.parts[static_cast<std::size_t>(p)];
        Work& mine = work[static_cast<std::size_t>(p)];
        auto or_null = [](Buffer& buffer) { return buffer.empty() ? nullptr : buffer.data(); };
        backward_rows(*part.record, dys.from_row(part.first), or_null(mine.dh_n), or_null(mine.dc_n),
                      dxs.from_row(part.first), mine.dh0.data(), or_null(mine.dc0),
                      p == 0 ? gradients_.data() : mine.gradients.data(), 1);
    });
    for (Index p = 0; p < parts; ++p) {
        const ForwardRecord::Part& part = record.parts[static_cast<std::size_t>(p)];
        Work& mine = work[static_cast<std::size_t>(p)];
        if (p > 0)
            mat(gradients_.data(), 1, static_cast<Index>(gradients_.size())) +=
                mat(static_cast<const float*>(mine.gradients.data()), 1, static_cast<Index>(gradients_.size()));
        const Index rows = part.record->B;
        copy_state_rows(mine.dh0.data(), rows, 0, dh0, B, part.first, cells, rows, H_out);
        if (H)
            copy_state_rows(mine.dc0.data(), rows, 0, dc0, B, part.first, cells, rows, H);
    }
}

void Model::backward_rows(const ForwardRecord& record, ConstSeqView dy, const float* dh_n, const float* dc_n,
                          SeqView dx, float* dh0, float* dc0, float* gradients, int threads) const
{
    const Index T = record.T, B = record.B;
    const int L = spec_.num_layers, D = spec_.directions();
    const Index H = spec_.hidden_size, H_out = spec_.output_size(), width = D * H_out;
    const std::int64_t* lengths = record.lengths.empty() ? nullptr : record.lengths.data();

    // d_out: dL/d(output of the layer at hand), time-major.
    Buffer d_out(buffer_size({T, B, width}));
    copy_steps(dy, SeqView::time_major(d_out.data(), B, width, width), T, B);

    Buffer d_in;
    for (int layer = L - 1; layer >= 0; --layer) {
        const Index I = spec_.layer_input_size(layer);
        d_in.assign(buffer_size({T, B, I}), 0.0f);
        const ConstSeqView d_view = ConstSeqView::time_major(d_out.data(), B, width, width);
        for (int direction = 0; direction < D; ++direction) {
            const Index cell = layer * D + direction;
            float* dh = dh0 + cell * B * H_out;
            float* dc = dc0 ? dc0 + cell * B * H : nullptr;
            // dh0/dc0 carry the state gradient down the time steps, starting from dh_n/dc_n.
            auto start = [&](const float* given, float* carried, Index size) {
                if (given)
                    std::copy(given + cell * size, given + (cell + 1) * size, carried);
                else
                    std::fill(carried, carried + size, 0.0f);
            };
            start(dh_n, dh, B * H_out);
            if (dc)
                start(dc_n, dc, B * H);
            backward_layer(record, layer, direction, d_view.columns(direction * H_out, H_out), d_in.data(), dh, dc,
                           gradients, threads);
        }
        if (spec_.residual_at(layer))
            add_valid_steps(d_view, SeqView::time_major(d_in.data(), B, I, I), T, B, lengths);
        const Buffer& mask = record.masks[static_cast<std::size_t>(layer)];
        if (!mask.empty())
            mat(d_in.data(), T * B, I).array() *= mat(mask.data(), T * B, I).array();
        d_out.swap(d_in);
    }
    const Index I = spec_.input_size;
    copy_steps(ConstSeqView::time_major(d_out.data(), B, I, I), dx, T, B);
}

void Model::backward_layer(const ForwardRecord& record, int layer, int direction, ConstSeqView d_out, float* d_in,
                           float* dh, float* dc, float* gradients, int threads) const
{
    const LayerRecord& kept = record.layers[static_cast<std::size_t>(layer * spec_.directions() + direction)];
    CellWeights w = weights(layer, direction);
    const Index T = record.T, B = record.B;
    const Index G = w.gate_rows, H = w.hidden_size, H_out = w.output_size, I = w.input_size;
    // W_hh^T packed once for the T products dA W_hh of a batch (GRU reset-before multiplies part
    // of it, and keeps to Eigen).
    std::optional<PackedWeights> w_hh_t;
    if (PackedWeights::available() && B > 1 && !(spec_.kind == CellKind::gru && !spec_.reset_after)) {
        w_hh_t.emplace(H_out, G);
        w_hh_t->pack(Strided::of(w.recurrent_weights()).transposed());
        w.w_hh_t_packed = &*w_hh_t;
    }
    const Index C = spec_.has_cell_state() ? H : 0;
    const Index E = kept.extra.empty() ? 0 : H;
    const std::int64_t* lengths = record.lengths.empty() ? nullptr : record.lengths.data();
    // Gradients share the parameters' layout: a weight's gradient sits at the weight's offset.
    auto grad_of = [&](const float* weight) { return gradients + (weight - parameters_.data()); };

    // dL/d(pre-activations) of every step, for the weight gradients after the scan. They differ
    // on the input and recurrent sides only for the GRU.
    Buffer da_x(buffer_size({T, B, G}));
    Buffer da_h_own(spec_.kind == CellKind::gru ? da_x.size() : 0);
    float* da_h = da_h_own.empty() ? da_x.data() : da_h_own.data();
    Buffer dh_steps(w.w_hr ? buffer_size({T, B, H_out}) : 0);  // dL/dh' (projection)
    Matrix dh_total(B, H_out), dh_prev(B, H_out), dc_prev(B, C);
    // The bias gradients, summed step by step while each step's dA is in cache (a sum over all
    // T * B rows afterwards is a pass over them in memory).
    const bool two_sides = da_h != da_x.data();
    Eigen::RowVectorXf db_x = Eigen::RowVectorXf::Zero(w.b_ih ? G : 0);
    Eigen::RowVectorXf db_h = Eigen::RowVectorXf::Zero(w.b_ih && two_sides ? G : 0);

    for (Index s = 0; s < T; ++s) {
        const Index t = direction == 1 ? s : T - 1 - s;  // the forward's order, reversed
        auto dh_in = mat(dh, B, H_out);
        dh_total = dh_in;
        for (Index b = 0; b < B; ++b)
            if (!lengths || t < lengths[b])
                dh_total.row(b) += mat(d_out.row(t, b), 1, H_out);
        const Index r = t * B;
        const StepRecord step{mat(kept.gates.data() + r * G, B, G), mat(kept.h_prev.data() + r * H_out, B, H_out),
                              mat(C ? kept.c_prev.data() + r * H : nullptr, B, C),
                              mat(C ? kept.c_next.data() + r * H : nullptr, B, C),
                              mat(E ? kept.extra.data() + r * H : nullptr, B, E)};
        StepGradients grads{mat(static_cast<const float*>(dh_total.data()), B, H_out), mat(static_cast<const float*>(dc), B, C),
                                  mat(da_x.data() + r * G, B, G), mat(da_h + r * G, B, G),
                                  mat(dh_prev.data(), B, H_out), mat(dc_prev.data(), B, C)};
        cell_backward_step(spec_, w, step, grads);
        if (w.w_hr)
            mat(dh_steps.data() + r * H_out, B, H_out) = dh_total;
        if (lengths) {
            // A row past its length carried its state through unchanged: its gradient does too,
            // and nothing reaches the weights or the input.
            for (Index b = 0; b < B; ++b) {
                if (t < lengths[b])
                    continue;
                grads.da_x.row(b).setZero();
                grads.da_h.row(b).setZero();
                dh_prev.row(b) = dh_in.row(b);
                if (C)
                    dc_prev.row(b) = mat(static_cast<const float*>(dc), B, C).row(b);
                if (w.w_hr)
                    mat(dh_steps.data() + r * H_out, B, H_out).row(b).setZero();
            }
        }
        dh_in = dh_prev;
        if (C)
            mat(dc, B, C) = dc_prev;
        if (w.b_ih) {
            db_x += grads.da_x.colwise().sum();
            if (two_sides)
                db_h += grads.da_h.colwise().sum();
        }
    }

    // Weight gradients, one product each over all T * B rows: dW += dA^T (layer input).
    const Index rows = T * B;
    const ConstMatMap DA_x = mat(static_cast<const float*>(da_x.data()), rows, G);
    const ConstMatMap DA_h = mat(static_cast<const float*>(da_h), rows, G);
    const Strided X = Strided::of(mat(record.inputs[static_cast<std::size_t>(layer)].data(), rows, I));
    const Strided H_prev = Strided::of(mat(kept.h_prev.data(), rows, H_out));
    multiply(Strided::of(DA_x).transposed(), X, mat(grad_of(w.w_ih), G, I), true, threads);
    if (spec_.kind == CellKind::gru && !spec_.reset_after) {
        // The n block multiplies r * h, kept as extra.
        const float* da_h_rows = da_h;
        multiply(Strided::of(mat(da_h_rows, rows, 2 * H, G)).transposed(), H_prev, mat(grad_of(w.w_hh), 2 * H, H_out),
                 true, threads);
        multiply(Strided::of(mat(da_h_rows + 2 * H, rows, H, G)).transposed(),
                 Strided::of(mat(kept.extra.data(), rows, H)), mat(grad_of(w.w_hh) + 2 * H * H_out, H, H_out), true,
                 threads);
    } else {
        multiply(Strided::of(DA_h).transposed(), H_prev, mat(grad_of(w.w_hh), G, H_out), true, threads);
    }
    if (w.b_ih) {
        mat(grad_of(w.b_ih), 1, G) += db_x;
        mat(grad_of(w.b_hh), 1, G) += two_sides ? db_h : db_x;
    }
    if (w.w_hr)
        multiply(Strided::of(mat(static_cast<const float*>(dh_steps.data()), rows, H_out)).transposed(),
                 Strided::of(mat(kept.extra.data(), rows, H)), mat(grad_of(w.w_hr), H_out, H), true, threads);
    // dL/d(layer input) += dA_x W_ih.
    multiply(Strided::of(DA_x), Strided::of(w.input_weights()), mat(d_in, rows, I), true, threads);
}

}  // namespace streamrnn
