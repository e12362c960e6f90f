// cpp/include/streamrnn/spec.hpp: ModelSpec, the architecture of a model, and its derived sizes.
// Part of streamrnn, MIT licence.
#pragma once

#include <cstdint>
#include <string>

namespace streamrnn {

/// The recurrent cell. Names follow PyTorch's `mode` strings.
enum class CellKind {
    rnn_tanh,  ///< h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    rnn_relu,  ///< h' = relu(W_ih x + b_ih + W_hh h + b_hh)
    lstm,      ///< gates i, f, g, o; optional projection h = W_hr (o * tanh(c))
    gru,       ///< gates r, z, n; reset_after selects PyTorch's (true) or Cho et al.'s (false) n
};

/// "LSTM", "GRU", "RNN_TANH", "RNN_RELU".
const char* kind_name(CellKind kind);
/// The inverse of kind_name: false for an unknown name.
bool parse_kind_name(const std::string& name, CellKind& kind);
/// The inverse of kind_name; raises ArgumentError for an unknown name.
CellKind kind_from_name(const std::string& name);

/// Everything that fixes a model's shape and behaviour, apart from its weights.
struct ModelSpec {
    CellKind kind = CellKind::lstm;
    int input_size = 0;     ///< I
    int hidden_size = 0;    ///< H
    int num_layers = 1;     ///< L
    int proj_size = 0;      ///< P; LSTM only, 0 means no projection
    bool bias = true;
    bool batch_first = false;
    bool bidirectional = false;
    bool residual = false;
    bool reset_after = true;  ///< GRU only
    double dropout = 0.0;     ///< between layers, in training only; double, so that 0.1 reads back as 0.1
    /// A single cell (torch.nn.LSTMCell etc.): one layer, one direction, and tensors named
    /// weight_ih / weight_hh / bias_ih / bias_hh without a layer suffix.
    bool is_cell = false;

    /// What is wrong with the spec, naming the first field out of range; empty when it is valid.
    std::string problem() const;
    /// Raises ArgumentError with problem() when there is one.
    void validate() const;

    int directions() const { return bidirectional ? 2 : 1; }
    int gate_count() const;  ///< 1, 4 or 3
    int gate_rows() const { return gate_count() * hidden_size; }  ///< G
    int output_size() const { return proj_size > 0 ? proj_size : hidden_size; }  ///< H_out
    bool has_cell_state() const { return kind == CellKind::lstm; }
    int layer_input_size(int layer) const { return layer == 0 ? input_size : directions() * output_size(); }
    /// Whether layer `layer` adds its input to its output.
    bool residual_at(int layer) const
    {
        return residual && layer_input_size(layer) == directions() * output_size();
    }

    /// Floats of weights in all tensors. validate() bounds every size so that this cannot overflow.
    std::uint64_t parameter_count() const;

    bool operator==(const ModelSpec& other) const;
    bool operator!=(const ModelSpec& other) const { return !(*this == other); }
};

/// Calls visit(name, field) for every field of `spec` (a ModelSpec, or a const one), in the order
/// model files list them; `name` is the field's key in a model file's metadata and its keyword in
/// Python, and `field` a CellKind, int, bool or double. The one list of a spec's fields that every
/// reader and writer of specs goes through (model files, the bindings of both backends).
template <typename Spec, typename Visit>
void for_each_field(Spec& spec, Visit&& visit)
{
    visit("mode", spec.kind);
    visit("input_size", spec.input_size);
    visit("hidden_size", spec.hidden_size);
    visit("num_layers", spec.num_layers);
    visit("proj_size", spec.proj_size);
    visit("bias", spec.bias);
    visit("batch_first", spec.batch_first);
    visit("bidirectional", spec.bidirectional);
    visit("residual", spec.residual);
    visit("reset_after", spec.reset_after);
    visit("is_cell", spec.is_cell);
    visit("dropout", spec.dropout);
}

}  // namespace streamrnn
