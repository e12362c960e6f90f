// python/bindings/bind_model.cpp: streamrnn._core.Model: construction, forward, cells, weights, files.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "spec.hpp"
#include "state.hpp"

#include "streamrnn/chunked.hpp"
#include "streamrnn/errors.hpp"
#include "streamrnn/model.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/pool.hpp"
#include "streamrnn/stream.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <random>
#include <set>

namespace streamrnn::python {

nb::object chunked_stream(std::shared_ptr<Model> model, nb::handle batch, nb::handle chunk, nb::handle lookahead);

namespace {

/// Threads of whole-sequence calls (streamrnn.set_num_threads): they split the batch of a forward
/// and of training, or share the products over all steps. Atomic: Python threads set and read it
/// while calls that released the GIL run.
std::atomic<int> sequence_threads{1};
/// More threads than any machine this runs on has cores; the cap keeps a typo from starting
/// billions of threads.
constexpr long long max_threads = 1 << 12;

nb::tuple forward(Model& model, nb::handle x_in, nb::handle state_in, nb::handle lengths_in, bool train)
{
    const ModelSpec& spec = model.spec();
    const FloatArray x = to_floats(x_in, "x");
    const Shape x_shape = shape_of(x);
    const SequenceShape call = sequence_shape(spec, x_shape, lengths_in);
    const long long T = call.T, B = call.B;
    const bool from_initial = state_in.is_none();
    return host_sequence_call(spec, call, state_shape(spec, B, call.batched), state_in,
                              [&](float* h, float* c, float* y) {
                                  if (train) {
                                      model.forward_train(x.data(), T, B, call.lengths_data(), y, h, c,
                                                          sequence_threads, from_initial);
                                      return;
                                  }
                                  if (from_initial)
                                      model.fill_initial_state(B, h, c);
                                  model.forward(x.data(), T, B, call.lengths_data(), y, h, c, sequence_threads);
                              });
}

/// The chunked (latency-controlled) forward of a bidirectional model: (y, state), as forward's.
nb::tuple forward_chunked(Model& model, nb::handle x_in, nb::handle state_in, nb::handle lengths_in,
                          nb::handle chunk_in, nb::handle lookahead_in, bool train)
{
    const ModelSpec& spec = model.spec();
    const Chunking chunking{static_cast<Index>(to_integer(chunk_in, "chunk")),
                            static_cast<Index>(to_integer(lookahead_in, "lookahead"))};
    const FloatArray x = to_floats(x_in, "x");
    const SequenceShape call = sequence_shape(spec, shape_of(x), lengths_in);
    const long long T = call.T, B = call.B;
    const bool from_initial = state_in.is_none();
    return host_sequence_call(spec, call, state_shape(spec, B, call.batched), state_in,
                              [&](float* h, float* c, float* y) {
                                  if (train) {
                                      forward_train_chunked(model, x.data(), T, B, call.lengths_data(), chunking, y,
                                                            h, c, from_initial);
                                      return;
                                  }
                                  if (from_initial)
                                      model.fill_initial_state(B, h, c);
                                  forward_chunked(model, x.data(), T, B, call.lengths_data(), chunking, y, h, c,
                                                  sequence_threads);
                              });
}

/// dx and dstate0 for dy and dstate (see Model::backward), shaped like the forward's x and state,
/// for a record of T steps and B rows: if another thread's training forward replaced it since,
/// backward refuses it (its sizes no longer match the arrays made here).
nb::tuple backward(Model& model, const float* dy, long long T, long long B, bool batched, nb::handle dstate_in)
{
    const ModelSpec& spec = model.spec();
    return host_backward_call(spec, state_shape(spec, B, batched), input_shape(spec, T, B, batched), dstate_in,
                              [&](const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0) {
                                  model.backward(dy, dh_n, dc_n, dx, dh0, dc0, sequence_threads, T, B);
                              });
}

nb::tuple layer_backward(Model& model, nb::handle dy_in, nb::handle dstate_in)
{
    const long long T = model.recorded_steps("backward"), B = model.recorded_batch("backward");
    const FloatArray dy = to_floats(dy_in, "dy");
    const bool batched = check_output_gradient(model.spec(), shape_of(dy), "dy", T, B);
    return backward(model, dy.data(), T, B, batched, dstate_in);
}

/// A cell's output is its state, so its gradient arrives as dstate alone. `batched`: whether the
/// training step's x was (B, I) rather than (I,).
nb::tuple cell_backward(Model& model, nb::handle dstate_in, bool batched)
{
    const long long T = model.recorded_steps("backward"), B = model.recorded_batch("backward");
    const std::vector<float> dy(static_cast<std::size_t>(T * B * model.spec().output_size()), 0.0f);
    return backward(model, dy.data(), T, B, batched, dstate_in);
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

/// One version of the weights, whatever other threads write meanwhile.
nb::dict state_dict(const Trainable& model) { return tensor_dict(model, model.weights().data()); }

/// Zeros before the first backward, when there is no gradient buffer yet.
nb::dict gradients(Trainable& model)
{
    Trainable::GradientLease lease = model.lease_gradients("grads");
    if (const float* values = lease.data())
        return tensor_dict(model, values);
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
    // One new version of all the weights at once: a stream or call running on another thread sees
    // the old weights or the new ones, never some of each.
    Trainable::Update update = model.update();
    for (const auto& [info, value] : staged)
        std::copy(value.data(), value.data() + info->size, update.data() + info->offset);
    nb::gil_scoped_release release;
    update.commit();
}

nb::object get_initial_state(const Model& model)
{
    if (!model.has_initial_state())
        return nb::none();
    const ModelSpec& spec = model.spec();
    float *h, *c;
    nb::object state = new_state(spec, state_shape(spec, 1, false), &h, &c);
    model.initial_state(h, c);
    return state;
}

void set_initial_state(Model& model, nb::handle state)
{
    if (model.spec().is_cell)
        throw ArgumentError("initial_state: a cell has none of its own; pass its state to each call");
    if (state.is_none()) {
        model.set_initial_state(nullptr, nullptr);
        return;
    }
    // Checked in full first: a refused state changes nothing.
    const ModelSpec& spec = model.spec();
    const StateShape shape = state_shape(spec, 1, false);
    std::vector<float> h(static_cast<std::size_t>(element_count(shape.h)));
    std::vector<float> c(static_cast<std::size_t>(element_count(shape.c)));
    read_state(state, spec, shape, false, h.data(), c.data(), "initial_state");
    model.set_initial_state(h.data(), c.empty() ? nullptr : c.data());
}

}  // namespace

int sequence_thread_count() { return sequence_threads; }

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
            [](Model* self, nb::dict spec, std::optional<std::uint64_t> seed) {
                new (self) Model(spec_from(spec), seed ? *seed : std::random_device{}());
            },
            "spec"_a, "seed"_a.none(),
            "spec: the architecture, keyed as streamrnn.LSTM's arguments (mode, input_size, ..., is_cell).")
        .def_prop_ro("spec", [](const Model& model) { return spec_dict(model.spec()); },
                     "The architecture, as the constructor takes it.")
        .def_prop_ro("version", [](const Model& model) { return model.version(); },
                     "Goes up with every change of the weights (what a GPU copy compares).")
        .def(
            "weights",
            [](const Model& model) {
                // The array owns the version it shows: later writes publish new versions, never
                // change this one.
                auto* held = new Trainable::Weights(model.weights());
                nb::capsule owner(held, [](void* p) noexcept { delete static_cast<Trainable::Weights*>(p); });
                return nb::make_tuple(held->version(), nb::ndarray<nb::numpy, const float, nb::ndim<1>>(
                                                           held->data(), {held->size()}, owner));
            },
            "(version, values): one version of every weight, a read-only array of the tensors one after\n"
            "another in state_dict() order.")
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
        .def_prop_ro("learn_initial_state", [](const Model& model) { return model.spec().learn_initial_state; })
        .def_prop_rw("initial_state", &get_initial_state, &set_initial_state, nb::arg("state").none(),
                     "The state rows start from without one: h (L * D, H_out), or (h, c) for an LSTM, c\n"
                     "(L * D, H); None when there is none (zeros). Setting None goes back to zeros.")
        .def("forward", &forward, "x"_a.none(), "state"_a.none(), "lengths"_a.none(), "train"_a = false,
             "Whole-sequence forward: (y, state); train=True keeps what backward reads.")
        .def("forward_chunked", &forward_chunked, "x"_a.none(), "state"_a.none(), "lengths"_a.none(),
             "chunk"_a.none(), "lookahead"_a.none(), "train"_a,
             "Latency-controlled forward of a bidirectional model in chunks with a look-ahead: (y, state);\n"
             "train: keep a record for backward, with dropout between layers.")
        .def("cell_forward", &cell_forward, "x"_a.none(), "state"_a.none(), "train"_a = false,
             "One step of a cell: the new state.")
        .def("backward", &layer_backward, "dy"_a.none(), "dstate"_a.none(),
             "BPTT over the last training forward: (dx, dstate0); weight gradients accumulate.")
        .def("cell_backward", &cell_backward, "dstate"_a.none(), "batched"_a,
             "Back through the last training step of a cell: (dx, dstate0).")

