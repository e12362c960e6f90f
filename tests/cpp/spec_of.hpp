// tests/cpp/spec_of.hpp: the plain stacks that tests and the step bench build.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/spec.hpp"

namespace streamrnn::testing {

/// A unidirectional stack of `layers` cells of `kind`, biases on, no projection.
inline ModelSpec spec_of(CellKind kind, int input, int hidden, int layers)
{
    ModelSpec spec;
    spec.kind = kind;
    spec.input_size = input;
    spec.hidden_size = hidden;
    spec.num_layers = layers;
    return spec;
}

}  // namespace streamrnn::testing
