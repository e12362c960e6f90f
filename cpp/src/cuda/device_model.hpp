// cpp/src/cuda/device_model.hpp: what a DeviceModel holds on its GPU, shared by its whole-sequence
// calls (device_model.cpp) and its streams (device_stream.cpp). Part of streamrnn, MIT licence.
#pragma once

#include "cuda/executor.hpp"
#include "cuda/scan.hpp"

#include "streamrnn/cuda.hpp"

#include <memory>
#include <random>
#include <shared_mutex>

namespace streamrnn::cuda {

struct DeviceModel::Impl {
    ModelSpec spec;
    int device = 0;
    /// Exclusive for load, TF32 changes and whole-sequence calls (which share the executor and
    /// the pools below); shared for streams' steps, which read only the weights.
    mutable std::shared_mutex lock;
    GpuBuffer<float> weights;
    std::uint64_t version = ~std::uint64_t(0);
    bool allow_tf32 = false;
    std::unique_ptr<Executor> executor;
    Pool scratch;  ///< a call's plan buffers
    Pool io;       ///< a call's arrays and state on the GPU, so that a failure leaves the caller's
    GpuBuffer<std::int64_t> lengths;
    /// The last training forward's record, its sizes and lengths.
    Pool record_memory;
    RecordView record;
    long long record_T = 0, record_B = 0;
    bool recorded = false;  ///< whether the record holds a complete training forward
    bool record_lengths = false;
    GpuBuffer<std::int64_t> recorded_lengths;
    GpuBuffer<float> gradients;
    std::mt19937_64 dropout_rng{std::random_device{}()};

    void check_loaded() const
    {
        if (version == ~std::uint64_t(0))
            raise(ErrorKind::argument, "the model's weights were never loaded onto the GPU");
    }
    void check_recorded() const
    {
        if (!recorded)
            raise_no_training_forward("model");
    }
    void run_forward(const float* x, Index T, Index B, const std::int64_t* lengths, float* y, float* h, float* c,
                     Memory memory, bool train);
    /// A record of T steps of B rows in record_memory: its buffers where they are large enough,
    /// else new ones made before the old go, so that a failure keeps the last record.
    void prepare_record(long long T, long long B);
};

}  // namespace streamrnn::cuda
