// python/bindings/state.hpp: recurrent state between Python objects and engine buffers.
// Part of streamrnn, MIT licence.
#pragma once

#include "arrays.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn::python {

/// Expected state shapes: h, and c for an LSTM (empty otherwise). `batch_axis` is where B sits
/// (or -1), so that an unbatched state, one axis shorter, can be accepted when B == 1.
struct StateShape {
    Shape h;
    Shape c;
    int batch_axis = -1;
};

/// The state shape of a layer model ([L * D, B, ...]) or of a cell ([B, ...]); without the B axis
/// when `batched` is false.
StateShape state_shape(const ModelSpec& spec, long long B, bool batched);

/// Copies `state` into h and c (buffers of the expected sizes) after checking its structure and
/// every shape, so a refused state writes nothing. None leaves the buffers alone.
/// `accept_unbatched`: with B == 1, also take the state without its B axis. `name` is the
/// argument's, for messages ("state", "dstate").
void read_state(nb::handle state, const ModelSpec& spec, const StateShape& shape, bool accept_unbatched, float* h,
                float* c, const std::string& name = "state");

/// New zero state arrays: h, or (h, c) for an LSTM; h and c receive their buffers.
nb::object new_state(const ModelSpec& spec, const StateShape& shape, float** h, float** c);

/// A NumPy copy of the state: h, or (h, c) for an LSTM.
nb::object make_state(const ModelSpec& spec, const StateShape& shape, const float* h, const float* c);

}  // namespace streamrnn::python
