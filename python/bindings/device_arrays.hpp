// python/bindings/device_arrays.hpp: arrays in GPU memory for the CUDA module: GPU arrays of other
// libraries read in place (__cuda_array_interface__, DLPack), and DeviceArray, what calls on them
// return. Part of streamrnn, MIT licence.
#pragma once

#include "arrays.hpp"
#include "state.hpp"

#include "streamrnn/cuda.hpp"

#include <memory>

namespace streamrnn::python {

/// A float32, C-contiguous array in GPU memory, or none (found false: a host array-like).
struct DeviceView {
    bool found = false;
    float* data = nullptr;
    Shape shape;
    nb::object keep;  ///< what owns the memory, for DLPack imports
};

/// An array in GPU memory that a call returns: __cuda_array_interface__ and DLPack for CuPy and
/// PyTorch (torch.as_tensor(a, device="cuda"), torch.from_dlpack(a)), and numpy() for a host copy.
struct DeviceArray {
    std::shared_ptr<cuda::DeviceBuffer> buffer;
    Shape shape;

    DeviceArray(const Shape& shape_, int device)
        : buffer(std::make_shared<cuda::DeviceBuffer>(static_cast<std::size_t>(element_count(shape_)), device)),
          shape(shape_) {}
    float* data() const { return buffer->data(); }
};

/// x as a GPU array on `device`: a DeviceArray of ours, or any other GPU array (waited for as its
/// producer says); found false for host arrays. ArgumentError for an array on another GPU.
DeviceView input_view(nb::handle obj, const char* name, int device);

/// The state's arrays from host or GPU arrays.
struct DeviceSource : ArraySource {
    explicit DeviceSource(int device_) : device(device_) {}
    const float* view(nb::handle value, const std::string& name, Shape& shape, nb::object& keep) const override;
    void copy(float* to, const float* from, std::size_t count) const override;
    int device;
};

/// The class DeviceArray in module m.
void bind_device_array(nb::module_& m);

}  // namespace streamrnn::python
