// cpp/src/model.cpp: the parameter table, initialisation, and the stack of scans that runs a model.
// Part of streamrnn, MIT licence.
#include "streamrnn/model.hpp"

#include "streamrnn/errors.hpp"

#include "gemm.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace streamrnn {

namespace {

/// Tensors per layer and direction, in PyTorch's order: w_ih, w_hh, [b_ih, b_hh], [w_hr].
int tensors_per_cell(const ModelSpec& spec) { return 2 + (spec.bias ? 2 : 0) + (spec.proj_size > 0 ? 1 : 0); }

std::vector<TensorInfo> tensor_table(const ModelSpec& spec)
{
    spec.validate();
    std::vector<TensorInfo> table;
    std::size_t offset = 0;
    auto add = [&](const std::string& name, std::vector<long long> shape) {
        std::size_t size = 1;
        for (long long n : shape)
            size *= static_cast<std::size_t>(n);
        table.push_back({name, std::move(shape), offset, size});
        offset += size;
    };
    const long long G = spec.gate_rows();
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        for (int direction = 0; direction < spec.directions(); ++direction) {
            const std::string suffix = spec.is_cell ? std::string()
                                                    : "_l" + std::to_string(layer) + (direction ? "_reverse" : "");
            add("weight_ih" + suffix, {G, spec.layer_input_size(layer)});
            add("weight_hh" + suffix, {G, spec.output_size()});
            if (spec.bias) {
                add("bias_ih" + suffix, {G});
                add("bias_hh" + suffix, {G});
            }
            if (spec.proj_size > 0)
                add("weight_hr" + suffix, {spec.proj_size, spec.hidden_size});
        }
    }
    return table;
}

std::size_t total_size(const std::vector<TensorInfo>& table)
{
    return table.empty() ? 0 : table.back().offset + table.back().size;
}

}  // namespace

Workspace::Workspace(const ModelSpec& spec, Index max_steps, Index batch) : max_steps_(max_steps), batch_(batch)
{
    const Index rows = max_steps * batch;
    const Index H = spec.hidden_size;
    gates_.resize(static_cast<std::size_t>(rows * spec.gate_rows()));
    if (spec.num_layers > 1)
        for (auto& buffer : layer_out_)
            buffer.resize(static_cast<std::size_t>(rows * spec.directions() * spec.output_size()));
    for (auto& buffer : state_)
        buffer.resize(static_cast<std::size_t>(batch * (spec.output_size() + H)));
    recurrent_.resize(static_cast<std::size_t>(batch * spec.gate_rows()));
    hidden_.resize(static_cast<std::size_t>(batch * H));
    // The largest product of a run: all steps' input projection, or a step's recurrent one.
    const Index depth = std::max({Index(spec.input_size), Index(spec.directions()) * spec.output_size(), H});
    gemm_ = std::make_unique<GemmSpace>(std::max(rows, batch), spec.gate_rows(), depth);
}

Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;
Workspace::~Workspace() = default;

Model::Model(const ModelSpec& spec) : spec_(spec), tensors_(tensor_table(spec)), parameters_(total_size(tensors_), 0.0f)
{
}

Model::Model(const ModelSpec& spec, std::uint64_t seed) : Model(spec)
{
    // uniform(-k, k) with k = 1/sqrt(H), as PyTorch initialises every RNN weight and bias. The
    // float is made from the top 24 bits by hand so the same seed gives the same model everywhere.
    std::mt19937_64 engine(seed);
    const float k = 1.0f / std::sqrt(static_cast<float>(spec_.hidden_size));
    for (float& value : parameters_) {
        const float unit = static_cast<float>(engine() >> 40) * (1.0f / 16777216.0f);
        value = (2.0f * unit - 1.0f) * k;
    }
}

const TensorInfo* Model::find(const std::string& name) const
{
    for (const TensorInfo& info : tensors_)
        if (info.name == name)
            return &info;
    return nullptr;
}

CellWeights Model::weights(int layer, int direction) const
{
    const int per_cell = tensors_per_cell(spec_);
    const TensorInfo* info = &tensors_[static_cast<std::size_t>((layer * spec_.directions() + direction) * per_cell)];
    auto at = [&](int i) { return parameters_.data() + info[i].offset; };
    CellWeights w;
    w.w_ih = at(0);
    w.w_hh = at(1);
    if (spec_.bias) {
        w.b_ih = at(2);
        w.b_hh = at(3);
    }
    if (spec_.proj_size > 0)
        w.w_hr = at(per_cell - 1);
    w.input_size = spec_.layer_input_size(layer);
    w.hidden_size = spec_.hidden_size;
    w.output_size = spec_.output_size();
    w.gate_rows = spec_.gate_rows();
    return w;
}

