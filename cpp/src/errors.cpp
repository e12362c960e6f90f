// cpp/src/errors.cpp: raising streamrnn's errors, with or without exceptions, and message helpers.
// Part of streamrnn, MIT licence.
#include "streamrnn/errors.hpp"

#include "sizes.hpp"

#include <limits>
#if !STREAMRNN_HAS_EXCEPTIONS
#include <cstdio>
#include <cstdlib>
#endif

namespace streamrnn {

void raise(ErrorKind kind, const std::string& message, int error_number)
{
#if STREAMRNN_HAS_EXCEPTIONS
    switch (kind) {
    case ErrorKind::format: throw FormatError(message);
    case ErrorKind::file: throw FileError(message, error_number);
    case ErrorKind::range: throw std::out_of_range(message);
    case ErrorKind::length: throw std::length_error(message);
    case ErrorKind::device: throw DeviceError(message);
    case ErrorKind::busy: throw ConcurrencyError(message);
    default: throw ArgumentError(message);
    }
#else
    (void)kind;
    (void)error_number;
    std::fprintf(stderr, "streamrnn: %s\n", message.c_str());
    std::abort();
#endif
}

void raise(const Status& status) { raise(status.kind, status.message, status.error_number); }

void raise_no_training_forward(const std::string& what)
{
    raise(ErrorKind::argument,
          "backward: there is no training forward of this " + what +
              " to go back through; call it with train=True first");
}

std::string shape_str(const std::vector<long long>& shape)
{
    std::string out = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i > 0)
            out += ", ";
        out += std::to_string(shape[i]);
    }
    if (shape.size() == 1)
        out += ",";
    return out + ")";
}

void raise_too_large(const std::string& what)
{
    raise(ErrorKind::length,
          what + " has more elements than this machine can address (at most " +
              std::to_string(std::numeric_limits<Index>::max()) + ")");
}

void raise_too_large(std::initializer_list<Index> dims)
{
    raise_too_large("a buffer of shape " + shape_str(std::vector<long long>(dims.begin(), dims.end())));
}

}  // namespace streamrnn