        .def(
            "stream",
            [](std::shared_ptr<Model> self, nb::handle batch) {
                return Stream(std::move(self), static_cast<Index>(to_integer(batch, "batch")));
            },
            "batch"_a, "A Stream of `batch` independent streams over this model's weights.")
        .def("chunked_stream", &chunked_stream, "batch"_a, "chunk"_a, "lookahead"_a,
             "A ChunkedStream of `batch` streams in chunks with a look-ahead.")
        .def(
            "pool",
            [](std::shared_ptr<Model> self, nb::handle capacity) {
                return Pool(std::move(self), static_cast<Index>(to_integer(capacity, "capacity")));
            },
            "capacity"_a, "A Pool of `capacity` slots for live streams over this model's weights.")
        .def(
            "save",
            [](const Model& model, const std::string& path) {
                const std::string checked = to_path(path);
                nb::gil_scoped_release release;
                save_model(model, checked);
            },
            "path"_a, "Writes one safetensors file.");

    m.def(
        "set_num_threads",
        [](nb::handle threads_in) {
            const long long threads = to_integer(threads_in, "threads");
            if (threads < 1 || threads > max_threads)
                throw ArgumentError("threads: expected an integer in [1, " + std::to_string(max_threads) + "], got " +
                                    std::to_string(threads));
            sequence_threads = static_cast<int>(threads);
        },
        "threads"_a,
        "Threads of whole-sequence calls (1 at start): a forward, and a training forward and backward,\n"
        "split their batch across them (too few rows share their products over all steps instead).\n"
        "Streams always step on the calling thread.");
    m.def("get_num_threads", [] { return sequence_threads.load(); }, "Threads of whole-sequence calls.");
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
            const std::string checked = to_path(path);
            nb::gil_scoped_release release;
            save_tensor_file(file, checked);
        },
        "path"_a, "tensors"_a, "metadata"_a, "Writes float32 tensors and string metadata as one safetensors file.");
    m.def(
        "load_tensors",
        [](const std::string& path) {
            TensorFile file;
            const std::string checked = to_path(path);
            {
                nb::gil_scoped_release release;
                file = read_tensor_file(checked);
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
            const std::string checked = to_path(path);
            nb::gil_scoped_release release;
            return load_model(checked);
        },
        "path"_a, "Reads a model file written by Model.save (or any conforming safetensors file).");
}

}  // namespace streamrnn::python
