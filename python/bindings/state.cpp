// python/bindings/state.cpp: recurrent state between Python objects and engine buffers.
// Part of streamrnn, MIT licence.
#include "state.hpp"

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

namespace {

FloatArray checked(nb::handle value, const std::string& name, const Shape& expected, int batch_axis, bool accept_unbatched)
{
    FloatArray array = to_floats(value, name.c_str());
    const Shape got = shape_of(array);
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
                float* c, const std::string& name)
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
        FloatArray h_in = checked(state[0], name + "[0] (h)", shape.h, shape.batch_axis, accept_unbatched);
        FloatArray c_in = checked(state[1], name + "[1] (c)", shape.c, shape.batch_axis, accept_unbatched);
        std::copy(h_in.data(), h_in.data() + h_in.size(), h);
        std::copy(c_in.data(), c_in.data() + c_in.size(), c);
        return;
    }
    if (nb::isinstance<nb::tuple>(state))
        throw nb::type_error((name + ": this model's state is one array h, got a tuple").c_str());
    FloatArray h_in = checked(state, name, shape.h, shape.batch_axis, accept_unbatched);
    std::copy(h_in.data(), h_in.data() + h_in.size(), h);
}

nb::object new_state(const ModelSpec& spec, const StateShape& shape, float** h, float** c)
{
    nb::object h_out = nb::cast(new_array(shape.h, h));
    *c = nullptr;
    if (!spec.has_cell_state())
        return h_out;
    return nb::make_tuple(h_out, new_array(shape.c, c));
}

nb::object make_state(const ModelSpec& spec, const StateShape& shape, const float* h, const float* c)
{
    float* h_out;
    float* c_out;
    nb::object state = new_state(spec, shape, &h_out, &c_out);
    std::copy(h, h + element_count(shape.h), h_out);
    if (c_out)
        std::copy(c, c + element_count(shape.c), c_out);
    return state;
}

}  // namespace streamrnn::python
