// python/bindings/bind_cuda.cpp: streamrnn._cuda, the CUDA backend's extension module: DeviceModel,
// DeviceStream and DeviceArray. Arrays come as NumPy (copied to and from the GPU) or as GPU arrays
// (__cuda_array_interface__, DLPack), used in place. Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "device_arrays.hpp"
#include "spec.hpp"
#include "state.hpp"

#include "streamrnn/cuda.hpp"
#include "streamrnn/errors.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>

#include <memory>
#include <optional>

namespace streamrnn::python {

namespace {

using cuda::DeviceModel;
using cuda::DeviceStream;
using cuda::Memory;

/// The state arrays as the call returns them: h, or (h, c) for an LSTM.
nb::object state_object(DeviceArray&& h, std::optional<DeviceArray>& c)
{
    if (!c)
        return nb::cast(std::move(h));
    return nb::make_tuple(nb::cast(std::move(h)), nb::cast(std::move(*c)));
}

nb::tuple forward(DeviceModel& model, nb::handle x_in, nb::handle state_in, nb::handle lengths_in, bool train)
{
    const ModelSpec& spec = model.spec();
    const int device = model.device();
    const DeviceView x_gpu = input_view(x_in, "x", device);
    FloatArray x_host;
    if (!x_gpu.found)
        x_host = to_floats(x_in, "x");
    const Shape x_shape = x_gpu.found ? x_gpu.shape : shape_of(x_host);
    const SequenceShape call = sequence_shape(spec, x_shape, lengths_in);
    const long long T = call.T, B = call.B;
    const StateShape shape = state_shape(spec, B, call.batched);
    const std::int64_t* lengths_data = call.lengths_data();

    if (!x_gpu.found)
        return host_sequence_call(spec, call, shape, state_in, [&](float* h, float* c, float* y) {
            if (train)
                model.forward_train(x_host.data(), T, B, lengths_data, y, h, c, Memory::host);
            else
                model.forward(x_host.data(), T, B, lengths_data, y, h, c, Memory::host);
        });
    DeviceArray y(call.y, device), h(shape.h, device);
    std::optional<DeviceArray> c;
    if (spec.has_cell_state())
        c.emplace(shape.c, device);
    read_state(state_in, spec, shape, false, h.data(), c ? c->data() : nullptr, "state", DeviceSource(device));
    {
        nb::gil_scoped_release release;
        float* c_data = c ? c->data() : nullptr;
        if (train)
            model.forward_train(x_gpu.data, T, B, lengths_data, y.data(), h.data(), c_data, Memory::device);
        else
            model.forward(x_gpu.data, T, B, lengths_data, y.data(), h.data(), c_data, Memory::device);
    }
    nb::object state = state_object(std::move(h), c);
    return nb::make_tuple(nb::cast(std::move(y)), state);
}

/// (dx, dstate0, gradients) for dy and dstate after a training forward; dx and dstate0 in dy's
/// memory, the weight gradients of this call as a NumPy array laid out as the parameters.
nb::tuple backward(DeviceModel& model, nb::handle dy_in, nb::handle dstate_in)
{
    const ModelSpec& spec = model.spec();
    const int device = model.device();
    const long long T = model.recorded_steps(), B = model.recorded_batch();
    const DeviceView dy_gpu = input_view(dy_in, "dy", device);
    FloatArray dy_host;
    if (!dy_gpu.found)
        dy_host = to_floats(dy_in, "dy");
    const bool batched = check_output_gradient(spec, dy_gpu.found ? dy_gpu.shape : shape_of(dy_host), "dy", T, B);
    const StateShape shape = state_shape(spec, B, batched);
    float* gradients;
    NumpyArray gradients_out = new_array({static_cast<long long>(spec.parameter_count())}, &gradients);

    if (!dy_gpu.found) {
        const nb::tuple out = host_backward_call(
            spec, shape, input_shape(spec, T, B, batched), dstate_in,
            [&](const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0) {
                model.backward(dy_host.data(), dh_n, dc_n, dx, dh0, dc0, Memory::host, gradients, T, B);
            });
        return nb::make_tuple(out[0], out[1], gradients_out);
    }
    DeviceArray dh_n(shape.h, device), dh0(shape.h, device), dx(input_shape(spec, T, B, batched), device);
    std::optional<DeviceArray> dc_n, dc0;
    if (spec.has_cell_state()) {
        dc_n.emplace(shape.c, device);
        dc0.emplace(shape.c, device);
    }
    read_state(dstate_in, spec, shape, false, dh_n.data(), dc_n ? dc_n->data() : nullptr, "dstate",
               DeviceSource(device));
    {
        nb::gil_scoped_release release;
        model.backward(dy_gpu.data, dh_n.data(), dc_n ? dc_n->data() : nullptr, dx.data(), dh0.data(),
                       dc0 ? dc0->data() : nullptr, Memory::device, gradients, T, B);
    }
    return nb::make_tuple(nb::cast(std::move(dx)), state_object(std::move(dh0), dc0), gradients_out);
}

nb::object step(DeviceStream& stream, nb::handle x_in, nb::handle out_in)
{
    const ModelSpec& spec = stream.model().spec();
    const int device = stream.model().device();
    const long long B = stream.batch();
    const DeviceView x_gpu = input_view(x_in, "x", device);
    if (x_gpu.found) {
        const Shape y_shape = step_output_shape(spec, B, x_gpu.shape);
        if (out_in.is_none()) {
            DeviceArray y(y_shape, device);
            {
                nb::gil_scoped_release release;
                stream.step(x_gpu.data, y.data(), Memory::device);
            }
            return nb::cast(std::move(y));
        }
        const DeviceView out = input_view(out_in, "out", device);
        if (!out.found)
            throw nb::type_error("out: x is a GPU array, so out must be one too (or None)");
        if (out.shape != y_shape)
            throw_shape("out", shape_str(y_shape), out.shape);
        {
            nb::gil_scoped_release release;
            stream.step(x_gpu.data, out.data, Memory::device);
        }
        return nb::borrow(out_in);
    }

    const FloatArray x = to_floats(x_in, "x");
    const Shape y_shape = step_output_shape(spec, B, shape_of(x));
    NumpyArray y_new;
    float* y;
    if (out_in.is_none()) {
        y_new = new_array(y_shape, &y);
    } else {
        OutArray out;
        if (!nb::try_cast(out_in, out, false))
            throw nb::type_error(
                ("out: expected a writable C-contiguous float32 NumPy array like x, got " + python_type(out_in)).c_str());
        if (shape_of(out) != y_shape)
            throw_shape("out", shape_str(y_shape), shape_of(out));
        y = out.data();
    }
    {
        nb::gil_scoped_release release;
        stream.step(x.data(), y, Memory::host);
    }
    return out_in.is_none() ? nb::cast(y_new) : nb::borrow(out_in);
}

nb::object process(DeviceStream& stream, nb::handle x_in)
{
    const ModelSpec& spec = stream.model().spec();
    const int device = stream.model().device();
    const DeviceView x_gpu = input_view(x_in, "x_chunk", device);
    FloatArray x_host;
    if (!x_gpu.found)
        x_host = to_floats(x_in, "x_chunk");
    const auto [T, y_shape] = chunk_shape(spec, stream.batch(), x_gpu.found ? x_gpu.shape : shape_of(x_host));
    if (x_gpu.found) {
        DeviceArray y(y_shape, device);
        {
            nb::gil_scoped_release release;
            stream.process(x_gpu.data, y.data(), T, Memory::device);
        }
        return nb::cast(std::move(y));
    }
    float* y;
    NumpyArray out = new_array(y_shape, &y);
    {
        nb::gil_scoped_release release;
        stream.process(x_host.data(), y, T, Memory::host);
    }
    return nb::cast(out);
}

StateShape stream_state_shape(const DeviceStream& stream)
{
    return state_shape(stream.model().spec(), stream.batch(), true);
}

nb::object get_state(const DeviceStream& stream)
{
    const StateShape shape = stream_state_shape(stream);
    float *h, *c;
    nb::object state = new_state(stream.model().spec(), shape, &h, &c);
    stream.get_state(h, c);
    return state;
}

void set_state(DeviceStream& stream, nb::handle state)
{
    if (state.is_none())
        return stream.reset();
    const ModelSpec& spec = stream.model().spec();
    const StateShape shape = stream_state_shape(stream);
    // Read and checked in full on the host first, so that a refused state changes nothing.
    std::vector<float> h(static_cast<std::size_t>(element_count(shape.h)));
    std::vector<float> c(static_cast<std::size_t>(element_count(shape.c)));
    read_state(state, spec, shape, true, h.data(), c.data(), "state", DeviceSource(stream.model().device()));
    stream.set_state(h.data(), spec.has_cell_state() ? c.data() : nullptr);
}

}  // namespace

}  // namespace streamrnn::python

