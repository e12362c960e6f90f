// python/bindings/device_arrays.cpp: GPU arrays in (in place) and out (DeviceArray) of the CUDA
// module's calls. Part of streamrnn, MIT licence.
#include "device_arrays.hpp"

#include "streamrnn/errors.hpp"

namespace streamrnn::python {

namespace {

/// `obj` as a GPU array of `device`: through __cuda_array_interface__ (CuPy, PyTorch, Numba), else
/// DLPack (JAX and others). Waits for the work that the producer says is still writing it.
DeviceView device_view(nb::handle obj, const std::string& name, int device)
{
    DeviceView view;
    if (obj.is_none() || nb::isinstance<nb::tuple>(obj) || nb::isinstance<nb::list>(obj))
        return view;
    if (nb::hasattr(obj, "__cuda_array_interface__")) {
        const nb::dict interface = nb::cast<nb::dict>(obj.attr("__cuda_array_interface__"));
        const std::string typestr = nb::cast<std::string>(nb::str(interface["typestr"]));
        if (typestr != "<f4" && typestr != "=f4" && typestr != "|f4")
            throw nb::type_error((name + ": expected a float32 GPU array, got typestr '" + typestr +
                                  "' (convert it on the GPU first, e.g. x.float())")
                                     .c_str());
        for (nb::handle extent : nb::cast<nb::tuple>(interface["shape"]))
            view.shape.push_back(nb::cast<long long>(extent));
        if (interface.contains("strides") && !interface["strides"].is_none()) {
            const nb::tuple strides = nb::cast<nb::tuple>(interface["strides"]);
            long long expected = static_cast<long long>(sizeof(float));
            for (std::size_t i = view.shape.size(); i-- > 0;) {
                if (view.shape[i] != 1 && nb::cast<long long>(strides[i]) != expected)
                    throw ArgumentError(name + ": expected a C-contiguous GPU array (call .contiguous() first)");
                expected *= view.shape[i];
            }
        }
        view.data = reinterpret_cast<float*>(nb::cast<std::uintptr_t>(nb::cast<nb::tuple>(interface["data"])[0]));
        // Version 3 names the stream that writes the array (None: nothing pending); before it
        // (PyTorch still gives version 2) the producer's default stream may still be writing.
        if (!interface.contains("stream"))
            cuda::synchronize_stream(1);
        else if (!interface["stream"].is_none())
            cuda::synchronize_stream(nb::cast<std::uintptr_t>(interface["stream"]));
    } else if (nb::hasattr(obj, "__dlpack_device__") &&
               nb::cast<int>(nb::cast<nb::tuple>(obj.attr("__dlpack_device__")())[0]) == nb::device::cuda::value) {
        nb::ndarray<float, nb::device::cuda, nb::c_contig> array;
        if (!nb::try_cast(obj, array, false))
            throw nb::type_error((name + ": expected a float32 C-contiguous GPU array, got " + python_type(obj)).c_str());
        view.data = array.data();
        for (std::size_t i = 0; i < array.ndim(); ++i)
            view.shape.push_back(static_cast<long long>(array.shape(i)));
        view.keep = nb::borrow(obj);
        // DLPack was asked for no stream here, so the producer may still be writing it.
        cuda::synchronize_device(device);
    } else {
        return view;
    }
    view.found = true;
    const int owner = view.data && element_count(view.shape) > 0 ? cuda::pointer_device(view.data) : device;
    if (owner != device)
        throw ArgumentError(name + ": the array is on cuda:" + std::to_string(owner) + ", the model on cuda:" +
                            std::to_string(device));
    return view;
}

nb::tuple shape_tuple(const Shape& shape)
{
    nb::list out;
    for (long long extent : shape)
        out.append(extent);
    return nb::tuple(out);
}

NumpyArray to_numpy(const DeviceArray& array)
{
    float* host;
    NumpyArray out = new_array(array.shape, &host);
    cuda::copy_memory(host, array.data(), static_cast<std::size_t>(element_count(array.shape)) * sizeof(float));
    return out;
}

}  // namespace

DeviceView input_view(nb::handle obj, const char* name, int device)
{
    if (nb::isinstance<DeviceArray>(obj)) {
        const DeviceArray& array = nb::cast<const DeviceArray&>(obj);
        DeviceView view;
        view.found = true;
        view.data = array.data();
        view.shape = array.shape;
        if (array.buffer->device() != device)
            throw ArgumentError(std::string(name) + ": the array is on cuda:" + std::to_string(array.buffer->device()) +
                                ", the model on cuda:" + std::to_string(device));
        return view;
    }
    return device_view(obj, name, device);
}

const float* DeviceSource::view(nb::handle value, const std::string& name, Shape& shape, nb::object& keep) const
{
    DeviceView device_array = input_view(value, name.c_str(), device);
    if (!device_array.found)
        return ArraySource::view(value, name, shape, keep);
    shape = device_array.shape;
    keep = device_array.keep.is_valid() ? device_array.keep : nb::borrow(value);
    return device_array.data;
}

void DeviceSource::copy(float* to, const float* from, std::size_t count) const
{
    cuda::copy_memory(to, from, count * sizeof(float));
}

void bind_device_array(nb::module_& m)
{
    nb::class_<DeviceArray>(m, "DeviceArray",
                            "A float32 array in GPU memory, returned by calls on GPU inputs. It exposes\n"
                            "__cuda_array_interface__ and DLPack: torch.as_tensor(a, device='cuda'),\n"
                            "torch.from_dlpack(a), cupy.asarray(a) use it without a copy; numpy() copies it out.")
        .def_prop_ro("shape", [](const DeviceArray& a) { return shape_tuple(a.shape); })
        .def_prop_ro("dtype", [](const DeviceArray&) { return nb::module_::import_("numpy").attr("dtype")("float32"); })
        .def_prop_ro("device", [](const DeviceArray& a) { return "cuda:" + std::to_string(a.buffer->device()); })
        .def_prop_ro("ndim", [](const DeviceArray& a) { return a.shape.size(); })
        .def("__len__",
             [](const DeviceArray& a) {
                 if (a.shape.empty())
                     throw nb::type_error("len() of a 0-d array");
                 return a.shape[0];
             })
        .def("numpy", &to_numpy, "A NumPy copy in host memory.")
        .def(
            "__array__",
            [](const DeviceArray& a, nb::handle dtype, nb::handle) {
                nb::object out = nb::cast(to_numpy(a));
                return dtype.is_none() ? out : out.attr("astype")(dtype);
            },
            "dtype"_a = nb::none(), "copy"_a = nb::none())
        .def_prop_ro("__cuda_array_interface__",
                     [](const DeviceArray& a) {
                         nb::dict interface;
                         interface["shape"] = shape_tuple(a.shape);
                         interface["typestr"] = "<f4";
                         interface["data"] = nb::make_tuple(reinterpret_cast<std::uintptr_t>(a.data()), false);
                         interface["strides"] = nb::none();
                         interface["version"] = 3;
                         return interface;  // no "stream": the call that made it has finished
                     })
        .def(
            "__dlpack__",
            [](nb::handle self, nb::kwargs kwargs) {
                const DeviceArray& a = nb::cast<const DeviceArray&>(self);
                std::vector<std::size_t> shape(a.shape.begin(), a.shape.end());
                nb::ndarray<float, nb::device::cuda> view(a.data(), shape.size(), shape.data(), self, nullptr,
                                                          nb::dtype<float>(), nb::device::cuda::value,
                                                          a.buffer->device());
                return nb::cast(view).attr("__dlpack__")(**kwargs);
            },
            "kwargs"_a)
        .def("__dlpack_device__",
             [](const DeviceArray& a) { return nb::make_tuple(int(nb::device::cuda::value), a.buffer->device()); })
        .def("__repr__", [](const DeviceArray& a) {
            return "DeviceArray(shape=" + shape_str(a.shape) + ", dtype=float32, device='cuda:" +
                   std::to_string(a.buffer->device()) + "')";
        });

}

}  // namespace streamrnn::python
