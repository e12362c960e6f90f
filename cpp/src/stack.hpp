// cpp/src/stack.hpp: a model's stack, layers x directions with residual joins and dropout between
// layers, forward and backward, and the record a training forward keeps for the backward: written
// once for both backends, over a Backend that scans one layer and direction (the CPU engine,
// stack.cpp and layer.cpp; the CUDA backend, cuda/scan.hpp). Part of streamrnn, MIT licence.
#pragma once

#include "seq_view.hpp"

#include "streamrnn/spec.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace streamrnn {

/// What a training forward keeps for backward, in the backend's memory: time-major [T, B, ...]
/// rows, indexed by the time step (not the order of processing).
struct RecordView {
    std::vector<float*> inputs;  ///< per layer: its input [T, B, I_l]
    std::vector<float*> masks;   ///< per layer: the dropout scale of its input [T, B, I_l], or null
    /// Per layer and direction ([L * D]).
    struct Cell {
        float* gates = nullptr;   ///< [T, B, G]: activated
        float* h_prev = nullptr;  ///< [T, B, H_out]: the state each step started from
        float* c_prev = nullptr;  ///< [T, B, H] (LSTM)
        float* c_next = nullptr;  ///< [T, B, H] (LSTM)
        /// [T, B, H]: LSTM with projection o * tanh(c'); GRU reset-after W_hn h + b_hn;
        /// reset-before r * h.
        float* extra = nullptr;
        float* pre = nullptr;  ///< [T, B, G]: a cell with options' pre-activations (StepBuffers::pre)

        /// The same buffers from step t of B rows on.
        Cell from_step(const ModelSpec& spec, Index t, Index B) const
        {
            const Index rows = t * B, H = spec.hidden_size, H_out = spec.output_size(), G = spec.gate_rows();
            auto at = [rows](float* data, Index width) { return data ? data + rows * width : nullptr; };
            return {at(gates, G), at(h_prev, H_out), at(c_prev, H), at(c_next, H), at(extra, H), at(pre, G)};
        }
    };
    std::vector<Cell> cells;

    /// The record from step t of B rows on: the same buffers, each at its row t * B (a chunked
    /// forward keeps its windows, and a window's look-ahead run, one after another in one record).
    RecordView from_step(const ModelSpec& spec, Index t, Index B) const
    {
        RecordView view = *this;
        for (int layer = 0; layer < spec.num_layers; ++layer) {
            const std::size_t l = static_cast<std::size_t>(layer);
            const Index rows = t * B * spec.layer_input_size(layer);
            view.inputs[l] = inputs[l] + rows;
            view.masks[l] = masks[l] ? masks[l] + rows : nullptr;
        }
        for (Cell& cell : view.cells)
            cell = cell.from_step(spec, t, B);
        return view;
    }

    /// A record of T steps of B rows, each buffer from allocate(floats) -> float*.
    template <typename Allocate>
    static RecordView make(const ModelSpec& spec, Index T, Index B, Allocate&& allocate)
    {
        RecordView record;
        const Index rows = T * B, H = spec.hidden_size, H_out = spec.output_size();
        const bool extra = spec.kind == CellKind::gru || spec.proj_size > 0;
        for (int layer = 0; layer < spec.num_layers; ++layer) {
            record.inputs.push_back(allocate(rows * spec.layer_input_size(layer)));
            const bool dropped = layer > 0 && spec.dropout > 0.0;
            record.masks.push_back(dropped ? allocate(rows * spec.layer_input_size(layer)) : nullptr);
            for (int direction = 0; direction < spec.directions(); ++direction) {
                Cell cell;
                cell.gates = allocate(rows * spec.gate_rows());
                cell.h_prev = allocate(rows * H_out);
                if (spec.has_cell_state()) {
                    cell.c_prev = allocate(rows * H);
                    cell.c_next = allocate(rows * H);
                }
                if (extra)
                    cell.extra = allocate(rows * H);
                if (spec.has_cell_options())
                    cell.pre = allocate(rows * spec.gate_rows());
                record.cells.push_back(cell);
            }
        }
        return record;
    }
};

/// What one backward pass works on: a record of T steps of B rows made with `parameters`, and the
/// weight gradients it adds into (laid out as `parameters`). Both backends' backward holds one.
struct BackwardPass {
    const ModelSpec& spec;
    const float* parameters;
    float* gradients;
    const RecordView& record;
    Index T, B;
    const std::int64_t* lengths;
};