NB_MODULE(_cuda, m)
{
    using namespace streamrnn;
    using namespace streamrnn::python;
    m.doc() = "streamrnn's CUDA backend. Use streamrnn's Model.to('cuda'), not this module.";
    import_numpy();
    m.def("device_count", &cuda::device_count, "GPUs the CUDA runtime sees (0 without a driver).");

    bind_device_array(m);

    nb::class_<DeviceModel>(m, "DeviceModel", "A model's weights on one GPU, and its whole-sequence forward.")
        .def(nb::new_([](nb::dict spec, int device) { return std::make_shared<DeviceModel>(spec_from(spec), device); }),
             "spec"_a, "device"_a, "spec: the architecture, as the engine's Model.spec gives it.")
        .def_prop_ro("device", &DeviceModel::device)
        .def_prop_ro("loaded_version", &DeviceModel::loaded_version)
        .def(
            "load",
            [](DeviceModel& model, FloatArray parameters, std::uint64_t version) {
                if (parameters.size() != model.spec().parameter_count())
                    throw ArgumentError("parameters: expected " + std::to_string(model.spec().parameter_count()) +
                                        " floats, got " + std::to_string(parameters.size()));
                model.load(parameters.data(), version);
            },
            "parameters"_a, "version"_a, "Copies the weights in (laid out as the engine's Model.parameters).")
        .def_prop_rw("allow_tf32", &DeviceModel::allow_tf32, &DeviceModel::set_allow_tf32)
        .def("forward", &forward, "x"_a.none(), "state"_a.none(), "lengths"_a.none(), "train"_a = false)
        .def("backward", &backward, "dy"_a.none(), "dstate"_a.none(),
             "Back through the last forward with train=True: (dx, dstate0, this call's weight gradients).")
        .def(
            "stream",
            [](std::shared_ptr<DeviceModel> model, nb::handle batch) {
                return std::make_shared<DeviceStream>(std::move(model), static_cast<Index>(to_integer(batch, "batch")));
            },
            "batch"_a);

    nb::class_<DeviceStream>(m, "DeviceStream",
                             "Live streams of a model on a GPU: the state stays there between calls; a step is one\n"
                             "CUDA graph launch for the whole stack.")
        .def("step", &step, "x"_a.none(), "out"_a.none() = nb::none(),
             "One time step. x: (B, I), or (I,) when B == 1, a NumPy array (the result is one too) or a GPU\n"
             "array (the result is a DeviceArray, or out if given).")
        .def("process", &process, "x_chunk"_a.none(),
             "T time steps. x_chunk: (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1.")
        .def_prop_rw("state", &get_state, &set_state, nb::arg("state").none(),
                     "The state, as NumPy copies: h (L, B, H_out), or (h, c) for an LSTM. Setting takes host or\n"
                     "GPU arrays, checks every shape first, and copies in (None sets zeros).")
        .def(
            "reset",
            [](DeviceStream& stream, nb::handle i) {
                if (i.is_none())
                    return stream.reset();
                stream.reset(stream_index(i, stream.batch()));
            },
            "i"_a = nb::none(), "Zeros the state of every stream, or of stream i only.")
        .def_prop_ro("batch", &DeviceStream::batch, "Number of independent streams.");
}
