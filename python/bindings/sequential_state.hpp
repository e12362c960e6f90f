// python/bindings/sequential_state.hpp: a Sequential's shapes as a spec's, and the state of its
// recurrent blocks between Python (one block's state, or a tuple of theirs) and the engine.
// Part of streamrnn, MIT licence.
#pragma once

#include "arrays.hpp"
#include "state.hpp"

#include "streamrnn/sequential.hpp"

#include <vector>

namespace streamrnn::python {

/// The spec whose shapes a Sequential's calls take: I inputs, O outputs, its layout. For the
/// shape checks that layers' calls share (sequence_shape, step_output_shape, ...), nothing else.
ModelSpec io_spec(const Sequential& model);

/// New arrays for the state of every recurrent block of `model` over B rows (batched or not).
class BlockStates {
public:
    BlockStates(const Sequential& model, long long B, bool batched);

    /// Reads `state` (None: leaves the zeros) into the arrays, checking its structure and shapes;
    /// `name` for messages ("state", "dstate").
    void read(nb::handle state, const std::string& name);
    /// Every block's initial state into its arrays.
    void fill_initial();
    /// The engine's view of the arrays, one per recurrent block.
    const StateRef* refs() const { return refs_.data(); }
    /// None, the one block's state, or a tuple of the blocks' states.
    nb::object object() const;

private:
    const Sequential& model_;
    long long B_;
    std::vector<StateShape> shapes_;
    std::vector<nb::object> objects_;
    std::vector<StateRef> refs_;
};

/// Copies a SequentialStream's state out into new arrays ([L_k, B, ...] per block), or checks
/// `state` and returns it as the stream's flat h and c.
nb::object stream_state_object(const Sequential& model, long long B, const float* h, const float* c);
void read_stream_state(const Sequential& model, long long B, nb::handle state, std::vector<float>& h,
                       std::vector<float>& c);

}  // namespace streamrnn::python
