// python/bindings/spec.cpp: specs from Python's keyword arguments, and the checks of integers and
// paths that every binding shares. Part of streamrnn, MIT licence.
#include "spec.hpp"

#include "streamrnn/errors.hpp"

#include <climits>
#include <type_traits>

namespace streamrnn::python {

bool integer_value(nb::handle value, long long& out, bool& fits)
{
    // Anything with __index__ (NumPy's integers too), but bool: a flag given for a size is a mistake.
    if (!PyIndex_Check(value.ptr()) || PyBool_Check(value.ptr()))
        return false;
    const nb::object index = nb::steal(PyNumber_Index(value.ptr()));
    if (!index.is_valid())
        throw nb::python_error();
    int overflow = 0;
    out = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    fits = overflow == 0;
    return true;
}

long long to_integer(nb::handle value, const std::string& name)
{
    long long out = 0;
    bool fits = false;
    if (!integer_value(value, out, fits))
        throw nb::type_error((name + ": expected an integer, got " + python_type(value)).c_str());
    if (!fits)
        throw ArgumentError(name + ": " + nb::cast<std::string>(nb::repr(value)) + " is out of range");
    return out;
}

std::string to_path(const std::string& path)
{
    if (path.find('\0') != std::string::npos)
        throw ArgumentError("path: embedded null byte");
    return path;
}

ModelSpec spec_from(nb::dict fields)
{
    struct Reader {
        nb::dict& fields;
        void operator()(const char* key, CellKind& kind) const
        {
            if (fields.contains(key))
                kind = kind_from_name(text_of(fields[key]));
        }
        void operator()(const char* key, int& value) const
        {
            if (!fields.contains(key))
                return;
            const long long wide = to_integer(fields[key], key);
            if (wide < INT_MIN || wide > INT_MAX)
                throw ArgumentError(std::string(key) + ": " + std::to_string(wide) + " is out of range");
            value = static_cast<int>(wide);
        }
        void operator()(const char* key, bool& value) const
        {
            if (!fields.contains(key))
                return;
            nb::handle given = fields[key];
            if (!PyBool_Check(given.ptr()))
                throw nb::type_error((std::string(key) + ": expected a bool, got " + python_type(given)).c_str());
            value = given.ptr() == Py_True;
        }
        void operator()(const char* key, double& value) const
        {
            if (!fields.contains(key))
                return;
            nb::handle given = fields[key];
            if (PyBool_Check(given.ptr()) || !(PyFloat_Check(given.ptr()) || PyLong_Check(given.ptr())))
                throw nb::type_error((std::string(key) + ": expected a number, got " + python_type(given)).c_str());
            value = PyFloat_AsDouble(given.ptr());
            if (PyErr_Occurred())
                throw nb::python_error();
        }
    };
    ModelSpec spec;
    for (auto item : fields) {
        const nb::handle key = item.first;  // a copy: clang 14 lambdas cannot capture a structured binding
        bool known = false;
        for_each_field(spec, [&](const char* name, const auto&) { known = known || nb::str(name).equal(key); });
        if (!known)
            throw ArgumentError("spec: unknown field " + nb::cast<std::string>(nb::repr(key)));
    }
    for_each_field(spec, Reader{fields});
    spec.validate();
    return spec;
}

nb::dict spec_dict(const ModelSpec& spec)
{
    nb::dict out;
    for_each_field(spec, [&](const char* key, const auto& value) {
        if constexpr (std::is_same_v<std::decay_t<decltype(value)>, CellKind>)
            out[key] = kind_name(value);
        else
            out[key] = value;
    });
    return out;
}

}  // namespace streamrnn::python
