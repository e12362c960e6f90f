// python/bindings/bind_model.cpp: streamrnn._core.Model: construction, forward, cells, weights, files.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "state.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/model.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/stream.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>

#include <algorithm>
#include <climits>
#include <random>
#include <set>

namespace streamrnn::python {

namespace {

/// Threads of whole-sequence calls (streamrnn.set_num_threads): they split the batch of a forward
/// and of training, or share the products over all steps.
int sequence_threads = 1;

int to_int(const char* name, long long value)
{
    if (value < INT_MIN || value > INT_MAX)
        throw ArgumentError(std::string(name) + ": " + std::to_string(value) + " is out of range");
    return static_cast<int>(value);
}

nb::tuple forward(Model& model, nb::handle x_in, nb::handle state_in, nb::handle lengths_in, bool train)
{
    const ModelSpec& spec = model.spec();
    const FloatArray x = to_floats(x_in, "x");
    const Shape x_shape = shape_of(x);
    const SequenceShape call = sequence_shape(spec, x_shape, lengths_in);
    const long long T = call.T, B = call.B;
    return host_sequence_call(spec, call, state_shape(spec, B, call.batched), state_in,
                              [&](float* h, float* c, float* y) {
                                  if (train)
                                      model.forward_train(x.data(), T, B, call.lengths_data(), y, h, c,
                                                          sequence_threads);
                                  else
                                      model.forward(x.data(), T, B, call.lengths_data(), y, h, c, sequence_threads);
                              });
}

/// dx and dstate0 for dy and dstate (see Model::backward), shaped like the forward's x and state.
nb::tuple backward(Model& model, const float* dy, bool batched, nb::handle dstate_in)
{
    const ModelSpec& spec = model.spec();
    const long long T = model.record().T, B = model.record().B;
    return host_backward_call(spec, state_shape(spec, B, batched), input_shape(spec, T, B, batched), dstate_in,
                              [&](const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0) {
                                  model.backward(dy, dh_n, dc_n, dx, dh0, dc0, sequence_threads);
                              });
}

nb::tuple layer_backward(Model& model, nb::handle dy_in, nb::handle dstate_in)
{
    const ForwardRecord& record = model.record();
    const FloatArray dy = to_floats(dy_in, "dy");
    const bool batched = check_output_gradient(model.spec(), shape_of(dy), "dy", record.T, record.B);
    return backward(model, dy.data(), batched, dstate_in);
}

/// A cell's output is its state, so its gradient arrives as dstate alone. `batched`: whether the
/// training step's x was (B, I) rather than (I,).
nb::tuple cell_backward(Model& model, nb::handle dstate_in, bool batched)
{
    const std::vector<float> dy(static_cast<std::size_t>(model.record().B * model.spec().output_size()), 0.0f);
    return backward(model, dy.data(), batched, dstate_in);
}


nb::object cell_forward(Model& model, nb::handle x_in, nb::handle state_in, bool train)
{
    const ModelSpec& spec = model.spec();
    const FloatArray x = to_floats(x_in, "x");
    const Shape x_shape = shape_of(x);
    if ((x_shape.size() != 1 && x_shape.size() != 2) || x_shape.back() != spec.input_size) {
        const std::string I = std::to_string(spec.input_size);
        throw_shape("x", "(B, " + I + ") or unbatched (" + I + ",)", x_shape);
    }
    const bool batched = x_shape.size() == 2;
    const long long B = batched ? x_shape[0] : 1;
    const StateShape shape = state_shape(spec, B, batched);
    float* h;
    float* c;
    nb::object state = new_state(spec, shape, &h, &c);
    read_state(state_in, spec, shape, false, h, c);
    std::vector<float> y(static_cast<std::size_t>(B * spec.output_size()));
    if (train)
        model.forward_train(x.data(), 1, B, nullptr, y.data(), h, c);
    else
        model.forward(x.data(), 1, B, nullptr, y.data(), h, c);
    return state;
}

/// Copies of a buffer laid out like the model's parameters, keyed by tensor name.
nb::dict tensor_dict(const Trainable& model, const float* base)
{
    nb::dict out;
    for (const TensorInfo& info : model.tensors())
        out[info.name.c_str()] = copy_array(info.shape, base + info.offset);
    return out;
}

nb::dict state_dict(const Trainable& model) { return tensor_dict(model, model.parameters()); }

/// Zeros before the first backward, when there is no gradient buffer yet.
nb::dict gradients(const Trainable& model)
{
    if (!model.gradients().empty())
        return tensor_dict(model, model.gradients().data());
    const std::vector<float> zeros(model.parameter_count(), 0.0f);
    return tensor_dict(model, zeros.data());
}

std::string join(const std::vector<std::string>& names)
{
    std::string out;
    for (const std::string& name : names)
        out += (out.empty() ? "'" : ", '") + name + "'";
    return "[" + out + "]";
}

/// Strict: every key present, no other key, every shape equal; checked in full before any copy.
void load_state_dict(Trainable& model, nb::dict mapping)
{
    std::vector<std::pair<const TensorInfo*, FloatArray>> staged;
    std::vector<std::string> unexpected;
    std::set<std::string> seen;
    for (auto [key, value_in] : mapping) {
        const TensorInfo* info = nb::isinstance<nb::str>(key) ? model.find(nb::cast<std::string>(key)) : nullptr;
        if (!info) {
            unexpected.push_back(nb::cast<std::string>(nb::isinstance<nb::str>(key) ? nb::str(key) : nb::repr(key)));
            continue;
        }
        const std::string name = "state_dict['" + info->name + "']";
        FloatArray value = to_floats(value_in, name.c_str());
        if (shape_of(value) != info->shape)
            throw_shape(name, shape_str(info->shape), shape_of(value));
        seen.insert(info->name);
        staged.emplace_back(info, std::move(value));
    }
    std::vector<std::string> missing;
    for (const TensorInfo& info : model.tensors())
        if (!seen.count(info.name))
            missing.push_back(info.name);
    if (!missing.empty() || !unexpected.empty())
        throw ArgumentError("state_dict: missing keys " + join(missing) + ", unexpected keys " + join(unexpected));
    for (const auto& [info, value] : staged)
        std::copy(value.data(), value.data() + info->size, model.parameters() + info->offset);
}

}  // namespace

void bind_model(nb::module_& m)
{
    nb::class_<Trainable>(m, "Trainable", "Named weights and their accumulated gradients.")
        .def("state_dict", &state_dict, "Copies of every tensor under PyTorch's names.")
        .def("load_state_dict", &load_state_dict, "state_dict"_a,
             "Copies the tensors in; strict about keys and shapes.")
        .def("grads", &gradients, "Accumulated gradients, keyed like state_dict().")
        .def("zero_grad", &Trainable::zero_grad, "Sets the accumulated gradients to zero.")
        .def(
            "add_gradients",
            [](Trainable& model, FloatArray gradients) {
                if (gradients.size() != model.parameter_count())
                    throw ArgumentError("gradients: expected " + std::to_string(model.parameter_count()) +
                                        " floats, got " + std::to_string(gradients.size()));
                model.add_gradients(gradients.data());
            },
            "gradients"_a, "Adds gradients laid out as parameter_view() (a GPU backward's) into grads().");

    nb::class_<Model, Trainable>(m, "Model", "The engine behind every streamrnn layer and cell (see streamrnn.LSTM etc.).")
        .def(
            "__init__",
            [](Model* self, const std::string& mode, long long input_size, long long hidden_size, long long num_layers,
               long long proj_size, bool bias, bool batch_first, bool bidirectional, bool residual, bool reset_after,
               double dropout, bool is_cell, std::optional<std::uint64_t> seed) {
                ModelSpec spec;
                spec.kind = kind_from_name(mode);
                spec.input_size = to_int("input_size", input_size);
                spec.hidden_size = to_int("hidden_size", hidden_size);
                spec.num_layers = to_int("num_layers", num_layers);
                spec.proj_size = to_int("proj_size", proj_size);
                spec.bias = bias;
                spec.batch_first = batch_first;
                spec.bidirectional = bidirectional;
                spec.residual = residual;
                spec.reset_after = reset_after;
                spec.dropout = dropout;
                spec.is_cell = is_cell;
                new (self) Model(spec, seed ? *seed : std::random_device{}());
            },
            "mode"_a, "input_size"_a, "hidden_size"_a, "num_layers"_a, "proj_size"_a, "bias"_a, "batch_first"_a,
            "bidirectional"_a, "residual"_a, "reset_after"_a, "dropout"_a, "is_cell"_a, "seed"_a.none())
        .def_prop_ro("version", [](const Model& model) { return model.version(); },
                     "Goes up with every change of the weights (what a GPU copy compares).")
        .def(
            "parameter_view",
            [](nb::handle self) {
                const Model& model = nb::cast<const Model&>(self);
                return nb::ndarray<nb::numpy, const float, nb::ndim<1>>(model.parameters(), {model.parameter_count()},
                                                                        self);
            },
            "Every weight in one read-only array, tensors one after another in state_dict() order.")
        .def_prop_ro("mode", [](const Model& model) { return kind_name(model.spec().kind); })
        .def_prop_ro("input_size", [](const Model& model) { return model.spec().input_size; })
        .def_prop_ro("hidden_size", [](const Model& model) { return model.spec().hidden_size; })
        .def_prop_ro("num_layers", [](const Model& model) { return model.spec().num_layers; })
        .def_prop_ro("proj_size", [](const Model& model) { return model.spec().proj_size; })
        .def_prop_ro("bias", [](const Model& model) { return model.spec().bias; })
        .def_prop_ro("batch_first", [](const Model& model) { return model.spec().batch_first; })
        .def_prop_ro("bidirectional", [](const Model& model) { return model.spec().bidirectional; })
        .def_prop_ro("residual", [](const Model& model) { return model.spec().residual; })
        .def_prop_ro("reset_after", [](const Model& model) { return model.spec().reset_after; })
        .def_prop_ro("dropout", [](const Model& model) { return model.spec().dropout; })
        .def_prop_ro("is_cell", [](const Model& model) { return model.spec().is_cell; })
        .def("forward", &forward, "x"_a, "state"_a.none(), "lengths"_a.none(), "train"_a = false,
             "Whole-sequence forward: (y, state); train=True keeps what backward reads.")
        .def("cell_forward", &cell_forward, "x"_a, "state"_a.none(), "train"_a = false,
             "One step of a cell: the new state.")
        .def("backward", &layer_backward, "dy"_a, "dstate"_a.none(),
             "BPTT over the last training forward: (dx, dstate0); weight gradients accumulate.")
        .def("cell_backward", &cell_backward, "dstate"_a.none(), "batched"_a,
             "Back through the last training step of a cell: (dx, dstate0).")

        .def(
            "stream",
            [](std::shared_ptr<Model> self, long long batch) { return Stream(std::move(self), batch); },
            "batch"_a, "A Stream of `batch` independent streams over this model's weights.")
        .def(
            "save",
            [](const Model& model, const std::string& path) {
                nb::gil_scoped_release release;
                save_model(model, path);
            },
            "path"_a, "Writes one safetensors file.");

    m.def(
        "set_num_threads",
        [](int threads) {
            if (threads < 1)
                throw ArgumentError("threads: expected at least 1, got " + std::to_string(threads));
            sequence_threads = threads;
        },
        "threads"_a,
        "Threads of whole-sequence calls (1 at start): a forward, and a training forward and backward,\n"
        "split their batch across them (too few rows share their products over all steps instead).\n"
        "Streams always step on the calling thread.");
    m.def("get_num_threads", [] { return sequence_threads; }, "Threads of whole-sequence calls.");
    m.def(
        "save_tensors",
        [](const std::string& path, nb::dict tensors, nb::dict metadata) {
            TensorFile file;
            file.has_metadata = true;
            for (auto [key, value] : metadata)
                file.metadata.emplace_back(nb::cast<std::string>(key), nb::cast<std::string>(value));
            for (auto [key, value] : tensors) {
                const std::string name = nb::cast<std::string>(key);
                const FloatArray array = to_floats(value, name.c_str());
                file.tensors.push_back({name, shape_of(array), std::vector<float>(array.data(), array.data() + array.size())});
            }
            nb::gil_scoped_release release;
            save_tensor_file(file, path);
        },
        "path"_a, "tensors"_a, "metadata"_a, "Writes float32 tensors and string metadata as one safetensors file.");
    m.def(
        "load_tensors",
        [](const std::string& path) {
            TensorFile file;
            {
                nb::gil_scoped_release release;
                file = read_tensor_file(path);
            }
            nb::dict tensors, metadata;
            for (const NamedTensor& tensor : file.tensors)
                tensors[tensor.name.c_str()] = copy_array(tensor.shape, tensor.values.data());
            for (const auto& [key, value] : file.metadata)
                metadata[key.c_str()] = value;
            return nb::make_tuple(tensors, metadata);
        },
        "path"_a, "Reads a safetensors file of float32 tensors: (tensors, metadata).");
    m.def(
        "load",
        [](const std::string& path) {
            nb::gil_scoped_release release;
            return load_model(path);
        },
        "path"_a, "Reads a model file written by Model.save (or any conforming safetensors file).");
}

}  // namespace streamrnn::python
