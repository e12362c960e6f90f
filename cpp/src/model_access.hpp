// cpp/src/model_access.hpp: what the engine's other parts (streams, the C API) reach in a Model
// beyond its public API: the store of its weights' versions. Part of streamrnn, MIT licence.
#pragma once

#include "record.hpp"
#include "weight_store.hpp"
#include "weights.hpp"

#include "streamrnn/model.hpp"

namespace streamrnn {

struct ModelAccess {
    static detail::WeightStore& store(const Model& model) { return model.store(); }
    /// The copies of `which` of one version of the model's weights.
    static const DerivedWeights* copies(const Model& model, const detail::WeightSet& set, WeightCopies which)
    {
        return static_cast<const DerivedWeights*>(model.store().derived(set, which.kind()));
    }
    /// The parts of the batch that the last training forward split into (the tests' view).
    static std::size_t record_parts(const Model& model) { return model.training_->record.parts.size(); }
};

}  // namespace streamrnn
