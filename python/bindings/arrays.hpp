// python/bindings/arrays.hpp: the one place that turns Python objects into checked float buffers
// and buffers into NumPy arrays. Part of streamrnn, MIT licence.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <vector>

namespace streamrnn::python {

namespace nb = nanobind;
using namespace nb::literals;

using Shape = std::vector<long long>;
/// A C-contiguous float32 array on the CPU, as the engine reads it (read-only arrays welcome)...
using FloatArray = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
/// ...and as it writes into one.
using OutArray = nb::ndarray<float, nb::c_contig, nb::device::cpu>;
using NumpyArray = nb::ndarray<nb::numpy, float>;

/// Makes the NumPy C API usable; the module calls it once when it is imported.
void import_numpy();

/// A float32 array read straight from a NumPy array object: no conversion, no allocation.
struct DirectArray {
    float* data = nullptr;
    int ndim = 0;
    const std::intptr_t* shape = nullptr;

    bool has_shape(std::intptr_t d0) const { return ndim == 1 && shape[0] == d0; }
    bool has_shape(std::intptr_t d0, std::intptr_t d1) const { return ndim == 2 && shape[0] == d0 && shape[1] == d1; }
    std::size_t size() const
    {
        std::size_t n = 1;
        for (int i = 0; i < ndim; ++i)
            n *= static_cast<std::size_t>(shape[i]);
        return n;
    }
};

/// Fills `out` when obj is exactly a NumPy ndarray of native float32, C-contiguous and aligned
/// (and writable when asked): the zero-allocation path of Stream.step. False otherwise; the
/// caller then takes the general path, which converts or reports the error.
bool direct_array(nb::handle obj, bool writable, DirectArray& out) noexcept;

/// Fills `data` and `n` when obj is exactly a 1-D NumPy array of native int64 or uint64,
/// C-contiguous and aligned, read as uint64 words in place (a pool's ids). False otherwise.
bool direct_words(nb::handle obj, const std::uint64_t*& data, std::size_t& n) noexcept;

/// Any array-like as float32, C-contiguous: used as it is when it already is, else converted
/// with one copy (numpy.ascontiguousarray). Torch tensors are detached first. TypeError naming
/// `name` when it holds no numbers.
FloatArray to_floats(nb::handle obj, const char* name);

/// An integer array-like as int64 values and its shape. TypeError for a non-integer array.
struct IntArray {
    std::vector<std::int64_t> values;
    Shape shape;
};
IntArray to_integers(nb::handle obj, const char* name);

/// Integer lengths of shape (B,), as int64. TypeError for a non-integer array, ValueError for a
/// wrong shape.
std::vector<std::int64_t> to_lengths(nb::handle obj, long long B);

template <typename Array>
Shape shape_of(const Array& array)
{
    Shape shape(array.ndim());
    for (std::size_t i = 0; i < array.ndim(); ++i)
        shape[i] = static_cast<long long>(array.shape(i));
    return shape;
}

/// Whether two arrays of floats share memory.
inline bool overlaps(const float* a, std::size_t a_size, const float* b, std::size_t b_size)
{
    return a < b + b_size && b < a + a_size;
}

/// A step's out= argument checked: a writable C-contiguous float32 array of `shape` that shares no
/// memory with x; TypeError or ValueError naming `out` otherwise.
OutArray checked_out(nb::handle out, const Shape& shape, const FloatArray& x);

/// ValueError: "<name>: expected <expected>, got shape <got>".
[[noreturn]] void throw_shape(const std::string& name, const std::string& expected, const Shape& got);

/// A new zero-filled NumPy float32 array; `data` receives its buffer.
NumpyArray new_array(const Shape& shape, float** data);
/// A NumPy copy of `count(shape)` floats at `data`.
NumpyArray copy_array(const Shape& shape, const float* data);

long long element_count(const Shape& shape);

/// The name of obj's type, for messages.
std::string python_type(nb::handle obj);
/// str(obj), for messages and names.
std::string text_of(nb::handle obj);

}  // namespace streamrnn::python
