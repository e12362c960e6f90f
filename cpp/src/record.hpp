// cpp/src/record.hpp: ForwardRecord, what the CPU engine's training forward keeps for the backward
// after it (in its own buffers, reused from call to call), and the lock-free guard that keeps a
// model's record for one call at a time. Part of streamrnn, MIT licence.
#pragma once

#include "exclusive.hpp"
#include "parallel.hpp"
#include "stack.hpp"
#include "weight_store.hpp"

#include "streamrnn/spec.hpp"

#include <memory>
#include <random>
#include <vector>

namespace streamrnn {

/// The windows of a chunked forward (chunked.cpp) over T steps of B rows, in the order they run,
/// and where each one's steps sit in a training forward's record: one after another.
struct ChunkPlan {
    struct Window {
        Index start;        ///< its first step of the input
        Index steps;        ///< its chunk's and look-ahead's
        Index chunk_steps;
        Index recorded_at;  ///< its first step in the record
    };
    std::vector<Window> windows;
    /// [3, windows, B]: each row's valid steps in each window, in its chunk and in its look-ahead
    /// (each row chunked over its own length); consecutive windows' rows follow one another.
    std::vector<std::int64_t> row_lengths;
    Index B = 0;
    Index chunk_steps = 0;  ///< of a chunk (the last one may have fewer)
    Index longest = 0;   ///< steps of the longest window
    Index recorded = 0;  ///< steps of all windows

    enum Part { whole = 0, chunk = 1, lookahead = 2 };
    const std::int64_t* lengths(std::size_t window, Part part) const
    {
        return row_lengths.data() + (part * windows.size() + window) * static_cast<std::size_t>(B);
    }
    bool empty() const { return windows.empty(); }
};

/// The record of a model's last training forward: its sizes and lengths, the version of the
/// weights it ran with (the backward multiplies the same ones), and per part of the batch (one
/// part, unless threads split the batch) a RecordView into the record's buffers.
struct ForwardRecord {
    Index T = 0;
    Index B = 0;
    std::vector<std::int64_t> lengths;  ///< [B], or empty: every row T steps long
    std::shared_ptr<const detail::WeightSet> weights;
    struct Part {
        BatchPart rows;
        RecordView view;
    };
    std::vector<Part> parts;
    std::vector<Buffer> blocks;  ///< the views' storage, in the order they were made
    ChunkPlan chunks;  ///< a chunked training forward's windows; empty after any other forward

    const std::int64_t* lengths_data() const { return lengths.empty() ? nullptr : lengths.data(); }
    bool empty() const { return parts.empty() && T == 0 && B == 0 && !weights; }
};

/// Model::backward over the record of a chunked training forward (chunked.cpp): dy and dx over
/// the record's T steps, the rest as backward_stack's; weight gradients added into `gradients`.
/// Allocates.
void backward_chunked(const ModelSpec& spec, const ForwardRecord& record, float* gradients, ConstSeqView dy,
                      const float* dh_n, const float* dc_n, SeqView dx, float* dh0, float* dc0);

/// Makes `record` the record of a forward of T steps of B rows split into `parts` parts (its
/// buffers reused where they are large enough, else all made anew), lengths [B] or null. On
/// failure (no memory) `record` is as it was.
void prepare_record(ForwardRecord& record, const ModelSpec& spec, Index T, Index B, const std::int64_t* lengths,
                    const std::vector<BatchPart>& parts);

/// What a Model keeps for training, apart from its weights and gradients.
struct TrainingState {
    explicit TrainingState(std::uint64_t seed) : dropout_rng(seed) {}

    ForwardRecord record;
    bool recorded = false;
    /// The record's forward started from the model's initial state (Model::forward_train).
    bool from_initial_state = false;
    /// The record is for one training forward or backward at a time.
    Exclusive record_use;
    std::mt19937_64 dropout_rng;
};

}  // namespace streamrnn
