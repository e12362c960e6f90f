// cpp/src/initial_state.hpp: where one version of a recurrent model's weights keeps the model's
// initial state (Model::set_initial_state), for every kind of stream to start its rows from.
// Part of streamrnn, MIT licence.
#pragma once

#include "weight_store.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn {

/// The initial state of one version: h0 [L * D, H_out] and (LSTM) c0 [L * D, H], null for zeros.
struct InitialState {
    const float* h = nullptr;
    const float* c = nullptr;

    /// Of `set`, a version of the weights of a model of `spec`: its learned tensors (the last of
    /// its tensors), else the state set for it, else zeros. O(1), lock-free: a real-time reset.
    static InitialState of(const ModelSpec& spec, const detail::WeightSet& set) noexcept
    {
        const std::size_t cells = static_cast<std::size_t>(spec.num_layers) * spec.directions();
        const float* start = nullptr;
        if (spec.learn_initial_state)
            start = set.values.data() + (spec.parameter_count() - cells * spec.initial_state_width());
        else if (!set.initial.empty())
            start = set.initial.data();
        if (!start)
            return {};
        return {start, spec.has_cell_state() ? start + cells * spec.output_size() : nullptr};
    }
};

}  // namespace streamrnn
