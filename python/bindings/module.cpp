// python/bindings/module.cpp: the streamrnn._core extension module.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"

#include "streamrnn/errors.hpp"

namespace streamrnn::python {
void bind_model(nb::module_& m);
void bind_stream(nb::module_& m);
void bind_pool(nb::module_& m);
void bind_train(nb::module_& m);
void bind_blocks(nb::module_& m);
void bind_sequential(nb::module_& m);
}  // namespace streamrnn::python

// The module's name is its file's: one per build of the engine (python/CMakeLists.txt).
NB_MODULE(STREAMRNN_MODULE, m)
{
    using namespace streamrnn::python;
    m.doc() = "streamrnn's C++ engine. Use the streamrnn package, not this module.";
    // ArgumentError and FormatError derive from std::invalid_argument: nanobind raises ValueError.
    // A FileError becomes OSError(errno, message), which Python turns into FileNotFoundError etc.
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const streamrnn::FileError& e) {
            PyObject* error = PyObject_CallFunction(PyExc_OSError, "is", e.error_number, e.what());
            if (error) {
                PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error)), error);
                Py_DECREF(error);
            }
        }
    });
    import_numpy();
    bind_model(m);
    bind_stream(m);
    bind_pool(m);
    bind_train(m);
    bind_blocks(m);
    bind_sequential(m);
}