void Model::forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h,
                    float* c) const
{
    if (lengths)
        for (Index b = 0; b < B; ++b)
            if (lengths[b] < 0 || lengths[b] > T)
                throw ArgumentError("lengths: expected every length in [0, " + std::to_string(T) + "] (T), got " +
                                    std::to_string(lengths[b]) + " at index " + std::to_string(b));
    Workspace ws(spec_, T, B);
    const Index I = spec_.input_size;
    const Index Y = spec_.directions() * spec_.output_size();
    run(ConstSeqView::of(x, T, B, I, I, spec_.batch_first), SeqView::of(y, T, B, Y, Y, spec_.batch_first), T, B,
        lengths, h, c, ws);
}

void Model::run(ConstSeqView x, SeqView y, Index T, Index B, const std::int64_t* lengths, float* h, float* c,
                Workspace& ws) const noexcept
{
    const int D = spec_.directions();
    const Index H_out = spec_.output_size();
    const Index H = spec_.hidden_size;
    ConstSeqView in = x;
    for (int layer = 0; layer < spec_.num_layers; ++layer) {
        // Between layers the data is time-major in the workspace; the last layer writes y.
        SeqView out = layer + 1 == spec_.num_layers
                          ? y
                          : SeqView::time_major(ws.layer_out_[layer % 2].data(), B, D * H_out, D * H_out);
        for (int direction = 0; direction < D; ++direction) {
            const Index cell = layer * D + direction;
            run_layer(layer, direction, in, out.columns(direction * H_out, H_out), T, B, lengths,
                      h + cell * B * H_out, c ? c + cell * B * H : nullptr, ws);
        }
        if (spec_.residual_at(layer)) {
            // Padded steps stay zero: the residual joins valid steps only.
            for (Index t = 0; t < T; ++t)
                for (Index b = 0; b < B; ++b)
                    if (!lengths || t < lengths[b])
                        mat(out.row(t, b), 1, out.width).noalias() += mat(in.row(t, b), 1, in.width);
        }
        in = as_const(out);
    }
}

void Model::run_layer(int layer, int direction, ConstSeqView x, SeqView y, Index T, Index B,
                      const std::int64_t* lengths, float* h, float* c, Workspace& ws) const noexcept
{
    const CellWeights w = weights(layer, direction);
    const Index G = w.gate_rows;
    const Index H = w.hidden_size;
    const Index H_out = w.output_size;

    // The input projection of every step in one product: gates [T, B, G] = x W_ih^T + b_ih.
    // A time-major x is one evenly spaced block of T * B rows; otherwise each row of the batch is.
    const ConstMatMap w_ih = w.input_weights();
    float* gates = ws.gates_.data();
    if (x.t_pitch == B * x.b_pitch) {
        ws.gemm_->multiply_transposed(mat(x.data, T * B, x.width, x.b_pitch), w_ih, mat(gates, T * B, G), false);
    } else {
        for (Index b = 0; b < B; ++b)
            ws.gemm_->multiply_transposed(mat(x.row(0, b), T, x.width, x.t_pitch), w_ih, mat(gates + b * G, T, G, B * G),
                                          false);
    }
    if (w.b_ih)
        mat(gates, T * B, G).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.b_ih, G);

    // State ping-pongs between two buffers, h [B, H_out] then c [B, H] in each.
    float* state[2] = {ws.state_[0].data(), ws.state_[1].data()};
    const bool has_c = c != nullptr;
    const Index C = has_c ? H : 0;
    auto h_of = [&](float* s) { return mat(s, B, H_out); };
    auto c_of = [&](float* s) { return mat(s + B * H_out, B, C); };
    h_of(state[0]) = mat(h, B, H_out);
    if (has_c)
        c_of(state[0]) = mat(c, B, H);
    const StepBuffers buffers{ws.recurrent_.data(), ws.hidden_.data(), ws.gemm_.get()};

    for (Index s = 0; s < T; ++s) {
        const Index t = direction == 1 ? T - 1 - s : s;
        const float* prev = state[0];
        StepState step{mat(prev, B, H_out), mat(prev + B * H_out, B, C), h_of(state[1]), c_of(state[1])};
        cell_forward_step(spec_, w, mat(gates + t * B * G, B, G), step, buffers);
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
        std::swap(state[0], state[1]);
    }
    mat(h, B, H_out) = h_of(state[0]);
    if (has_c)
        mat(c, B, H) = c_of(state[0]);
}

}  // namespace streamrnn
