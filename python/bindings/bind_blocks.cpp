// python/bindings/bind_blocks.cpp: Linear, Embedding, Dropout and the losses.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"

#include "streamrnn/blocks.hpp"
#include "streamrnn/errors.hpp"

#include <nanobind/stl/optional.h>

#include <random>

namespace streamrnn::python {

namespace {

std::uint64_t seed_or_random(std::optional<std::uint64_t> seed) { return seed ? *seed : std::random_device{}(); }

/// Rows of an array whose last axis is `width`: its leading axes flattened.
long long rows_of(const Shape& shape, long long width, const std::string& name, const std::string& expected)
{
    if (shape.empty() || shape.back() != width)
        throw_shape(name, expected, shape);
    return element_count(shape) / std::max(width, 1LL);
}

/// dy must be shaped like the training forward's output: `rows` rows of `width`.
void check_gradient_rows(const Shape& shape, long long width, long long rows)
{
    if (shape.empty() || shape.back() != width || element_count(shape) != rows * width)
        throw_shape("dy", "(..., " + std::to_string(width) + ") with " + std::to_string(rows) +
                              " rows, the shape of the training forward's output",
                    shape);
}

NumpyArray linear_forward(Linear& linear, nb::handle x_in, bool train)
{
    const FloatArray x = to_floats(x_in, "x");
    Shape shape = shape_of(x);
    const long long N = rows_of(shape, linear.in_features(), "x", "(..., " + std::to_string(linear.in_features()) + ")");
    shape.back() = linear.out_features();
    float* y;
    NumpyArray out = new_array(shape, &y);
    // A block's training record is for one thread at a time: its training calls keep the GIL,
    // so that Python threads take turns at it; the inference forward reads only its weights.
    if (train) {
        linear.forward_train(x.data(), N, y);
    } else {
        nb::gil_scoped_release release;
        linear.forward(x.data(), N, y);
    }
    return out;
}

NumpyArray linear_backward(Linear& linear, nb::handle dy_in)
{
    const FloatArray dy = to_floats(dy_in, "dy");
    Shape shape = shape_of(dy);
    check_gradient_rows(shape, linear.out_features(), linear.recorded_rows());
    shape.back() = linear.in_features();
    float* dx;
    NumpyArray out = new_array(shape, &dx);
    linear.backward(dy.data(), dx);  // with the GIL: the record (see linear_forward)
    return out;
}

NumpyArray embedding_forward(Embedding& embedding, nb::handle ids_in, bool train)
{
    const IntArray ids = to_integers(ids_in, "ids");
    const auto N = static_cast<Index>(ids.values.size());
    embedding.check_ids(ids.values.data(), N);
    Shape shape = ids.shape;
    shape.push_back(embedding.embedding_dim());
    float* y;
    NumpyArray out = new_array(shape, &y);
    if (train)
        embedding.forward_train(ids.values.data(), N, y);
    else
        embedding.forward(ids.values.data(), N, y);
    return out;
}

void embedding_backward(Embedding& embedding, nb::handle dy_in)
{
    const FloatArray dy = to_floats(dy_in, "dy");
    check_gradient_rows(shape_of(dy), embedding.embedding_dim(), embedding.recorded_rows());
    embedding.backward(dy.data());
}

NumpyArray dropout_forward(Dropout& dropout, nb::handle x_in, bool train)
{
    const FloatArray x = to_floats(x_in, "x");
    float* y;
    NumpyArray out = new_array(shape_of(x), &y);
    if (train)
        dropout.forward_train(x.data(), static_cast<Index>(x.size()), y);
    else
        std::copy(x.data(), x.data() + x.size(), y);
    return out;
}

NumpyArray dropout_backward(const Dropout& dropout, nb::handle dy_in)
{
    const FloatArray dy = to_floats(dy_in, "dy");
    if (static_cast<Index>(dy.size()) != dropout.recorded_size())
        throw ArgumentError("dy: expected " + std::to_string(dropout.recorded_size()) +
                            " elements, the size of the training forward's output, got shape " +
                            shape_str(shape_of(dy)));
    float* dx;
    NumpyArray out = new_array(shape_of(dy), &dx);
    dropout.backward(dy.data(), dx);
    return out;
}

nb::tuple cross_entropy_loss(nb::handle logits_in, nb::handle targets_in, std::int64_t ignore_index,
                             nb::handle mask_in)
{
    const FloatArray logits = to_floats(logits_in, "logits");
    const Shape shape = shape_of(logits);
    const IntArray targets = to_integers(targets_in, "targets");
    Shape expected_targets(shape.begin(), shape.end() - (shape.empty() ? 0 : 1));
    if (shape.size() < 2 || targets.shape != expected_targets)
        throw ArgumentError("logits, targets: expected logits (..., C) and targets (...) with the same leading shape, "
                            "got logits " + shape_str(shape) + " and targets " + shape_str(targets.shape));
    FloatArray mask;
    if (!mask_in.is_none()) {
        mask = to_floats(mask_in, "mask");
        if (shape_of(mask) != targets.shape)
            throw_shape("mask", shape_str(targets.shape) + ", the shape of targets", shape_of(mask));
    }
    const long long C = shape.back();
    const long long N = element_count(targets.shape);
    float* d;
    NumpyArray dlogits = new_array(shape, &d);
    const double loss = cross_entropy(logits.data(), N, C, targets.values.data(), ignore_index,
                                      mask_in.is_none() ? nullptr : mask.data(), d);
    return nb::make_tuple(loss, dlogits);
}

nb::tuple mse(nb::handle prediction_in, nb::handle target_in)
{
    const FloatArray prediction = to_floats(prediction_in, "prediction");
    const FloatArray target = to_floats(target_in, "target");
    if (shape_of(target) != shape_of(prediction))
        throw_shape("target", shape_str(shape_of(prediction)) + ", the shape of prediction", shape_of(target));
    float* d;
    NumpyArray dprediction = new_array(shape_of(prediction), &d);
    const double loss = mse_loss(prediction.data(), target.data(), static_cast<Index>(prediction.size()), d);
    return nb::make_tuple(loss, dprediction);
}

}  // namespace

void bind_blocks(nb::module_& m)
{
    nb::class_<Linear, Trainable>(m, "Linear")
        .def(
            "__init__",
            [](Linear* self, int in_features, int out_features, bool bias, std::optional<std::uint64_t> seed) {
                new (self) Linear(in_features, out_features, bias, seed_or_random(seed));
            },
            "in_features"_a, "out_features"_a, "bias"_a, "seed"_a.none())
        .def_prop_ro("in_features", &Linear::in_features)
        .def_prop_ro("out_features", &Linear::out_features)
        .def_prop_ro("bias", &Linear::has_bias)
        .def("forward", &linear_forward, "x"_a.none(), "train"_a)
        .def("backward", &linear_backward, "dy"_a.none());

    nb::class_<Embedding, Trainable>(m, "Embedding")
        .def(
            "__init__",
            [](Embedding* self, int num, int dim, int padding_idx, std::optional<std::uint64_t> seed) {
                new (self) Embedding(num, dim, padding_idx, seed_or_random(seed));
            },
            "num_embeddings"_a, "embedding_dim"_a, "padding_idx"_a, "seed"_a.none())
        .def_prop_ro("num_embeddings", &Embedding::num_embeddings)
        .def_prop_ro("embedding_dim", &Embedding::embedding_dim)
        .def_prop_ro("padding_idx", &Embedding::padding_idx)
        .def("forward", &embedding_forward, "ids"_a.none(), "train"_a)
        .def("backward", &embedding_backward, "dy"_a.none());

    nb::class_<Dropout>(m, "Dropout")
        .def(
            "__init__",
            [](Dropout* self, double p, std::optional<std::uint64_t> seed) {
                new (self) Dropout(p, seed_or_random(seed));
            },
            "p"_a, "seed"_a.none())
        .def_prop_ro("p", &Dropout::p)
        .def("forward", &dropout_forward, "x"_a.none(), "train"_a)
        .def("backward", &dropout_backward, "dy"_a.none());

    m.def("cross_entropy", &cross_entropy_loss, "logits"_a.none(), "targets"_a.none(), "ignore_index"_a,
          "mask"_a.none());
    m.def("mse_loss", &mse, "prediction"_a.none(), "target"_a.none());
}

}  // namespace streamrnn::python
