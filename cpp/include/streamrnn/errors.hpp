// cpp/include/streamrnn/errors.hpp: the exceptions streamrnn throws and the message helpers.
// Part of streamrnn, MIT licence.
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace streamrnn {

/// Bad arguments: a wrong size, an unknown option, a mismatched state dict. Python: ValueError.
struct ArgumentError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// A model file (or buffer) that is truncated, corrupt or of another version. Python: ValueError.
struct FormatError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// The operating system refused a file operation. `error_number` is errno (ENOENT: no such file).
struct FileError : std::runtime_error {
    FileError(const std::string& what, int error_number) : std::runtime_error(what), error_number(error_number) {}
    int error_number;
};

/// ArgumentError: a backward pass with no training forward before it, of `what` ("Linear", ...).
[[noreturn]] void throw_no_training_forward(const std::string& what);

/// "(2, 3, 4)": shapes in messages are written as Python writes tuples.
std::string shape_str(const std::vector<long long>& shape);
inline std::string shape_str(std::initializer_list<long long> shape) { return shape_str(std::vector<long long>(shape)); }

}  // namespace streamrnn
