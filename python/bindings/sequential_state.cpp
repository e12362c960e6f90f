// python/bindings/sequential_state.cpp: a Sequential's recurrent blocks' state between Python and
// the engine. Part of streamrnn, MIT licence.
#include "sequential_state.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>

namespace streamrnn::python {

namespace {

const ModelSpec& spec_of(const Sequential& model, std::size_t r)
{
    return model.blocks()[model.recurrent_blocks()[r]].recurrent->spec();
}

/// The part of `state` for recurrent block r of n: the state itself for one block, else its r-th
/// item, after checking it is a tuple or list of n.
nb::handle part_of(nb::handle state, std::size_t r, std::size_t n, const std::string& name)
{
    if (n == 1)
        return state;
    if (!(nb::isinstance<nb::tuple>(state) || nb::isinstance<nb::list>(state)) || nb::len(state) != n)
        throw ArgumentError(name + ": expected a tuple of " + std::to_string(n) +
                            " states, one per recurrent block, got " + python_type(state));
    return state[r];
}

std::string part_name(const std::string& name, std::size_t r, std::size_t n)
{
    return n == 1 ? name : name + "[" + std::to_string(r) + "]";
}

}  // namespace

ModelSpec io_spec(const Sequential& model)
{
    ModelSpec spec;
    spec.kind = CellKind::rnn_tanh;
    spec.input_size = model.input_size();
    spec.hidden_size = model.output_size();
    spec.batch_first = model.batch_first();
    return spec;
}

BlockStates::BlockStates(const Sequential& model, long long B, bool batched) : model_(model), B_(B)
{
    for (std::size_t r = 0; r < model.recurrent_blocks().size(); ++r) {
        const ModelSpec& spec = spec_of(model, r);
        shapes_.push_back(state_shape(spec, B, batched));
        StateRef ref;
        objects_.push_back(new_state(spec, shapes_.back(), &ref.h, &ref.c));
        refs_.push_back(ref);
    }
}

void BlockStates::read(nb::handle state, const std::string& name)
{
    if (state.is_none())
        return;
    const std::size_t n = refs_.size();
    if (n == 0)
        throw ArgumentError(name + ": this model has no recurrent block, so no state; pass None");
    for (std::size_t r = 0; r < n; ++r)
        read_state(part_of(state, r, n, name), spec_of(model_, r), shapes_[r], false, refs_[r].h, refs_[r].c,
                   part_name(name, r, n));
}

void BlockStates::fill_initial()
{
    for (std::size_t r = 0; r < refs_.size(); ++r)
        model_.blocks()[model_.recurrent_blocks()[r]].recurrent->fill_initial_state(B_, refs_[r].h, refs_[r].c);
}

nb::object BlockStates::object() const
{
    if (objects_.empty())
        return nb::none();
    if (objects_.size() == 1)
        return objects_[0];
    nb::list items;
    for (const nb::object& item : objects_)
        items.append(item);
    return nb::tuple(items);
}

nb::object stream_state_object(const Sequential& model, long long B, const float* h, const float* c)
{
    BlockStates states(model, B, true);
    for (std::size_t r = 0; r < model.recurrent_blocks().size(); ++r) {
        const ModelSpec& spec = spec_of(model, r);
        const std::size_t h_floats = static_cast<std::size_t>(spec.num_layers * B * spec.output_size());
        std::copy_n(h, h_floats, states.refs()[r].h);
        h += h_floats;
        if (spec.has_cell_state()) {
            const std::size_t c_floats = static_cast<std::size_t>(spec.num_layers * B * spec.hidden_size);
            std::copy_n(c, c_floats, states.refs()[r].c);
            c += c_floats;
        }
    }
    return states.object();
}

void read_stream_state(const Sequential& model, long long B, nb::handle state, std::vector<float>& h,
                       std::vector<float>& c)
{
    const std::size_t n = model.recurrent_blocks().size();
    if (n == 0)
        throw ArgumentError("state: this model has no recurrent block, so no state");
    float* h_at = h.data();
    float* c_at = c.data();
    for (std::size_t r = 0; r < n; ++r) {
        const ModelSpec& spec = spec_of(model, r);
        read_state(part_of(state, r, n, "state"), spec, state_shape(spec, B, true), true, h_at, c_at,
                   part_name("state", r, n));
        h_at += spec.num_layers * B * spec.output_size();
        if (spec.has_cell_state())
            c_at += spec.num_layers * B * spec.hidden_size;
    }
}

}  // namespace streamrnn::python
