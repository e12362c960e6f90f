// python/bindings/spec.hpp: a ModelSpec from Python's keyword arguments and back, for both modules
// (the engine's and the CUDA backend's). Part of streamrnn, MIT licence.
#pragma once

#include "arrays.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn::python {

/// The spec that `fields` describes, keyed as ModelSpec's fields (streamrnn::for_each_field: mode,
/// input_size, ..., dropout); a missing key keeps ModelSpec's default. TypeError for a value of
/// the wrong type, ValueError for one out of range, naming the field; the spec is validated.
ModelSpec spec_from(nb::dict fields);

/// The fields of `spec` as a dict, as spec_from reads them.
nb::dict spec_dict(const ModelSpec& spec);

/// A Python integer (or anything with __index__ but bool) as a long long, or TypeError / ValueError
/// naming `name` (huge integers included).
long long to_integer(nb::handle value, const std::string& name);
/// The same, unnamed: whether `value` is an integer at all; its value in `out`, and `fits` false
/// for one past 64 bits.
bool integer_value(nb::handle value, long long& out, bool& fits);

/// A path argument as a string: ValueError for an embedded NUL byte, which the file system would
/// read as the end of the path.
std::string to_path(const std::string& path);

}  // namespace streamrnn::python
