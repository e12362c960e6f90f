// cpp/src/layer.cpp: the CPU scans of a layer: the input projections of many steps as one product,
// then the steps one after another through the cell; the one-row step; the backward scan.
// Part of streamrnn, MIT licence.
#include "layer.hpp"

#include "kernels/gemm.hpp"
#include "sizes.hpp"

#include <algorithm>
#include <atomic>
#include <optional>
#if STREAMRNN_THREADS
#include <thread>
#endif

namespace streamrnn {

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

/// Whether a second thread projects one row's inputs ahead of the scan (scan_layer).
bool projects_ahead(Index B, int threads) { return STREAMRNN_THREADS && B == 1 && threads > 1; }

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

/// Copies what the backward step at time t will read into the record.
void keep_step(const RecordView::Cell& kept, Index t, const StepState& step, const StepBuffers& buffers,
               const CellWeights& w, const ModelSpec& spec)
{
    const Index B = step.h_prev.rows();
    const Index H = w.hidden_size;
    mat(kept.h_prev + t * B * w.output_size, B, w.output_size) = step.h_prev;
    if (spec.has_cell_state()) {
        mat(kept.c_prev + t * B * H, B, H) = step.c_prev;
        mat(kept.c_next + t * B * H, B, H) = step.c_next;
    }
    if (!kept.extra)
        return;
    // GRU reset-after: W_hn h + b_hn, the n block of the recurrent product; otherwise the step's
    // hidden buffer (LSTM o * tanh c', GRU reset-before r * h).
    const bool reset_after_gru = spec.kind == CellKind::gru && spec.reset_after;
    mat(kept.extra + t * B * H, B, H) =
        reset_after_gru ? mat(static_cast<const float*>(buffers.recurrent) + 2 * H, B, H, w.gate_rows)
                        : mat(static_cast<const float*>(buffers.hidden), B, H);
}

}  // namespace

Workspace::Workspace(const ModelSpec& spec, Index max_steps_, Index batch_, bool recording, int threads_)
    : max_steps(max_steps_), batch(batch_), threads(std::max(threads_, 1))
{
    // Sizes checked: on a 32-bit host these products overflow Index long before memory runs out.
    const Index rows = checked_size({max_steps, batch});
    const Index H = spec.hidden_size;
    if (!recording) {
        projected_steps = projects_ahead(batch, threads) ? max_steps
                                                         : std::min(max_steps, projection_chunk(batch, spec.gate_rows()));
        gates.resize(buffer_size({projected_steps, batch, spec.gate_rows()}));
        if (spec.num_layers > 1)
            for (auto& buffer : layer_out)
                buffer.resize(buffer_size({rows, spec.directions(), spec.output_size()}));
    }
    for (auto& buffer : state)
        buffer.resize(buffer_size({batch, spec.output_size() + H}));
    recurrent.resize(buffer_size({batch, spec.gate_rows()}));
    hidden.resize(buffer_size({batch, H}));
    // The largest product of a run: all steps' input projection, or a step's recurrent one.
    const Index depth = std::max({Index(spec.input_size), Index(spec.directions()) * spec.output_size(), H});
    gemm = std::make_unique<GemmSpace>(std::max(rows, batch), spec.gate_rows(), depth);
}

Workspace::Workspace(Workspace&&) noexcept = default;
Workspace::~Workspace() = default;

void step_row(const ModelSpec& spec, ForwardStep forward_step, const CellWeights* cells, const float* x, float* y,
              float* h, float* c, Workspace& ws) noexcept
{
    const Index H = spec.hidden_size, H_out = spec.output_size(), C = c ? H : 0;
    const StepBuffers buffers{ws.recurrent.data(), ws.hidden.data(), ws.gemm.get()};
    float* const gates = ws.gates.data();
    float* const next = ws.state[0].data();  // h' [H_out] then c' [H]
    const float* in = x;
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        const CellWeights w = cells[layer];
        if (w.w_ih_t)
            project_row(w, in, gates);
        else
            project_rows(w, mat(in, 1, w.input_size), mat(gates, 1, w.gate_rows), *ws.gemm, 1);
        float* const h_l = h + layer * H_out;
        float* const c_l = c ? c + layer * H : nullptr;
        StepState step{mat(static_cast<const float*>(h_l), 1, H_out), mat(static_cast<const float*>(c_l), 1, C),
                             mat(next, 1, H_out), mat(next + H_out, 1, C)};
        forward_step(w, mat(gates, 1, w.gate_rows), step, buffers);
        std::copy_n(next, H_out, h_l);
        if (c)
            std::copy_n(next + H_out, H, c_l);
        // The layer's output, which the next layer reads: h', plus the layer's input on a
        // residual connection. (The cell writing h' into y itself, and no copy, measured slower:
        // LSTM H = 16, 160 against 130 ns a step.)
        const bool last = layer + 1 == spec.num_layers;
        if (spec.residual_at(layer)) {
            float* const out = last ? y : ws.layer_out[layer % 2].data();
            mat(out, 1, H_out) = mat(h_l, 1, H_out) + mat(in, 1, H_out);
            in = out;
        } else if (last) {
            std::copy_n(h_l, H_out, y);
        } else {
            in = h_l;
        }
    }
}

