// cpp/src/errors.cpp: message helpers for streamrnn's exceptions.
// Part of streamrnn, MIT licence.
#include "streamrnn/errors.hpp"

#include "sizes.hpp"

#include <limits>

namespace streamrnn {

void throw_no_training_forward(const std::string& what)
{
    throw ArgumentError("backward: there is no training forward of this " + what +
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

void throw_too_large(const std::string& what)
{
    throw std::length_error("streamrnn: " + what + " has more elements than this machine can address (at most " +
                            std::to_string(std::numeric_limits<Index>::max()) + ")");
}

void throw_too_large(std::initializer_list<Index> dims)
{
    throw_too_large("a buffer of shape " + shape_str(std::vector<long long>(dims.begin(), dims.end())));
}

}  // namespace streamrnn
