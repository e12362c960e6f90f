// cpp/src/weights.cpp: the tensor table and offsets of a recurrent model, and the copies of its
// weights that runs multiply. Part of streamrnn, MIT licence.
#include "weights.hpp"

#include "sizes.hpp"

namespace streamrnn {

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
            if (spec.peepholes)
                table.push_back({"weight_peephole" + suffix, {3, spec.hidden_size}});
        }
    }
    if (spec.learn_initial_state) {
        const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
        table.push_back({"initial_h", {cells, spec.output_size()}});
        if (spec.has_cell_state())
            table.push_back({"initial_c", {cells, spec.hidden_size}});
    }
    return table;
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
    const std::uint64_t peephole = spec.peepholes ? 3 * H : 0;
    const std::uint64_t rest = G * H_out + (spec.bias ? 2 * G : 0) + P * H + peephole;  // all but W_ih
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
    if (P > 0) {
        w.w_hr = at;
        at += P * H;
    }
    if (peephole > 0)
        w.peephole = at;
    if (spec.has_cell_options()) {
        w.options.any = true;
        for (int index = 0; index < spec.cell_function_count(); ++index)
            w.options.functions[index] = spec.cell_function(direction, index);
        w.options.clip = spec.clip;
        w.options.input_forget = spec.input_forget;
    }
    return w;
}

namespace {

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
    // A stream of one row steps through the row kernels, where this CPU has them and they have
    // the cell: of ONNX's options, an LSTM's peepholes, clipping and coupled gates, with its own
    // functions (other functions are the general step's alone).
    const bool row_cell_exists = !spec.has_cell_options() || (spec.kind == CellKind::lstm && spec.has_own_functions());
    if (streaming && B == 1 && row_kernels() && !spec.bidirectional && row_cell_exists) {
        copies.row = true;
        return copies;
    }
    // A whole-sequence call transposes once per call: worth it over a long enough row.
    copies.transposed = B == 1 && (streaming || T >= 32) && transposed_pays(spec);
    copies.transposed_input = copies.transposed && streaming;
    // One row of a stream with small weights keeps to the transposed copies (audio: chunks of a
    // few features); elsewhere packing costs one pass over the weights, which many steps or rows
    // repay.
    copies.packed = PackedWeights::available() && (streaming ? B > 1 || !copies.transposed : T * B >= 32);
    return copies;
}

RowCell row_cell(const ModelSpec& spec) noexcept
{
    switch (spec.kind) {
    case CellKind::lstm: return spec.has_cell_options() ? RowCell::lstm_options : RowCell::lstm;
    case CellKind::gru: return spec.reset_after ? RowCell::gru_reset_after : RowCell::gru_reset_before;
    case CellKind::rnn_tanh: return RowCell::rnn_tanh;
    case CellKind::rnn_relu: return RowCell::rnn_relu;
    }
    return RowCell::lstm;
}