void scan_layer(const RunWeights& weights, int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                const std::int64_t* lengths, float* h, float* c, Workspace& ws, RecordView::Cell* kept)
{
    const ModelSpec& spec = weights.spec;
    const CellWeights w = weights.cell(layer, direction, B);
    const Index G = w.gate_rows;
    const Index H = w.hidden_size;
    const Index H_out = w.output_size;

    // The input projections of many steps in one product: gates [T, B, G] = x W_ih^T + b_ih, all
    // steps at once or a chunk at a time (projection_chunk). A time-major x is one evenly spaced
    // block of rows; otherwise each row of the batch is.
    float* const gates = kept ? kept->gates : ws.gates.data();
    // Steps [t0, t1) of every row, into `out` from step t0 on.
    auto project_steps = [&](Index t0, Index t1, float* out, int threads) {
        if (x.rows_in_order(B)) {
            project_rows(w, mat(x.row(t0, 0), (t1 - t0) * B, x.width, x.b_pitch), mat(out, (t1 - t0) * B, G),
                         *ws.gemm, threads);
        } else {
            for (Index b = 0; b < B; ++b)
                project_rows(w, mat(x.row(t0, b), t1 - t0, x.width, x.t_pitch), mat(out + b * G, t1 - t0, G, B * G),
                             *ws.gemm, threads);
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
    if (B == 1 && ws.threads > 1 && T >= 2 * chunk && w.w_ih_packed && (kept || ws.projected_steps >= T)) {
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
        // A run of fewer rows than the workspace's (a chunked forward's one window among a group's)
        // fits as many more steps in its buffer.
        chunk_steps = kept ? (ws.threads > 1 ? T : projection_chunk(B, G)) : ws.projected_steps * ws.batch / std::max<Index>(B, 1);
    }
    // The step whose gates are at `gates` (the chunk's first, or 0 where gates holds all T).
    Index gates_first = 0;

    // The first step reads the caller's state where it is; the next states ping-pong between two
    // buffers, h [B, H_out] then c [B, H] in each, and the last is copied back.
    const Index C = c ? H : 0;
    const float* h_prev = h;
    const float* c_prev = c;
    StepBuffers buffers{ws.recurrent.data(), ws.hidden.data(), ws.gemm.get()};  // .pre moves with the steps
    const ForwardStep forward_step = forward_step_of(spec);

    for (Index s = 0; s < T; ++s) {
        const Index t = direction == 1 ? T - 1 - s : s;
        if (!all_projected && s % chunk_steps == 0) {
            const Index end = std::min(T, s + chunk_steps);
            const Index t0 = direction == 1 ? T - end : s, t1 = direction == 1 ? T - s : end;
            // A record keeps every step's gates; the workspace, a chunk's.
            gates_first = kept ? 0 : t0;
            project_steps(t0, t1, gates + (t0 - gates_first) * B * G, chunk_steps == T ? ws.threads : 1);
        }
#if STREAMRNN_THREADS
        while (pipelined && projected.load(std::memory_order_acquire) <= s)
            std::this_thread::yield();
#endif
        float* next = ws.state[s % 2].data();
        StepState step{mat(h_prev, B, H_out), mat(c_prev, B, C), mat(next, B, H_out), mat(next + B * H_out, B, C)};
        if (kept && kept->pre)
            buffers.pre = kept->pre + t * B * G;
        forward_step(w, mat(gates + (t - gates_first) * B * G, B, G), step, buffers);
        auto y_t = step_rows(y, t, B);
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
        if (kept)
            keep_step(*kept, t, step, buffers, w, spec);
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

void backward_layer(const BackwardPass& pass, int layer, int direction, ConstSeqView d_out, float* d_in, float* dh,
                    float* dc, int threads)
{
    const ModelSpec& spec = pass.spec;
    const float* parameters = pass.parameters;
    const Index T = pass.T, B = pass.B;
    const std::int64_t* lengths = pass.lengths;
    const RecordView::Cell& kept = pass.record.cells[static_cast<std::size_t>(layer * spec.directions() + direction)];
    CellWeights w = cell_weights(spec, parameters, layer, direction);
    const Index G = w.gate_rows, H = w.hidden_size, H_out = w.output_size, I = w.input_size;
    // W_hh^T packed once for the T products dA W_hh of a batch (GRU reset-before multiplies part
    // of it, and keeps to Eigen).
    std::optional<PackedWeights> w_hh_t;
    if (PackedWeights::available() && B > 1 && !(spec.kind == CellKind::gru && !spec.reset_after)) {
        w_hh_t.emplace(H_out, G);
        w_hh_t->pack(Strided::of(w.recurrent_weights()).transposed());
        w.w_hh_t_packed = &*w_hh_t;
    }
    const Index C = spec.has_cell_state() ? H : 0;
    const Index E = kept.extra ? H : 0;
    // Gradients share the parameters' layout: a weight's gradient sits at the weight's offset.
    auto grad_of = [&](const float* weight) { return pass.gradients + (weight - parameters); };

    // dL/d(pre-activations) of every step, for the weight gradients after the scan. They differ
    // on the input and recurrent sides only for the GRU.
    Buffer da_x(buffer_size({T, B, G}));
    Buffer da_h_own(spec.kind == CellKind::gru ? da_x.size() : 0);
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
        // Views of the record's rows of step t (rows of no width where the cell keeps none).
        auto rows_of = [&](const float* kept_rows, Index width) {
            return mat(width ? kept_rows + r * width : nullptr, B, width);
        };
        const StepRecord step{rows_of(kept.gates, G), rows_of(kept.h_prev, H_out), rows_of(kept.c_prev, C),
                              rows_of(kept.c_next, C), rows_of(kept.extra, E), rows_of(kept.pre, kept.pre ? G : 0)};
        StepGradients grads{mat(static_cast<const float*>(dh_total.data()), B, H_out),
                            mat(static_cast<const float*>(dc), B, C),
                            mat(da_x.data() + r * G, B, G),
                            mat(da_h + r * G, B, G),
                            mat(dh_prev.data(), B, H_out),
                            mat(dc_prev.data(), B, C)};
        cell_backward_step(spec, w, step, grads);
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
    const Strided X = Strided::of(mat(static_cast<const float*>(pass.record.inputs[static_cast<std::size_t>(layer)]), rows, I));
    const Strided H_prev = Strided::of(mat(static_cast<const float*>(kept.h_prev), rows, H_out));
    multiply(Strided::of(DA_x).transposed(), X, mat(grad_of(w.w_ih), G, I), true, threads);
    if (spec.kind == CellKind::gru && !spec.reset_after) {
        // The n block multiplies r * h, kept as extra.
        const float* da_h_rows = da_h;
        multiply(Strided::of(mat(da_h_rows, rows, 2 * H, G)).transposed(), H_prev, mat(grad_of(w.w_hh), 2 * H, H_out),
                 true, threads);
        multiply(Strided::of(mat(da_h_rows + 2 * H, rows, H, G)).transposed(),
                 Strided::of(mat(static_cast<const float*>(kept.extra), rows, H)),
                 mat(grad_of(w.w_hh) + 2 * H * H_out, H, H_out), true, threads);
    } else {
        multiply(Strided::of(DA_h).transposed(), H_prev, mat(grad_of(w.w_hh), G, H_out), true, threads);
    }
    if (w.b_ih) {
        mat(grad_of(w.b_ih), 1, G) += db_x;
        mat(grad_of(w.b_hh), 1, G) += two_sides ? db_h : db_x;
    }
    if (w.peephole) {
        // i and f peep at c, o at c': dP = the sum over rows of dA times those.
        auto dp = mat(grad_of(w.peephole), 3, H);
        const ConstMatMap c_prev = mat(static_cast<const float*>(kept.c_prev), rows, H);
        const ConstMatMap c_next = mat(static_cast<const float*>(kept.c_next), rows, H);
        dp.row(0) += (DA_x.leftCols(H).array() * c_prev.array()).colwise().sum().matrix();
        dp.row(1) += (DA_x.middleCols(H, H).array() * c_prev.array()).colwise().sum().matrix();
        dp.row(2) += (DA_x.rightCols(H).array() * c_next.array()).colwise().sum().matrix();
    }
    if (w.w_hr)
        multiply(Strided::of(mat(static_cast<const float*>(dh_steps.data()), rows, H_out)).transposed(),
                 Strided::of(mat(static_cast<const float*>(kept.extra), rows, H)), mat(grad_of(w.w_hr), H_out, H), true,
                 threads);
    // dL/d(layer input) += dA_x W_ih.
    multiply(Strided::of(DA_x), Strided::of(w.input_weights()), mat(d_in, rows, I), true, threads);
}

}  // namespace streamrnn
