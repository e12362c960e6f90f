// python/bindings/bind_train.cpp: gradient clipping and the optimizers over models' parameters.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/optim.hpp"
#include "streamrnn/trainable.hpp"

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/vector.h>

#include <memory>

namespace streamrnn::python {

namespace {

using Models = std::vector<std::shared_ptr<Trainable>>;

/// The engine's view of the modules: pointers, for the calls of one step.
streamrnn::Modules modules_of(const Models& models)
{
    streamrnn::Modules out;
    for (const auto& model : models)
        out.push_back(model.get());
    return out;
}

/// An optimizer and the models it updates, which it keeps alive.
template <typename Optimizer>
struct Bound {
    Optimizer optimizer;
    Models models;

    // With the GIL held, as state() and set_state() are: one Python thread at a time uses the
    // optimizer's own state. The weights it writes are published whole (Trainable), so streams and
    // calls running without the GIL meanwhile read the old version or the new one.
    void step() { optimizer.step(modules_of(models)); }
    void zero_grad()
    {
        for (const auto& model : models)
            model->zero_grad();
    }
};

/// A state buffer as NumPy (None before it exists), and back, checked against its block's size.
nb::object buffer_out(const Buffer& buffer)
{
    if (buffer.empty())
        return nb::none();
    return nb::cast(copy_array({static_cast<long long>(buffer.size())}, buffer.data()));
}

Buffer buffer_in(nb::handle value, const std::string& name, std::size_t size)
{
    if (value.is_none())
        return {};
    const FloatArray array = to_floats(value, name.c_str());
    if (array.size() != size)
        throw_shape(name, shape_str({static_cast<long long>(size)}), shape_of(array));
    return Buffer(array.data(), array.data() + size);
}

std::string key(std::size_t block, const char* field)
{
    return "state[" + std::to_string(block) + "]['" + field + "']";
}

void check_state_length(const nb::list& state, std::size_t blocks)
{
    if (nb::len(state) != blocks)
        throw ArgumentError("state: expected " + std::to_string(blocks) + " entries (one per module), got " +
                            std::to_string(nb::len(state)));
}

}  // namespace

void bind_train(nb::module_& m)
{
    m.def(
        "clip_grad_norm",
        [](const Models& models, double max_norm, double norm_type) {
            return clip_grad_norm(modules_of(models), max_norm, norm_type);
        },
        "models"_a, "max_norm"_a, "norm_type"_a = 2.0);
    m.def(
        "clip_grad_value",
        [](const Models& models, double clip_value) { clip_grad_value(modules_of(models), clip_value); },
        "models"_a, "clip_value"_a);

    using BoundSGD = Bound<SGD>;
    nb::class_<BoundSGD>(m, "SGD")
        .def(
            "__init__",
            [](BoundSGD* self, Models models, double lr, double momentum, double dampening, double weight_decay,
               bool nesterov, bool maximize) {
                new (self) BoundSGD{SGD({lr, momentum, dampening, weight_decay, nesterov, maximize}), std::move(models)};
            },
            "models"_a, "lr"_a, "momentum"_a, "dampening"_a, "weight_decay"_a, "nesterov"_a, "maximize"_a)
        .def("step", &BoundSGD::step)
        .def("zero_grad", &BoundSGD::zero_grad)
        .def("state", [](BoundSGD& self) {
            nb::list out;
            for (const auto& buffer : self.optimizer.momentum_buffers()) {
                nb::dict entry;
                entry["momentum_buffer"] = buffer_out(buffer);
                out.append(entry);
            }
            return out;
        })
        .def("set_state", [](BoundSGD& self, nb::list state) {
            check_state_length(state, self.models.size());
            std::vector<Buffer> buffers;
            for (std::size_t k = 0; k < self.models.size(); ++k)
                buffers.push_back(buffer_in(state[k]["momentum_buffer"], key(k, "momentum_buffer"),
                                            self.models[k]->parameter_count()));
            self.optimizer.momentum_buffers() = std::move(buffers);
        });

    using BoundAdam = Bound<Adam>;
    nb::class_<BoundAdam>(m, "Adam")
        .def(
            "__init__",
            [](BoundAdam* self, Models models, double lr, double beta1, double beta2, double eps, double weight_decay,
               bool amsgrad, bool decoupled_weight_decay, bool maximize) {
                new (self) BoundAdam{
                    Adam({lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled_weight_decay, maximize}),
                    std::move(models)};
            },
            "models"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a, "amsgrad"_a,
            "decoupled_weight_decay"_a, "maximize"_a)
        .def("step", &BoundAdam::step)
        .def("zero_grad", &BoundAdam::zero_grad)
        .def("state", [](BoundAdam& self) {
            nb::list out;
            for (const Adam::BlockState& s : self.optimizer.state()) {
                nb::dict entry;
                entry["step"] = s.steps;
                entry["exp_avg"] = buffer_out(s.exp_avg);
                entry["exp_avg_sq"] = buffer_out(s.exp_avg_sq);
                entry["max_exp_avg_sq"] = buffer_out(s.max_exp_avg_sq);
                out.append(entry);
            }
            return out;
        })
        .def("set_state", [](BoundAdam& self, nb::list state) {
            check_state_length(state, self.models.size());
            std::vector<Adam::BlockState> blocks;
            for (std::size_t k = 0; k < self.models.size(); ++k) {
                nb::handle entry = state[k];
                const std::size_t size = self.models[k]->parameter_count();
                Adam::BlockState s;
                s.steps = nb::cast<std::int64_t>(entry["step"]);
                if (s.steps < 0)
                    throw ArgumentError(key(k, "step") + ": expected a non-negative count, got " +
                                        std::to_string(s.steps));
                s.exp_avg = buffer_in(entry["exp_avg"], key(k, "exp_avg"), size);
                s.exp_avg_sq = buffer_in(entry["exp_avg_sq"], key(k, "exp_avg_sq"), size);
                s.max_exp_avg_sq = buffer_in(entry["max_exp_avg_sq"], key(k, "max_exp_avg_sq"), size);
                blocks.push_back(std::move(s));
            }
            self.optimizer.state() = std::move(blocks);
        });
}

}  // namespace streamrnn::python
