// python/bindings/arrays.cpp: conversion of Python array-likes to checked float buffers, and back.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"

#include "streamrnn/errors.hpp"

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL streamrnn_numpy_api
#include <numpy/arrayobject.h>

#include <algorithm>
#include <typeinfo>
#include <cstring>
#include <memory>

namespace streamrnn::python {

namespace {

nb::handle numpy()
{
    // Kept for the life of the process: a static nb::object would be released after the
    // interpreter has finalised.
    static nb::handle np = nb::module_::import_("numpy").release();
    return np;
}

/// A torch tensor becomes a NumPy-readable object: detached from autograd and on the CPU.
nb::object detached(nb::handle obj)
{
    if (nb::hasattr(obj, "detach") && nb::hasattr(obj, "cpu"))
        return obj.attr("detach")().attr("cpu")();
    return nb::borrow(obj);
}

}  // namespace

std::string python_type(nb::handle obj) { return nb::cast<std::string>(nb::type_name(obj.type())); }

std::string text_of(nb::handle obj)
{
    const nb::object text = nb::steal(PyObject_Str(obj.ptr()));
    if (!text.is_valid())
        throw nb::python_error();
    return nb::cast<std::string>(text);
}

void import_numpy()
{
    if (PyArray_ImportNumPyAPI() < 0)
        throw nb::python_error();
}

bool direct_array(nb::handle obj, bool writable, DirectArray& out) noexcept
{
    if (!PyArray_CheckExact(obj.ptr()))
        return false;
    auto* array = reinterpret_cast<PyArrayObject*>(obj.ptr());
    if (PyArray_TYPE(array) != NPY_FLOAT32 || !PyArray_ISCARRAY_RO(array) || !PyArray_ISNOTSWAPPED(array) ||
        (writable && !PyArray_ISWRITEABLE(array)))
        return false;
    out.data = static_cast<float*>(PyArray_DATA(array));
    out.ndim = PyArray_NDIM(array);
    out.shape = PyArray_DIMS(array);
    return true;
}

bool direct_words(nb::handle obj, const std::uint64_t*& data, std::size_t& n) noexcept
{
    if (!PyArray_CheckExact(obj.ptr()))
        return false;
    auto* array = reinterpret_cast<PyArrayObject*>(obj.ptr());
    const int type = PyArray_TYPE(array);
    if ((type != NPY_INT64 && type != NPY_UINT64) || PyArray_NDIM(array) != 1 || !PyArray_ISCARRAY_RO(array) ||
        !PyArray_ISNOTSWAPPED(array))
        return false;
    data = static_cast<const std::uint64_t*>(PyArray_DATA(array));
    n = static_cast<std::size_t>(PyArray_DIMS(array)[0]);
    return true;
}

OutArray checked_out(nb::handle out_in, const Shape& shape, const FloatArray& x)
{
    OutArray out;
    if (!nb::try_cast(out_in, out, false))
        throw nb::type_error(("out: expected a writable C-contiguous float32 array, got " + python_type(out_in)).c_str());
    if (shape_of(out) != shape)
        throw_shape("out", shape_str(shape), shape_of(out));
    if (overlaps(x.data(), x.size(), out.data(), out.size()))
        throw ArgumentError("out: shares memory with x; give step a separate output array");
    return out;
}

long long element_count(const Shape& shape)
{
    long long n = 1;
    for (long long d : shape)
        n *= d;
    return n;
}

void throw_shape(const std::string& name, const std::string& expected, const Shape& got)
{
    throw ArgumentError(name + ": expected " + expected + ", got shape " + shape_str(got));
}

FloatArray to_floats(nb::handle obj, const char* name)
{
    FloatArray array;
    try {
        if (nb::try_cast(obj, array, false))
            return array;
    } catch (const std::bad_cast&) {  // a DLPack type nanobind has no twin for (bfloat16): named below
    }
    const std::string what = name;
    if (obj.is_none())
        throw nb::type_error((what + ": expected an array of numbers, got None").c_str());
    nb::object raw;
    try {
        raw = numpy().attr("asarray")(detached(obj));
    } catch (nb::python_error&) {
        // A type NumPy has no twin for (a torch bfloat16 tensor, say): name it, and the way out.
        const std::string dtype = nb::hasattr(obj, "dtype") ? " of dtype " + text_of(obj.attr("dtype")) : "";
        throw nb::type_error((what + ": expected an array of numbers NumPy can read, got " + python_type(obj) + dtype +
                              (dtype.empty() ? "" : " (convert it to float32 first, e.g. with .float())"))
                                 .c_str());
    }
    // Real numbers only: complex values would lose their imaginary part, strings and objects
    // have no number to give.
    const std::string kind = nb::cast<std::string>(raw.attr("dtype").attr("kind"));
    const std::string dtype = nb::cast<std::string>(raw.attr("dtype").attr("name"));
    if (kind == "c")
        throw nb::type_error((what + ": expected real numbers, got " + dtype + " (take .real or abs() first)").c_str());
    if (kind != "f" && kind != "i" && kind != "u" && kind != "b")
        throw nb::type_error((what + ": expected an array of numbers, got " + python_type(obj) + " of dtype " + dtype).c_str());
    if (!nb::try_cast(numpy().attr("ascontiguousarray")(raw, nb::arg("dtype") = "float32"), array, false))
        throw nb::type_error((what + ": expected an array of numbers, got " + python_type(obj)).c_str());
    return array;
}

IntArray to_integers(nb::handle obj, const char* name)
{
    nb::object array;
    try {
        array = numpy().attr("asarray")(detached(obj));
    } catch (nb::python_error&) {
        throw nb::type_error((std::string(name) + ": expected an array of integers, got " + python_type(obj)).c_str());
    }
    const std::string kind = nb::cast<std::string>(array.attr("dtype").attr("kind"));
    if (kind != "i" && kind != "u")
        throw nb::type_error((std::string(name) + ": expected an integer array, got dtype " +
                              nb::cast<std::string>(array.attr("dtype").attr("name")))
                                 .c_str());
    // Unsigned values past int64 cannot be valid; clip them so that range checks report them.
    if (kind == "u")
        array = numpy().attr("minimum")(array.attr("astype")("uint64"), static_cast<std::uint64_t>(INT64_MAX));
    auto values = nb::cast<nb::ndarray<const std::int64_t, nb::c_contig, nb::device::cpu>>(
        numpy().attr("ascontiguousarray")(array, nb::arg("dtype") = "int64"));
    IntArray out;
    out.shape = shape_of(values);
    out.values.assign(values.data(), values.data() + values.size());
    return out;
}

std::vector<std::int64_t> to_lengths(nb::handle obj, long long B)
{
    IntArray lengths = to_integers(obj, "lengths");
    if (lengths.shape.size() != 1 || lengths.shape[0] != B)
        throw_shape("lengths", "(B,) = " + shape_str({B}) + ", one length per sequence", lengths.shape);
    return std::move(lengths.values);
}

NumpyArray new_array(const Shape& shape, float** data)
{
    const auto count = static_cast<std::size_t>(element_count(shape));
    std::unique_ptr<float[]> buffer(new float[std::max<std::size_t>(count, 1)]());
    nb::capsule owner(buffer.get(), [](void* p) noexcept { delete[] static_cast<float*>(p); });
    *data = buffer.release();
    std::vector<std::size_t> dims(shape.begin(), shape.end());
    return NumpyArray(*data, dims.size(), dims.data(), owner);
}

NumpyArray copy_array(const Shape& shape, const float* data)
{
    float* out;
    NumpyArray array = new_array(shape, &out);
    std::memcpy(out, data, sizeof(float) * static_cast<std::size_t>(element_count(shape)));
    return array;
}

}  // namespace streamrnn::python