/// The stack of a forward. Backend, which the backends provide:
///   float* between(int i)                   [T, B, D * H_out] buffers 0 and 1, alternating between
///                                           layers (an inference forward of several layers)
///   void scan(layer, direction, ConstSeqView in, SeqView out, T, B, lengths, h, c, RecordView::Cell* kept)
///                                           one layer and direction: out's columns, h and c in place
///   void add_residual(ConstSeqView in, SeqView out, T, B, lengths)   out += in on valid steps
///   void drop_out(float* data, float* mask, Index count, int layer)  data *= a new mask
///   void copy_steps(ConstSeqView from, SeqView to, T, B)
/// x: T x B rows of I; y: of D * H_out; h [L * D, B, H_out], c [L * D, B, H] (LSTM) in and out.
/// With a record (a training forward), x is kept as the first layer's input, every layer's input,
/// gates and states go there, and dropout (spec.dropout) applies between layers.
template <typename Backend>
void forward_stack(Backend& backend, const ModelSpec& spec, ConstSeqView x, SeqView y, Index T, Index B,
                   const std::int64_t* lengths, float* h, float* c, RecordView* record)
{
    const int D = spec.directions();
    const Index H = spec.hidden_size, H_out = spec.output_size();
    const Index width = D * H_out;
    ConstSeqView in = x;
    if (record) {
        // Time-major whatever x's layout, as every later layer's input is.
        const SeqView copy = SeqView::time_major(record->inputs[0], B, spec.input_size, spec.input_size);
        backend.copy_steps(x, copy, T, B);
        in = copy;
    }
    for (int layer = 0; layer < spec.num_layers; ++layer) {
        // Between layers the data is time-major, in the backend's buffers or (training) in the
        // record as the next layer's input; the last layer writes y.
        const bool last = layer + 1 == spec.num_layers;
        float* between = last ? nullptr : record ? record->inputs[std::size_t(layer + 1)] : backend.between(layer % 2);
        const SeqView out = last ? y : SeqView::time_major(between, B, width, width);
        for (int direction = 0; direction < D; ++direction) {
            const Index cell = layer * D + direction;
            backend.scan(layer, direction, in, out.columns(direction * H_out, H_out), T, B, lengths,
                         h + cell * B * H_out, c ? c + cell * B * H : nullptr,
                         record ? &record->cells[std::size_t(cell)] : nullptr);
        }
        if (spec.residual_at(layer))
            backend.add_residual(in, out, T, B, lengths);
        if (record && !last && spec.dropout > 0.0)
            backend.drop_out(between, record->masks[std::size_t(layer + 1)], T * B * width, layer);
        in = out;
    }
}

/// Backpropagation through time over a training forward's record. Backend:
///   void zero(float* data, Index count)
///   void copy(float* to, const float* from, Index count)
///   void scan_back(layer, direction, ConstSeqView d_out, float* d_in, dh, dc, const RecordView::Cell& kept)
///                                   d_out: dL/d(this direction's output), time-major columns;
///                                   d_in [T, B, I_l] += dL/d(layer input); weight gradients added;
///                                   dh, dc: carried down the steps, in place
///   void add_residual(ConstSeqView from, SeqView to, T, B, lengths)
///   void scale(float* data, const float* by, Index count)            data *= by
///   void copy_steps(ConstSeqView from, SeqView to, T, B)
/// dy like y; dh_n, dc_n: dL/d(final state), or null for zeros; dx like x; dh0, dc0 out: dL/d(the
/// initial state). d_out and d_in: two buffers of T * B * (the widest layer input or output).
template <typename Backend>
void backward_stack(Backend& backend, const BackwardPass& pass, ConstSeqView dy, const float* dh_n,
                    const float* dc_n, SeqView dx, float* dh0, float* dc0, float* d_out, float* d_in)
{
    const ModelSpec& spec = pass.spec;
    const Index T = pass.T, B = pass.B;
    const int D = spec.directions();
    const Index H = spec.hidden_size, H_out = spec.output_size(), width = D * H_out;
    backend.copy_steps(dy, SeqView::time_major(d_out, B, width, width), T, B);
    for (int layer = spec.num_layers - 1; layer >= 0; --layer) {
        const Index I = spec.layer_input_size(layer);
        backend.zero(d_in, T * B * I);
        const ConstSeqView d_view = ConstSeqView::time_major(d_out, B, width, width);
        for (int direction = 0; direction < D; ++direction) {
            const Index cell = layer * D + direction;
            float* dh = dh0 + cell * B * H_out;
            float* dc = dc0 ? dc0 + cell * B * H : nullptr;
            // dh0 and dc0 carry the state's gradient down the steps, from dh_n and dc_n.
            auto start = [&](const float* given, float* carried, Index size) {
                if (given)
                    backend.copy(carried, given + cell * size, size);
                else
                    backend.zero(carried, size);
            };
            start(dh_n, dh, B * H_out);
            if (dc)
                start(dc_n, dc, B * H);
            backend.scan_back(layer, direction, d_view.columns(direction * H_out, H_out), d_in, dh, dc,
                              pass.record.cells[std::size_t(cell)]);
        }
        if (spec.residual_at(layer))
            backend.add_residual(d_view, SeqView::time_major(d_in, B, I, I), T, B, pass.lengths);
        if (const float* mask = pass.record.masks[std::size_t(layer)])
            backend.scale(d_in, mask, T * B * I);
        std::swap(d_out, d_in);
    }
    const Index I = spec.input_size;
    backend.copy_steps(ConstSeqView::time_major(d_out, B, I, I), dx, T, B);
}

/// Floats in each of backward_stack's two gradient buffers, for T steps of B rows.
inline Index backward_buffer_size(const ModelSpec& spec, Index T, Index B)
{
    Index widest = Index(spec.directions()) * spec.output_size();
    for (int layer = 0; layer < spec.num_layers; ++layer)
        widest = widest > spec.layer_input_size(layer) ? widest : spec.layer_input_size(layer);
    return T * B * widest;
}

}  // namespace streamrnn
