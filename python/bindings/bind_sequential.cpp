// python/bindings/bind_sequential.cpp: streamrnn._core.Sequential, whole models: the blocks a
// Python list describes, whole sequences, training, files. Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "sequential_state.hpp"
#include "spec.hpp"
#include "state.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/sequential.hpp"

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

namespace streamrnn::python {

nb::object sequential_stream(std::shared_ptr<Sequential> model, nb::handle batch);

namespace {

/// The blocks a Python list describes: a Linear, a Model, or (name, alpha) for a function.
std::vector<Block> blocks_from(nb::list items)
{
    std::vector<Block> blocks;
    for (std::size_t k = 0; k < items.size(); ++k) {
        nb::handle item = items[k];
        if (nb::isinstance<Linear>(item)) {
            blocks.push_back(Block::of(nb::cast<std::shared_ptr<Linear>>(item)));
        } else if (nb::isinstance<Model>(item)) {
            blocks.push_back(Block::of(nb::cast<std::shared_ptr<Model>>(item)));
        } else {
            const auto [name, alpha] = nb::cast<std::pair<std::string, float>>(item);
            ActivationFunction function;
            if (!block_function(name, alpha, function))
                throw ArgumentError("blocks[" + std::to_string(k) + "]: unknown function " + name);
            blocks.push_back(Block::of(function));
        }
    }
    return blocks;
}

nb::tuple forward(Sequential& model, nb::handle x_in, nb::handle state_in, nb::handle lengths_in, bool train,
                  int threads)
{
    const ModelSpec io = io_spec(model);
    const FloatArray x = to_floats(x_in, "x");
    const SequenceShape call = sequence_shape(io, shape_of(x), lengths_in);
    const long long T = call.T, B = call.B;
    BlockStates states(model, B, call.batched);
    const bool from_initial = state_in.is_none();
    states.read(state_in, "state");
    float* y;
    NumpyArray y_out = new_array(call.y, &y);
    {
        nb::gil_scoped_release release;
        if (train) {
            model.forward_train(x.data(), T, B, call.lengths_data(), y, states.refs(), threads, from_initial);
        } else {
            if (from_initial)
                states.fill_initial();
            model.forward(x.data(), T, B, call.lengths_data(), y, states.refs(), threads);
        }
    }
    return nb::make_tuple(y_out, states.object());
}

nb::tuple backward(Sequential& model, nb::handle dy_in, nb::handle dstate_in, int threads)
{
    const ModelSpec io = io_spec(model);
    const long long T = model.recorded_steps(), B = model.recorded_batch();
    const FloatArray dy = to_floats(dy_in, "dy");
    const bool batched = check_output_gradient(io, shape_of(dy), "dy", T, B);
    BlockStates final_gradients(model, B, batched), initial_gradients(model, B, batched);
    final_gradients.read(dstate_in, "dstate");
    float* dx;
    NumpyArray dx_out = new_array(input_shape(io, T, B, batched), &dx);
    {
        nb::gil_scoped_release release;
        model.backward(dy.data(), final_gradients.refs(), dx, initial_gradients.refs(), threads);
    }
    return nb::make_tuple(dx_out, initial_gradients.object());
}

std::vector<std::pair<std::string, std::string>> metadata_from(nb::dict metadata)
{
    std::vector<std::pair<std::string, std::string>> entries;
    for (auto [key, value] : metadata) {
        if (!nb::isinstance<nb::str>(key) || !nb::isinstance<nb::str>(value))
            throw nb::type_error(("metadata: expected str keys and values, got " +
                                  nb::cast<std::string>(nb::repr(key)) + ": " + nb::cast<std::string>(nb::repr(value)))
                                     .c_str());
        entries.emplace_back(nb::cast<std::string>(key), nb::cast<std::string>(value));
    }
    return entries;
}

}  // namespace

void bind_sequential(nb::module_& m)
{
    nb::class_<Sequential>(m, "Sequential", "The engine of streamrnn.Sequential: use that.")
        .def(
            "__init__", [](Sequential* self, nb::list blocks) { new (self) Sequential(blocks_from(blocks)); },
            "blocks"_a, "blocks: Linear and Model cores, and (name, alpha) for element-wise functions.")
        .def_prop_ro("input_size", &Sequential::input_size)
        .def_prop_ro("output_size", &Sequential::output_size)
        .def_prop_ro("batch_first", &Sequential::batch_first)
        .def(
            "forward",
            [](Sequential& model, nb::handle x, nb::handle state, nb::handle lengths, bool train) {
                return forward(model, x, state, lengths, train, sequence_thread_count());
            },
            "x"_a.none(), "state"_a.none(), "lengths"_a.none(), "train"_a = false,
            "Whole-sequence forward: (y, state); state: the recurrent block's, or a tuple of theirs.")
        .def(
            "backward",
            [](Sequential& model, nb::handle dy, nb::handle dstate) {
                return backward(model, dy, dstate, sequence_thread_count());
            },
            "dy"_a.none(), "dstate"_a.none(), "BPTT over the last training forward: (dx, dstate0).")
        .def("stream", &sequential_stream, "batch"_a, "A stream of `batch` rows through every block.")
        .def(
            "save",
            [](const Sequential& model, const std::string& path, nb::dict metadata) {
                const std::string checked = to_path(path);
                const auto entries = metadata_from(metadata);
                nb::gil_scoped_release release;
                save_sequential(model, entries, checked);
            },
            "path"_a, "metadata"_a, "Writes one model file (the C API loads it too).");

    m.def(
        "load_any",
        [](const std::string& path) -> nb::object {
            const std::string checked = to_path(path);
            LoadedModel loaded;
            {
                nb::gil_scoped_release release;
                loaded = load_any_model(checked);
            }
            if (loaded.model)
                return nb::cast(loaded.model);
            nb::dict metadata;
            for (const auto& [key, value] : loaded.metadata)
                metadata[key.c_str()] = value;
            nb::list blocks;
            for (const Block& block : loaded.sequential->blocks()) {
                if (block.kind == Block::Kind::linear)
                    blocks.append(nb::cast(block.linear));
                else if (block.kind == Block::Kind::recurrent)
                    blocks.append(nb::cast(block.recurrent));
                else
                    blocks.append(nb::make_tuple(block.name(), block.function.alpha));
            }
            return nb::make_tuple(nb::cast(loaded.sequential), blocks, metadata);
        },
        "path"_a,
        "Reads any model file: a Model, or (Sequential, its blocks' cores and functions, its metadata).");
}

}  // namespace streamrnn::python
