// python/bindings/bind_stream.cpp: streamrnn._core.Stream: step, process, state and reset.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "spec.hpp"
#include "state.hpp"

#include "streamrnn/errors.hpp"
#include "streamrnn/stream.hpp"

#include <nanobind/stl/optional.h>

#include <optional>

namespace streamrnn::python {

namespace {

/// RuntimeError for a call on `stream` that another thread's call held it against.
void raise_busy(const Stream& stream, const char* call)
{
    const char* holder = stream.busy_with();
    raise(ErrorKind::busy, std::string(call) + ": another thread is in " + (holder ? holder : "a call") +
                               " on this stream, which is for one thread at a time");
}

/// Runs `call` (a stream call returning whether it ran) with the GIL released, or held where the
/// call is too short for releasing it to pay; RuntimeError when another thread holds the stream.
template <typename Call>
void run(const Stream& stream, const char* name, bool release_gil, Call call)
{
    bool ran;
    if (release_gil) {
        nb::gil_scoped_release release;
        ran = call();
    } else {
        ran = call();
    }
    if (!ran)
        raise_busy(stream, name);
}

/// Steps, letting other Python threads run when the step is long enough for that to pay.
void run_step(Stream& stream, const float* x, float* y)
{
    run(stream, "step", step_releases_gil(stream.model().spec(), stream.batch()), [&] { return stream.step(x, y); });
}

nb::object step(Stream& stream, nb::handle x_in, nb::handle out_in)
{
    const ModelSpec& spec = stream.model().spec();
    const long long B = stream.batch();

    // The real-time path: float32 NumPy arrays of the right shapes, used in place, no allocation.
    DirectArray x_direct, out_direct;
    if (direct_array(x_in, false, x_direct) && direct_array(out_in, true, out_direct)) {
        const bool batched = x_direct.has_shape(B, spec.input_size) && out_direct.has_shape(B, spec.output_size());
        const bool unbatched =
            B == 1 && x_direct.has_shape(spec.input_size) && out_direct.has_shape(spec.output_size());
        if ((batched || unbatched) &&
            !overlaps(x_direct.data, x_direct.size(), out_direct.data, out_direct.size())) {
            run_step(stream, x_direct.data, out_direct.data);
            return nb::borrow(out_in);
        }
    }

    // Everything else: x converted, a new output or any writable float32 array as out, errors.
    const FloatArray x = to_floats(x_in, "x");
    const Shape y_shape = step_output_shape(spec, B, shape_of(x));
    if (out_in.is_none()) {
        float* y;
        NumpyArray out = new_array(y_shape, &y);
        run_step(stream, x.data(), y);
        return nb::cast(out);
    }
    const OutArray out = checked_out(out_in, y_shape, x);
    run_step(stream, x.data(), out.data());
    return nb::borrow(out_in);
}

NumpyArray process(Stream& stream, nb::handle x_in)
{
    const ModelSpec& spec = stream.model().spec();
    const long long B = stream.batch();
    const FloatArray x = to_floats(x_in, "x_chunk");
    const auto [steps, y_shape] = chunk_shape(spec, B, shape_of(x));
    const long long T = steps;  // a copy: clang 14 lambdas cannot capture a structured binding
    float* y;
    NumpyArray out = new_array(y_shape, &y);
    run(stream, "process", true, [&] { return stream.process(x.data(), y, T); });
    return out;
}

StateShape stream_state_shape(const Stream& stream) { return state_shape(stream.model().spec(), stream.batch(), true); }

nb::object get_state(const Stream& stream)
{
    float *h, *c;
    nb::object state = new_state(stream.model().spec(), stream_state_shape(stream), &h, &c);
    run(stream, "state", false, [&] { return stream.get_state(h, c); });
    return state;
}

void set_state(Stream& stream, nb::handle state)
{
    if (state.is_none()) {
        run(stream, "reset", false, [&] { return stream.reset(); });
        return;
    }
    // Read and checked in full first, so that a refused state changes nothing.
    std::vector<float> h(stream.h_size()), c(stream.c_size());
    read_state(state, stream.model().spec(), stream_state_shape(stream), true, h.data(), c.data());
    run(stream, "state", false, [&] { return stream.set_state(h.data(), c.empty() ? nullptr : c.data()); });
}

}  // namespace

void bind_stream(nb::module_& m)
{
    nb::class_<Stream>(m, "Stream",
                       "Live streams over a unidirectional model: state carried from call to call, every buffer\n"
                       "allocated when the stream is made. Feeding a sequence through step/process in any chunking\n"
                       "gives the outputs of the model on the whole sequence.")
        .def("step", &step, "x"_a.none(), "out"_a.none() = nb::none(),
             "One time step. x: (B, I), or (I,) when B == 1 -> (B, H_out) or (H_out,).\n"
             "With out= (a float32 C-contiguous array of the output's shape) it writes there, returns out,\n"
             "and allocates nothing.")
        .def("process", &process, "x_chunk"_a.none(),
             "T time steps. x_chunk: (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1.")
        .def_prop_rw(
            "state", &get_state, &set_state, nb::arg("state").none(),
            "The state: h of shape (L, B, H_out), or (h, c) for an LSTM, c of shape (L, B, H). Reading gives\n"
            "copies; setting checks every shape first and copies in (None sets zeros).")
        .def(
            "reset",
            [](Stream& stream, nb::handle i) {
                if (i.is_none()) {
                    run(stream, "reset", false, [&] { return stream.reset(); });
                    return;
                }
                const Index row = stream_index(i, stream.batch());
                run(stream, "reset", false, [&] { return stream.reset(row); });
            },
            "i"_a = nb::none(), "Zeros the state of every stream, or of stream i only.")
        .def_prop_ro("batch", &Stream::batch, "Number of independent streams.");
}

}  // namespace streamrnn::python
