// cpp/include/streamrnn/errors.hpp: the errors streamrnn reports, as exceptions or as a Status, and
// the message helpers. Part of streamrnn, MIT licence.
#pragma once

#include "config.hpp"

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

/// A GPU call failed (the CUDA backend): no device, out of device memory, a driver error.
/// Python: RuntimeError.
struct DeviceError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Two calls that must not overlap did, on two threads: the later one is refused, and nothing it
/// would have touched changes. The message names both calls. Python: RuntimeError.
struct ConcurrencyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The kinds of error, for a Status and for raise().
enum class ErrorKind {
    none,      ///< success
    argument,  ///< ArgumentError
    format,    ///< FormatError
    file,      ///< FileError
    range,     ///< std::out_of_range: an index (a token id, a class id) outside its range
    length,    ///< std::length_error: a buffer larger than the machine can address (32-bit hosts)
    device,    ///< DeviceError
    busy,      ///< ConcurrencyError
};

/// What a call that reports errors without throwing returns (try_load_model, the C API).
struct Status {
    ErrorKind kind = ErrorKind::none;
    int error_number = 0;  ///< errno, for ErrorKind::file
    std::string message;

    bool ok() const { return kind == ErrorKind::none; }
};

/// Throws the exception of `kind` (FileError with `error_number`). Built without exceptions
/// (STREAMRNN_EXCEPTIONS=OFF), it prints the message and aborts, as a failed assert would: that
/// build reports errors in files and in C API arguments as a Status, so only a broken
/// precondition of the C++ API gets here.
[[noreturn]] void raise(ErrorKind kind, const std::string& message, int error_number = 0);
/// Throws `status` as its exception (see raise); `status` must not be ok().
[[noreturn]] void raise(const Status& status);

/// ArgumentError: a backward pass with no training forward before it, of `what` ("Linear", ...).
[[noreturn]] void raise_no_training_forward(const std::string& what);

/// "(2, 3, 4)": shapes in messages are written as Python writes tuples.
std::string shape_str(const std::vector<long long>& shape);
inline std::string shape_str(std::initializer_list<long long> shape) { return shape_str(std::vector<long long>(shape)); }

}  // namespace streamrnn
