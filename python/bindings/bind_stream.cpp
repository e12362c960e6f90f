// python/bindings/bind_stream.cpp: streamrnn._core.Stream: step, process, state and reset.
// Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "spec.hpp"
#include "sequential_state.hpp"
#include "state.hpp"

#include "streamrnn/chunked.hpp"
#include "streamrnn/errors.hpp"
#include "streamrnn/sequential.hpp"
#include "streamrnn/stream.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>

#include <algorithm>
#include <optional>

namespace streamrnn::python {

namespace {

/// RuntimeError for a call on `stream` (a Stream or a ChunkedStream) that another thread's call
/// held it against.
template <typename AnyStream>
void raise_busy(const AnyStream& stream, const char* call)
{
    const char* holder = stream.busy_with();
    raise(ErrorKind::busy, std::string(call) + ": another thread is in " + (holder ? holder : "a call") +
                               " on this stream, which is for one thread at a time");
}

/// Runs `call` (a stream call returning whether it ran) with the GIL released, or held where the
/// call is too short for releasing it to pay; RuntimeError when another thread holds the stream.
template <typename AnyStream, typename Call>
void run(const AnyStream& stream, const char* name, bool release_gil, Call call)
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

/// The spec whose shapes a stream's calls take.
const ModelSpec& shapes_of(const Stream& stream) { return stream.model().spec(); }
ModelSpec shapes_of(const SequentialStream& stream) { return io_spec(stream.model()); }

/// Whether a step is long enough that releasing the GIL for it pays (step_releases_gil).
bool releases_gil(const Stream& stream) { return step_releases_gil(stream.model().spec(), stream.batch()); }
bool releases_gil(const SequentialStream& stream)
{
    const Sequential& model = stream.model();
    return std::any_of(model.recurrent_blocks().begin(), model.recurrent_blocks().end(), [&](std::size_t k) {
        return step_releases_gil(model.blocks()[k].recurrent->spec(), stream.batch());
    });
}

/// Steps, letting other Python threads run when the step is long enough for that to pay.
template <typename AnyStream>
void run_step(AnyStream& stream, const float* x, float* y)
{
    run(stream, "step", releases_gil(stream), [&] { return stream.step(x, y); });
}

template <typename AnyStream>
nb::object step(AnyStream& stream, nb::handle x_in, nb::handle out_in)
{
    const auto& spec = shapes_of(stream);
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

template <typename AnyStream>
NumpyArray process(AnyStream& stream, nb::handle x_in)
{
    const auto& spec = shapes_of(stream);
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

nb::object get_sequential_state(const SequentialStream& stream)
{
    std::vector<float> h(stream.h_size()), c(stream.c_size());
    run(stream, "state", false, [&] { return stream.get_state(h.data(), c.data()); });
    return stream_state_object(stream.model(), stream.batch(), h.data(), c.data());
}

void set_sequential_state(SequentialStream& stream, nb::handle state)
{
    if (state.is_none()) {
        run(stream, "reset", false, [&] { return stream.reset(); });
        return;
    }
    std::vector<float> h(stream.h_size()), c(stream.c_size());
    read_stream_state(stream.model(), stream.batch(), state, h, c);
    run(stream, "state", false, [&] { return stream.set_state(h.data(), c.data()); });
}

/// reset(i): every stream (None), or stream i.
template <typename AnyStream>
void reset(AnyStream& stream, nb::handle i)
{
    if (i.is_none()) {
        run(stream, "reset", false, [&] { return stream.reset(); });
        return;
    }
    const Index row = stream_index(i, stream.batch());
    run(stream, "reset", false, [&] { return stream.reset(row); });
}

/// A ChunkedStream, and whether its last process() had unbatched input (flush answers alike).
struct PyChunkedStream {
    ChunkedStream stream;
    bool unbatched = false;
};

/// A chunked stream's outputs of `steps` steps, batched or not, with D * H_out features, into a
/// new array; run(y) writes them.
template <typename Run>
NumpyArray chunk_outputs(const PyChunkedStream& s, Index steps, Run run)
{
    const ModelSpec& spec = s.stream.model().spec();
    const long long B = s.stream.batch(), Y = spec.directions() * spec.output_size();
    const Shape y_shape = s.unbatched ? Shape{steps, Y} : spec.batch_first ? Shape{B, steps, Y} : Shape{steps, B, Y};
    float* y;
    NumpyArray out = new_array(y_shape, &y);
    run(y);
    return out;
}

NumpyArray chunked_process(PyChunkedStream& s, nb::handle x_in)
{
    const FloatArray x = to_floats(x_in, "x_chunk");
    const Shape x_shape = shape_of(x);
    const long long T = chunk_shape(s.stream.model().spec(), s.stream.batch(), x_shape).first;
    s.unbatched = x_shape.size() == 2;
    return chunk_outputs(s, s.stream.completed_by(T), [&](float* y) {
        run(s.stream, "process", true, [&] { return s.stream.process(x.data(), T, y) >= 0; });
    });
}

NumpyArray chunked_flush(PyChunkedStream& s)
{
    return chunk_outputs(s, s.stream.pending(), [&](float* y) {
        run(s.stream, "flush", true, [&] { return s.stream.flush(y) >= 0; });
    });
}

}  // namespace

void bind_stream(nb::module_& m)
{
    nb::class_<Stream>(m, "Stream",
                       "Live streams over a unidirectional model: state carried from call to call, every buffer\n"
                       "allocated when the stream is made. Feeding a sequence through step/process in any chunking\n"
                       "gives the outputs of the model on the whole sequence.")
        .def("step", &step<Stream>, "x"_a.none(), "out"_a.none() = nb::none(),
             "One time step. x: (B, I), or (I,) when B == 1 -> (B, H_out) or (H_out,).\n"
             "With out= (a float32 C-contiguous array of the output's shape) it writes there, returns out,\n"
             "and allocates nothing.")
        .def("process", &process<Stream>, "x_chunk"_a.none(),
             "T time steps. x_chunk: (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1.")
        .def_prop_rw(
            "state", &get_state, &set_state, nb::arg("state").none(),
            "The state: h of shape (L, B, H_out), or (h, c) for an LSTM, c of shape (L, B, H). Reading gives\n"
            "copies; setting checks every shape first and copies in (None: the initial state).")
        .def("reset", &reset<Stream>, "i"_a = nb::none(),
             "Every stream back to the model's initial state (zeros unless set), or stream i only.")
        .def_prop_ro("batch", &Stream::batch, "Number of independent streams.");

    nb::class_<SequentialStream>(m, "SequentialStream",
                                 "Live streams through every block of a Sequential, one call per step.")
        .def("step", &step<SequentialStream>, "x"_a.none(), "out"_a.none() = nb::none(),
             "One time step through every block, as Stream.step.")
        .def("process", &process<SequentialStream>, "x_chunk"_a.none(), "T time steps, as Stream.process.")
        .def_prop_rw("state", &get_sequential_state, &set_sequential_state, nb::arg("state").none(),
                     "The recurrent block's state (shaped as a Stream's), or a tuple of the blocks' states.")
        .def("reset", &reset<SequentialStream>, "i"_a = nb::none(),
             "Every stream, or stream i, back to the blocks' initial states.")
        .def_prop_ro("batch", &SequentialStream::batch, "Number of independent streams.");

    nb::class_<PyChunkedStream>(m, "ChunkedStream",
                                "Live streams over a model in chunks with a look-ahead (latency-controlled): process returns\n"
                                "the outputs of the chunks completed so far, flush the rest; fed a sequence in any pieces, the\n"
                                "outputs are those of m(x, chunk=, lookahead=) on the whole of it.")
        .def("process", &chunked_process, "x_chunk"_a.none(),
             "T more steps: x_chunk (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1 -> the\n"
             "outputs completed so far, (T_done, B, D * H_out) (alike), T_done a multiple of the chunk.")
        .def("flush", &chunked_flush,
             "End of input: the outputs of every step not yet returned; then the stream starts afresh.")
        .def_prop_rw(
            "state",
            [](const PyChunkedStream& s) {
                float *h, *c;
                nb::object state = new_state(s.stream.model().spec(),
                                             state_shape(s.stream.model().spec(), s.stream.batch(), true), &h, &c);
                run(s.stream, "state", false, [&] { return s.stream.get_state(h, c); });
                return state;
            },
            [](PyChunkedStream& s, nb::handle state) {
                if (state.is_none()) {
                    run(s.stream, "reset", false, [&] { return s.stream.reset(); });
                    return;
                }
                const ModelSpec& spec = s.stream.model().spec();
                std::vector<float> h(s.stream.h_size()), c(s.stream.c_size());
                read_state(state, spec, state_shape(spec, s.stream.batch(), true), true, h.data(), c.data());
                run(s.stream, "state", false,
                    [&] { return s.stream.set_state(h.data(), c.empty() ? nullptr : c.data()); });
            },
            nb::arg("state").none(),
            "The state, shaped as the whole-sequence state: the forward directions' as carried to the next\n"
            "chunk (setting it sets them), the reverse directions' at the end of their last run.")
        .def(
            "reset",
            [](PyChunkedStream& s, nb::handle i) {
                if (i.is_none()) {
                    run(s.stream, "reset", false, [&] { return s.stream.reset(); });
                    return;
                }
                const Index row = stream_index(i, s.stream.batch());
                run(s.stream, "reset", false, [&] { return s.stream.reset(row); });
            },
            "i"_a = nb::none(),
            "Every stream afresh (state zero, pending steps dropped), or stream i's state zero (its pending\n"
            "steps then start its new sequence).")
        .def_prop_ro("batch", [](const PyChunkedStream& s) { return s.stream.batch(); })
        .def_prop_ro("chunk", [](const PyChunkedStream& s) { return s.stream.chunking().chunk; })
        .def_prop_ro("lookahead", [](const PyChunkedStream& s) { return s.stream.chunking().lookahead; })
        .def_prop_ro("pending", [](const PyChunkedStream& s) { return s.stream.pending(); },
                     "Steps that arrived and whose outputs are not yet returned.");
}

nb::object sequential_stream(std::shared_ptr<Sequential> model, nb::handle batch)
{
    return nb::cast(SequentialStream(std::move(model), static_cast<Index>(to_integer(batch, "batch"))));
}

nb::object chunked_stream(std::shared_ptr<Model> model, nb::handle batch, nb::handle chunk, nb::handle lookahead)
{
    const Chunking chunking{static_cast<Index>(to_integer(chunk, "chunk")),
                            static_cast<Index>(to_integer(lookahead, "lookahead"))};
    return nb::cast(PyChunkedStream{ChunkedStream(std::move(model), static_cast<Index>(to_integer(batch, "batch")),
                                                  chunking)});
}

}  // namespace streamrnn::python
