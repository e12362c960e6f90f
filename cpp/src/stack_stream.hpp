// cpp/src/stack_stream.hpp: StackStream, what a stream of a recurrent stack carries and does: its
// state, its buffers, and its steps through the one-row path or the stack. No guard and no
// floating point mode of its own: a Stream adds those, and a SequentialStream steps several of
// these under one of each. Part of streamrnn, MIT licence.
#pragma once

#include "kernels/row_kernels.hpp"
#include "layer.hpp"
#include "seq_view.hpp"
#include "weight_store.hpp"

#include "streamrnn/model.hpp"

#include <memory>
#include <vector>

namespace streamrnn {

class StackStream {
public:
    /// Steps per internal block of process(): chunks longer than this run block by block.
    static constexpr Index block_steps = 64;

    /// Throws ArgumentError for a missing or bidirectional model or a batch outside [1, 2^24];
    /// std::length_error or std::bad_alloc when its buffers do not fit. Starts from the model's
    /// initial state.
    StackStream(std::shared_ptr<const Model> model, Index batch);

    const Model& model() const noexcept { return *model_; }
    const ModelSpec& spec() const noexcept { return spec_; }
    Index batch() const noexcept { return batch_; }
    Buffer& h() noexcept { return h_; }
    Buffer& c() noexcept { return c_; }
    const Buffer& h() const noexcept { return h_; }
    const Buffer& c() const noexcept { return c_; }

    /// x: [B, I] -> y: [B, H_out]. STREAMRNN_REALTIME, as the rest. Inline, with the one-row path
    /// it takes: a step of one row is tens of nanoseconds, and calls between files cost a share.
    void step(const float* x, float* y) noexcept
    {
        if (batch_ == 1) {
            cells_now();
            step_one_row(x, y);
        } else {
            step_rows(x, y);
        }
    }
    /// T steps of every row: xs' rows of I -> ys' rows of H_out, in either layout.
    void process(ConstSeqView xs, SeqView ys, Index T) noexcept;
    /// Every row, or row i (out of range: nothing), back to the model's initial state.
    void start() noexcept;
    void start_row(Index i) noexcept;

private:
    /// The weights of a run: the current version and the stream's copies of it.
    RunWeights weights_of(const detail::WeightSet& set) const noexcept;
    /// Each layer's weights as a step of one row multiplies them, in the current version: worked
    /// out again only when the version changes (by number, not address: a version let go may be
    /// freed, and a later one made in its place).
    void cells_now() noexcept
    {
        const detail::WeightSet& set = reader_.acquire();
        if (set.version != cells_version_)
            work_out_cells(set);
    }
    void work_out_cells(const detail::WeightSet& set) noexcept;
    /// One step of the row, with the weights of the last cells_now(): through the row kernels
    /// where there are, else the engine's step_row.
    void step_one_row(const float* x, float* y) noexcept
    {
        if (row_step_)
            row_step_(row_layers_.data(), spec_.num_layers, x, y, h_.data(), c_data(), row_scratch_.data());
        else
            step_row(spec_, forward_step_, cells_.data(), x, y, h_.data(), c_data(), workspace_);
    }
    /// A step of B > 1 rows, through the stack.
    void step_rows(const float* x, float* y) noexcept;
    float* c_data() noexcept { return c_.empty() ? nullptr : c_.data(); }

    std::shared_ptr<const Model> model_;
    const ModelSpec& spec_;
    Index batch_;
    int kind_;  ///< of the copies of the weights it multiplies (WeightCopies)
    detail::WeightStore::Reader reader_;
    Buffer h_;
    Buffer c_;
    Workspace workspace_;
    ForwardStep forward_step_;        ///< the cell's step (one-row steps)
    std::vector<CellWeights> cells_;  ///< per layer, of version cells_version_ (one-row steps)
    RowStep row_step_ = nullptr;      ///< the row kernels' step, where a row steps through them
    std::vector<RowLayer> row_layers_;  ///< per layer, of version cells_version_ (row_step_)
    Buffer row_scratch_;
    std::uint64_t cells_version_ = ~std::uint64_t(0);  ///< none yet: no version has this number
};

}  // namespace streamrnn
