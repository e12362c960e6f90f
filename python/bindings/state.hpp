// python/bindings/state.hpp: recurrent state between Python objects and engine buffers, and the
// shapes of the arrays that whole-sequence and streaming calls take.
// Part of streamrnn, MIT licence.
#pragma once

#include "arrays.hpp"

#include "streamrnn/spec.hpp"

namespace streamrnn::python {

/// Expected state shapes: h, and c for an LSTM (empty otherwise). `batch_axis` is where B sits
/// (or -1), so that an unbatched state, one axis shorter, can be accepted when B == 1.
struct StateShape {
    Shape h;
    Shape c;
    int batch_axis = -1;
};

/// The state shape of a layer model ([L * D, B, ...]) or of a cell ([B, ...]); without the B axis
/// when `batched` is false.
StateShape state_shape(const ModelSpec& spec, long long B, bool batched);

/// Where the arrays of a state are read from: host arrays (this class), or also GPU arrays (the
/// CUDA module's subclass).
struct ArraySource {
    virtual ~ArraySource() = default;
    /// `value` as float32 C-contiguous data and its shape; `keep` receives what owns the data.
    virtual const float* view(nb::handle value, const std::string& name, Shape& shape, nb::object& keep) const;
    /// Copies `count` floats read by view() into a destination buffer.
    virtual void copy(float* to, const float* from, std::size_t count) const;
};

/// Copies `state` into h and c (buffers of the expected sizes) after checking its structure and
/// every shape, so a refused state writes nothing. None leaves the buffers alone.
/// `accept_unbatched`: with B == 1, also take the state without its B axis. `name` is the
/// argument's, for messages ("state", "dstate").
void read_state(nb::handle state, const ModelSpec& spec, const StateShape& shape, bool accept_unbatched, float* h,
                float* c, const std::string& name = "state", const ArraySource& source = ArraySource());

/// A whole-sequence call's x and lengths, checked against the spec: T, B, whether x is batched,
/// y's shape, and the lengths (empty: none).
struct SequenceShape {
    long long T = 0;
    long long B = 0;
    bool batched = false;
    Shape y;
    std::vector<std::int64_t> lengths;

    const std::int64_t* lengths_data() const { return lengths.empty() ? nullptr : lengths.data(); }
};
SequenceShape sequence_shape(const ModelSpec& spec, const Shape& x_shape, nb::handle lengths);

/// The gradient of a whole-sequence output, of shape `got`: shaped like y of the recorded forward
/// (T steps, B rows), batched or (with B == 1) not. Returns whether it is batched; ValueError
/// naming `name` otherwise.
bool check_output_gradient(const ModelSpec& spec, const Shape& got, const char* name, long long T, long long B);
/// x's shape for T steps of B rows (a cell's: B rows), batched or not: the shape of dx.
Shape input_shape(const ModelSpec& spec, long long T, long long B, bool batched);

/// y's shape for a stream's step(x) of B streams: (B, H_out), or (H_out,) for x (I,) with B == 1.
Shape step_output_shape(const ModelSpec& spec, long long B, const Shape& x_shape);
/// Stream i of B for reset(i), negative i counting from the end; IndexError outside [-B, B),
/// TypeError for anything but an integer.
long long stream_index(nb::handle i, long long B);
/// A stream's process(x_chunk): its T, and y's shape (x's, with H_out features).
std::pair<long long, Shape> chunk_shape(const ModelSpec& spec, long long B, const Shape& x_shape);

/// Whether a step of `rows` streams is long enough that releasing the GIL for it pays (above 2^16
/// multiply-adds); below, releasing and retaking it would cost a real share of the step. Inline:
/// it is on the path of every Stream.step.
inline bool step_releases_gil(const ModelSpec& spec, long long rows)
{
    long long work = 0;
    for (int layer = 0; layer < spec.num_layers; ++layer)
        work += static_cast<long long>(spec.gate_rows()) * (spec.layer_input_size(layer) + spec.output_size());
    return work * rows > (1 << 16);
}

/// Threads of whole-sequence calls (streamrnn.set_num_threads).
int sequence_thread_count();

/// New zero state arrays: h, or (h, c) for an LSTM; h and c receive their buffers.
nb::object new_state(const ModelSpec& spec, const StateShape& shape, float** h, float** c);


/// A whole-sequence call on host arrays, for either backend: new NumPy y and state, the initial
/// state read from `state_in` into them, and run(h, c, y) called with the GIL released.
/// Returns (y, state).
template <typename Run>
nb::tuple host_sequence_call(const ModelSpec& spec, const SequenceShape& call, const StateShape& shape,
                             nb::handle state_in, Run run)
{
    float *h, *c, *y;
    nb::object state = new_state(spec, shape, &h, &c);
    read_state(state_in, spec, shape, false, h, c);
    NumpyArray y_out = new_array(call.y, &y);
    {
        nb::gil_scoped_release release;
        run(h, c, y);
    }
    return nb::make_tuple(y_out, state);
}

/// A backward call on host arrays, for either backend: dL/d(final state) read from `dstate_in`
/// (zeros for None), new NumPy dx and dstate0, and run(dh_n, dc_n, dx, dh0, dc0) called with the
/// GIL released (dc_n null unless LSTM). Returns (dx, dstate0).
template <typename Run>
nb::tuple host_backward_call(const ModelSpec& spec, const StateShape& shape, const Shape& x_shape,
                             nb::handle dstate_in, Run run)
{
    std::vector<float> dh_n(static_cast<std::size_t>(element_count(shape.h)));
    std::vector<float> dc_n(static_cast<std::size_t>(element_count(shape.c)));
    read_state(dstate_in, spec, shape, false, dh_n.data(), dc_n.data(), "dstate");
    float *dh0, *dc0, *dx;
    nb::object dstate0 = new_state(spec, shape, &dh0, &dc0);
    NumpyArray dx_out = new_array(x_shape, &dx);
    {
        nb::gil_scoped_release release;
        run(dh_n.data(), dc_n.empty() ? nullptr : dc_n.data(), dx, dh0, dc0);
    }
    return nb::make_tuple(dx_out, dstate0);
}

}  // namespace streamrnn::python
