// python/bindings/state.cpp: recurrent state between Python objects and engine buffers, and the
// shapes of calls.
// Part of streamrnn, MIT licence.
#include "state.hpp"

#include "spec.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>

namespace streamrnn::python {

StateShape state_shape(const ModelSpec& spec, long long B, bool batched)
{
    StateShape shape;
    const long long cells = spec.num_layers * spec.directions();
    if (!spec.is_cell) {
        shape.h.push_back(cells);
        shape.batch_axis = 1;
    } else {
        shape.batch_axis = 0;
    }
    if (batched)
        shape.h.push_back(B);
    else
        shape.batch_axis = -1;
    shape.c = shape.h;
    shape.h.push_back(spec.output_size());
    if (spec.has_cell_state())
        shape.c.push_back(spec.hidden_size);
    else
        shape.c.clear();
    return shape;
}

const float* ArraySource::view(nb::handle value, const std::string& name, Shape& shape, nb::object& keep) const
{
    FloatArray array = to_floats(value, name.c_str());
    shape = shape_of(array);
    keep = nb::cast(array);
    return array.data();
}

void ArraySource::copy(float* to, const float* from, std::size_t count) const { std::copy(from, from + count, to); }

namespace {

/// One array of a state, read and its shape checked.
struct StateArray {
    const float* data;
    std::size_t count;
    nb::object keep;
};

StateArray checked(const ArraySource& source, nb::handle value, const std::string& name, const Shape& expected,
                   int batch_axis, bool accept_unbatched)
{
    StateArray array;
    Shape got;
    array.data = source.view(value, name, got, array.keep);
    array.count = static_cast<std::size_t>(element_count(got));
    if (got == expected)
        return array;
    if (accept_unbatched && batch_axis >= 0 && expected[static_cast<std::size_t>(batch_axis)] == 1) {
        Shape unbatched = expected;
        unbatched.erase(unbatched.begin() + batch_axis);
        if (got == unbatched)
            return array;
    }
    throw_shape(name, shape_str(expected), got);
}

}  // namespace

void read_state(nb::handle state, const ModelSpec& spec, const StateShape& shape, bool accept_unbatched, float* h,
                float* c, const std::string& name, const ArraySource& source)
{
    if (state.is_none())
        return;
    if (spec.has_cell_state()) {
        if (!nb::isinstance<nb::tuple>(state) && !nb::isinstance<nb::list>(state))
            throw nb::type_error((name + ": an LSTM's state is a tuple (h, c), got " +
                                  python_type(state))
                                     .c_str());
        if (nb::len(state) != 2)
            throw ArgumentError(name + ": an LSTM's state is a tuple (h, c), got " + std::to_string(nb::len(state)) +
                                " items");
        const StateArray h_in = checked(source, state[0], name + "[0] (h)", shape.h, shape.batch_axis, accept_unbatched);
        const StateArray c_in = checked(source, state[1], name + "[1] (c)", shape.c, shape.batch_axis, accept_unbatched);
        source.copy(h, h_in.data, h_in.count);
        source.copy(c, c_in.data, c_in.count);
        return;
    }
    if (nb::isinstance<nb::tuple>(state))
        throw nb::type_error((name + ": this model's state is one array h, got a tuple").c_str());
    const StateArray h_in = checked(source, state, name, shape.h, shape.batch_axis, accept_unbatched);
    source.copy(h, h_in.data, h_in.count);
}

SequenceShape sequence_shape(const ModelSpec& spec, const Shape& x_shape, nb::handle lengths)
{
    if ((x_shape.size() != 2 && x_shape.size() != 3) || x_shape.back() != spec.input_size) {
        const std::string I = std::to_string(spec.input_size);
        throw_shape("x", (spec.batch_first ? "(B, T, " : "(T, B, ") + I + ") or unbatched (T, " + I + ")", x_shape);
    }
    SequenceShape out;
    out.batched = x_shape.size() == 3;
    out.T = out.batched && spec.batch_first ? x_shape[1] : x_shape[0];
    out.B = !out.batched ? 1 : spec.batch_first ? x_shape[0] : x_shape[1];
    out.y = x_shape;
    out.y.back() = spec.directions() * spec.output_size();
    if (!lengths.is_none()) {
        if (!out.batched)
            throw ArgumentError("lengths: only for batched input; x is unbatched, shape " + shape_str(x_shape));
        out.lengths = to_lengths(lengths, out.B);
    }
    return out;
}

Shape step_output_shape(const ModelSpec& spec, long long B, const Shape& x_shape)
{
    const bool unbatched = B == 1 && x_shape == Shape{spec.input_size};
    if (!unbatched && x_shape != Shape{B, spec.input_size})
        throw_shape("x", B == 1 ? "(1, " + std::to_string(spec.input_size) + ") or (" +
                                      std::to_string(spec.input_size) + ",)"
                                : shape_str({B, spec.input_size}) + " (batch, input_size)",
                    x_shape);
    return unbatched ? Shape{spec.output_size()} : Shape{B, spec.output_size()};
}

bool check_output_gradient(const ModelSpec& spec, const Shape& got, const char* name, long long T, long long B)
{
    const long long Y = spec.directions() * spec.output_size();
    const Shape batched = spec.batch_first ? Shape{B, T, Y} : Shape{T, B, Y};
    if (got == batched)
        return true;
    if (B == 1 && got == Shape{T, Y})
        return false;
    throw_shape(name, shape_str(batched) + (B == 1 ? " or unbatched " + shape_str({T, Y}) : "") +
                          ", the shape of the training forward's y",
                got);
}

Shape input_shape(const ModelSpec& spec, long long T, long long B, bool batched)
{
    Shape shape = spec.is_cell ? Shape{B, spec.input_size}
                  : spec.batch_first ? Shape{B, T, spec.input_size} : Shape{T, B, spec.input_size};
    if (!batched)
        shape.erase(shape.begin() + (spec.is_cell || spec.batch_first ? 0 : 1));
    return shape;
}

long long stream_index(nb::handle index, long long B)
{
    long long i = 0;
    bool fits = false;
    if (!integer_value(index, i, fits))
        throw nb::type_error(("reset: i: expected an integer stream index, got " + python_type(index)).c_str());
    if (!fits || i < -B || i >= B)
        throw nb::index_error(("reset: stream index " + nb::cast<std::string>(nb::repr(index)) + " out of range for " +
                               std::to_string(B) + " streams")
                                  .c_str());
    return i < 0 ? i + B : i;
}

std::pair<long long, Shape> chunk_shape(const ModelSpec& spec, long long B, const Shape& x_shape)
{
    const bool unbatched = B == 1 && x_shape.size() == 2 && x_shape[1] == spec.input_size;
    const bool batched = x_shape.size() == 3 && x_shape[spec.batch_first ? 0 : 1] == B &&
                         x_shape[2] == spec.input_size;
    if (!unbatched && !batched) {
        const std::string B_str = std::to_string(B);
        const std::string I = std::to_string(spec.input_size);
        throw_shape("x_chunk",
                    (spec.batch_first ? "(" + B_str + ", T, " + I + ")" : "(T, " + B_str + ", " + I + ")") +
                        (B == 1 ? " or (T, " + I + ")" : ""),
                    x_shape);
    }
    Shape y_shape = x_shape;
    y_shape.back() = spec.output_size();
    return {batched && spec.batch_first ? x_shape[1] : x_shape[0], y_shape};
}

nb::object new_state(const ModelSpec& spec, const StateShape& shape, float** h, float** c)
{
    nb::object h_out = nb::cast(new_array(shape.h, h));
    *c = nullptr;
    if (!spec.has_cell_state())
        return h_out;
    return nb::make_tuple(h_out, new_array(shape.c, c));
}

}  // namespace streamrnn::python
