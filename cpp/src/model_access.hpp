// cpp/src/model_access.hpp: what the engine's other parts (streams, the C API) reach in a Model
// beyond its public API: the store of its weights' versions. Part of streamrnn, MIT licence.
#pragma once

#include "record.hpp"
#include "weight_store.hpp"
#include "weights.hpp"

#include "streamrnn/model.hpp"

namespace streamrnn {

struct ModelAccess {
    /// The store of any Trainable's versions (a Model's, a Linear's).
    static detail::WeightStore& store(const Trainable& trainable) { return trainable.store(); }
    /// The copies of `which` of one version of the model's weights.
    static const DerivedWeights* copies(const Model& model, const detail::WeightSet& set, WeightCopies which)
    {
        return static_cast<const DerivedWeights*>(model.store().derived(set, which.kind()));
    }
    /// The tests' view: the parts of the batch that the last training forward split into, and the
    /// guard of the model's training record.
    static std::size_t record_parts(const Model& model) { return model.training_->record.parts.size(); }
    static Exclusive& record_use(Model& model) { return model.training_->record_use; }
    /// The record, its guard and dropout's draws, for a chunked training forward (chunked.cpp).
    static TrainingState& training(Model& model) { return *model.training_; }
};

}  // namespace streamrnn
