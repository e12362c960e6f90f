// python/bindings/spec.cpp: specs from Python's keyword arguments, and the checks of integers and
// paths that every binding shares. Part of streamrnn, MIT licence.
#include "spec.hpp"

#include "streamrnn/errors.hpp"

#include <climits>
#include <cmath>
#include <limits>
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
        void operator()(const char* key, float& value) const
        {
            double wide = value;
            (*this)(key, wide);
            if (!(std::abs(wide) <= std::numeric_limits<float>::max()))
                throw ArgumentError(std::string(key) + ": " + nb::cast<std::string>(nb::repr(fields[key])) +
                                    " is out of a float's range");
            value = static_cast<float>(wide);
        }
        // A sequence of functions, each a name or (name, alpha[, beta]); those not given take
        // ONNX's defaults.
        void operator()(const char* key, std::vector<ActivationFunction>& value) const
        {
            if (!fields.contains(key))
                return;
            nb::handle given = fields[key];
            if (!PyList_Check(given.ptr()) && !PyTuple_Check(given.ptr()))
                throw nb::type_error((std::string(key) + ": expected a list of functions, got " + python_type(given)).c_str());
            value.clear();
            for (nb::handle entry : given) {
                const std::string where = std::string(key) + "[" + std::to_string(value.size()) + "]";
                const bool with_parameters = PyList_Check(entry.ptr()) || PyTuple_Check(entry.ptr());
                const nb::handle name = with_parameters && nb::len(entry) > 0 ? entry[0] : entry;
                if (!PyUnicode_Check(name.ptr()))
                    throw nb::type_error((where + ": expected a function's name or (name, alpha, beta), got " +
                                          python_type(entry)).c_str());
                Activation kind{};
                if (!parse_activation_name(nb::cast<std::string>(name), kind))
                    throw ArgumentError(where + ": unknown function " + nb::cast<std::string>(nb::repr(name)) +
                                        "; expected one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
                                        "ScaledTanh, HardSigmoid, Elu, Softsign, Softplus");
                ActivationFunction function = default_parameters(kind);
                const std::size_t given_parameters = with_parameters ? nb::len(entry) - 1 : 0;
                if (given_parameters > 2)
                    throw ArgumentError(where + ": expected (name, alpha, beta) at most, got " +
                                        nb::cast<std::string>(nb::repr(entry)));
                // Those the function does not take may be given as 0 (Model.activations lists
                // them so), and are checked by the spec.
                float* parameters[] = {&function.alpha, &function.beta};
                for (std::size_t i = 0; i < given_parameters; ++i) {
                    nb::handle number = entry[i + 1];
                    if (PyBool_Check(number.ptr()) || !(PyFloat_Check(number.ptr()) || PyLong_Check(number.ptr())))
                        throw nb::type_error((where + ": " + (i == 0 ? "alpha" : "beta") + " must be a number, got " +
                                              python_type(number)).c_str());
                    *parameters[i] = static_cast<float>(PyFloat_AsDouble(number.ptr()));
                    if (PyErr_Occurred())
                        throw nb::python_error();
                }
                value.push_back(function);
            }
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
    spec.canonicalize();
    return spec;
}

nb::dict spec_dict(const ModelSpec& spec)
{
    nb::dict out;
    for_each_field(spec, [&](const char* key, const auto& value) {
        using Field = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<Field, CellKind>) {
            out[key] = kind_name(value);
        } else if constexpr (std::is_same_v<Field, std::vector<ActivationFunction>>) {
            nb::list functions;
            for (const ActivationFunction& f : value) {  // as the Reader takes them back
                const int count = activation_parameter_count(f.kind);
                functions.append(count == 0   ? nb::make_tuple(activation_name(f.kind))
                                 : count == 1 ? nb::make_tuple(activation_name(f.kind), f.alpha)
                                              : nb::make_tuple(activation_name(f.kind), f.alpha, f.beta));
            }
            out[key] = functions;
        } else {
            out[key] = value;
        }
    });
    return out;
}

}  // namespace streamrnn::python