namespace {

/// One layer's weights in the layout of RowLayer (kernels/row_kernels.hpp), at `lanes` floats per
/// vector. Allocates.
void pack_row_layer(const ModelSpec& spec, const CellWeights& w, Index lanes, Buffer& panels, Buffer& bias,
                    Buffer& projection)
{
    const Index I = w.input_size, H = w.hidden_size, H_out = w.output_size, K = I + H_out;
    const Index blocks = row_blocks(row_cell(spec)), chunks = (H + lanes - 1) / lanes;
    const bool gru = spec.kind == CellKind::gru;
    panels.assign(buffer_size({chunks, K, blocks * lanes}), 0.0f);
    for (Index j = 0; j < chunks; ++j)
        for (Index k = 0; k < K; ++k)
            for (Index b = 0; b < blocks; ++b)
                for (Index u = 0; u < lanes && j * lanes + u < H; ++u) {
                    const Index gate = b * H + j * lanes + u;
                    panels[static_cast<std::size_t>(((j * K + k) * blocks + b) * lanes + u)] =
                        k < I ? w.w_ih[gate * I + k] : w.w_hh[gate * H_out + k - I];
                }
    // GRU: r and z summed, then b_in and b_hn apart (n adds r (W_hn h + b_hn)).
    const Index bias_blocks = gru ? 4 : blocks;
    bias.assign(buffer_size({chunks, bias_blocks * lanes}), 0.0f);
    if (w.b_ih)
        for (Index j = 0; j < chunks; ++j)
            for (Index b = 0; b < bias_blocks; ++b)
                for (Index u = 0; u < lanes && j * lanes + u < H; ++u) {
                    const Index unit = j * lanes + u;
                    const float value = !gru || b < 2 ? w.b_ih[b * H + unit] + w.b_hh[b * H + unit]
                                        : b == 2     ? w.b_ih[2 * H + unit]
                                                     : w.b_hh[2 * H + unit];
                    bias[static_cast<std::size_t>((j * bias_blocks + b) * lanes + u)] = value;
                }
    projection.clear();
    if (w.w_hr) {
        const Index out_chunks = (H_out + lanes - 1) / lanes;
        projection.assign(buffer_size({out_chunks, H, lanes}), 0.0f);
        for (Index j = 0; j < out_chunks; ++j)
            for (Index k = 0; k < H; ++k)
                for (Index u = 0; u < lanes && j * lanes + u < H_out; ++u)
                    projection[static_cast<std::size_t>((j * H + k) * lanes + u)] = w.w_hr[(j * lanes + u) * H + k];
    }
}

}  // namespace

DerivedWeights::DerivedWeights(const ModelSpec& spec, WeightCopies copies, const float* parameters)
{
    if (copies.row) {
        row_lanes = streamrnn::row_lanes(spec.hidden_size, row_kernels()->max_lanes);
        for (int layer = 0; layer < spec.num_layers; ++layer)
            pack_row_layer(spec, cell_weights(spec, parameters, layer, 0), row_lanes, row_panels.emplace_back(),
                           row_biases.emplace_back(), row_projections.emplace_back());
        return;
    }
    for (int layer = 0; layer < spec.num_layers; ++layer)
        for (int direction = 0; direction < spec.directions(); ++direction) {
            const CellWeights w = cell_weights(spec, parameters, layer, direction);
            const Index I_l = w.input_size, G = w.gate_rows, H_out = w.output_size;
            if (copies.transposed_input)
                mat(transposed_ih.emplace_back(buffer_size({I_l, G})).data(), I_l, G) = w.input_weights().transpose();
            if (copies.transposed)
                mat(transposed_hh.emplace_back(buffer_size({H_out, G})).data(), H_out, G) =
                    w.recurrent_weights().transpose();
            if (spec.bias && spec.kind != CellKind::gru)
                mat(biases.emplace_back(static_cast<std::size_t>(G)).data(), 1, G) =
                    mat(w.b_ih, 1, G) + mat(w.b_hh, 1, G);
            if (copies.packed) {
                packed_ih.emplace_back(G, I_l).pack(w.input_weights());
                // One row with W_hh^T multiplies that instead.
                if (!copies.transposed)
                    packed_hh.emplace_back(G, H_out).pack(w.recurrent_weights());
            }
        }
}

CellWeights run_weights(const ModelSpec& spec, const float* parameters, const DerivedWeights* copies, int layer,
                        int direction, Index B) noexcept
{
    CellWeights w = cell_weights(spec, parameters, layer, direction);
    if (!copies)
        return w;
    const std::size_t cell = static_cast<std::size_t>(layer * spec.directions() + direction);
    if (!copies->transposed_ih.empty() && B == 1)
        w.w_ih_t = copies->transposed_ih[cell].data();
    if (!copies->transposed_hh.empty() && B == 1)
        w.w_hh_t = copies->transposed_hh[cell].data();
    if (!copies->packed_ih.empty())
        w.w_ih_packed = &copies->packed_ih[cell];
    if (!copies->packed_hh.empty())
        w.w_hh_packed = &copies->packed_hh[cell];
    // LSTM and RNN add b_hh to every gate as they add b_ih: the two summed once go in with the
    // input projection, not b_hh in every step.
    if (!copies->biases.empty()) {
        w.b_ih = copies->biases[cell].data();
        w.b_hh = nullptr;
    }
    return w;
}

}  // namespace streamrnn
