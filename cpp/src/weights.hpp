// cpp/src/weights.hpp: a recurrent model's tensors (PyTorch's table and offsets), and the copies of
// one version of its weights that make a run's products faster: transposed, packed, biases summed.
// Part of streamrnn, MIT licence.
#pragma once

#include "cells/cell.hpp"
#include "kernels/gemm.hpp"
#include "kernels/row_kernels.hpp"
#include "weight_store.hpp"

#include "streamrnn/spec.hpp"
#include "streamrnn/trainable.hpp"

#include <vector>

namespace streamrnn {

/// PyTorch's tensors of a recurrent model, layer by layer, direction by direction: weight_ih,
/// weight_hh, bias_ih, bias_hh, weight_hr, suffixed _l{k}[_reverse] (not for a cell). Validates
/// the spec first (ArgumentError).
std::vector<TensorInfo> tensor_table(const ModelSpec& spec);

/// Which copies of the weights a run keeps, where they make its products faster.
struct WeightCopies {
    /// W_hh^T (CellWeights::w_hh_t): for one row (B = 1) of small weights, where a row times W^T
    /// column by column beats short dot products per gate row; large weights are memory-bound
    /// either way and would only be stored twice.
    bool transposed = false;
    /// W_ih^T (CellWeights::w_ih_t) as well, for the one-step input projections of a stream of
    /// one row.
    bool transposed_input = false;
    /// W_ih, and W_hh for B > 1, packed for the matrix kernel (CellWeights::w_ih_packed), on CPUs
    /// that have one (AVX2, AVX-512): packed once, they serve every step and every chunk.
    bool packed = false;
    /// Every layer packed for the row kernels (kernels/row_kernels.hpp): a stream of one row, on a
    /// CPU that has them. It multiplies nothing else.
    bool row = false;

    /// The kind of copies, as a WeightSet numbers them (WeightSet::kinds of them).
    int kind() const { return int(row) << 3 | int(transposed) << 2 | int(transposed_input) << 1 | int(packed); }
    static WeightCopies of_kind(int kind)
    {
        WeightCopies copies;
        copies.row = (kind & 8) != 0;
        copies.transposed = (kind & 4) != 0;
        copies.transposed_input = (kind & 2) != 0;
        copies.packed = (kind & 1) != 0;
        return copies;
    }
};

/// The copies that pay for runs of T steps over B rows: a stream's (`streaming`, chunk by chunk
/// for life) or one whole-sequence call's.
WeightCopies weight_copies_for(const ModelSpec& spec, Index T, Index B, bool streaming);

/// The copies (WeightCopies) of one version of a model's weights, per layer and direction or empty.
struct DerivedWeights final : detail::DerivedCopies {
    /// Makes them from `parameters` (laid out as the model's). Allocates.
    DerivedWeights(const ModelSpec& spec, WeightCopies which, const float* parameters);

    std::vector<Buffer> transposed_ih;
    std::vector<Buffer> transposed_hh;
    std::vector<Buffer> biases;  ///< b_ih + b_hh (LSTM, RNN)
    std::vector<PackedWeights> packed_ih;
    std::vector<PackedWeights> packed_hh;
    /// Per layer, for the row kernels (RowLayer's layout), at row_lanes floats per vector.
    std::vector<Buffer> row_panels;
    std::vector<Buffer> row_biases;
    std::vector<Buffer> row_projections;
    int row_lanes = 0;
};

/// The row kernels' cell for the spec's.
RowCell row_cell(const ModelSpec& spec) noexcept;

/// The weights of a layer and direction as a run over B rows multiplies them: `parameters`'
/// pointers, with the copies that `copies` (or null: none) keeps, and b_hh folded into b_ih where
/// they keep the sum. Allocates nothing.
CellWeights run_weights(const ModelSpec& spec, const float* parameters, const DerivedWeights* copies, int layer,
                        int direction, Index B) noexcept;

}  // namespace streamrnn
