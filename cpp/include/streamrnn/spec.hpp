// cpp/include/streamrnn/spec.hpp: ModelSpec, the architecture of a model, and its derived sizes.
// Part of streamrnn, MIT licence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

/// The activation functions a cell may use in place of its own (ONNX's recurrent operators' list).
enum class Activation : std::uint8_t {
    sigmoid,           ///< 1 / (1 + e^-x)
    tanh,              ///< tanh x
    relu,              ///< max(0, x)
    affine,            ///< alpha x + beta
    leaky_relu,        ///< x if x >= 0, else alpha x
    thresholded_relu,  ///< x if x > alpha, else 0
    scaled_tanh,       ///< alpha tanh(beta x)
    hard_sigmoid,      ///< min(max(alpha x + beta, 0), 1)
    elu,               ///< x if x >= 0, else alpha (e^x - 1)
    softsign,          ///< x / (1 + |x|)
    softplus,          ///< log(1 + e^x)
    /// x Phi(x), Phi the normal distribution's CDF (PyTorch's exact GELU): a block's function
    /// only (Sequential), not one of ONNX's cell functions, so no cell or ONNX name takes it.
    gelu,
};

/// A function with its parameters; those it does not take are 0.
struct ActivationFunction {
    Activation kind = Activation::sigmoid;
    float alpha = 0.0f;
    float beta = 0.0f;

    bool operator==(const ActivationFunction& o) const { return kind == o.kind && alpha == o.alpha && beta == o.beta; }
    bool operator!=(const ActivationFunction& o) const { return !(*this == o); }
};

/// ONNX's name of a function: "Sigmoid", "LeakyRelu", ...
const char* activation_name(Activation kind);
/// The inverse of activation_name, ignoring case as ONNX Runtime does: false for an unknown name.
bool parse_activation_name(const std::string& name, Activation& kind);
/// How many of alpha and beta `kind` takes: 0, 1 (alpha) or 2.
int activation_parameter_count(Activation kind);
/// `kind` with ONNX's default alpha and beta (LeakyRelu 0.01; ThresholdedRelu, Elu 1; HardSigmoid
/// 0.2, 0.5; Affine 1, 0; ScaledTanh 1, 1).
ActivationFunction default_parameters(Activation kind);

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
    // ONNX's cell options; their defaults are the cells above.
    bool peepholes = false;     ///< LSTM: i and f add P_i c and P_f c, o adds P_o c' (weight_peephole [3, H])
    bool input_forget = false;  ///< LSTM: f = 1 - i (ONNX Runtime's coupling); W_f and b_f go unused
    /// > 0: every gate's pre-activation is clipped to [-clip, clip] before its function; 0: none.
    /// A float, as ONNX's attribute and the cells' comparisons are.
    float clip = 0.0f;
    /// Empty: the cell's own functions. Else cell_function_count() per direction, forward first,
    /// in ONNX's order: LSTM f (i, f, o), g (the cell input), h (of c'); GRU f (r, z), g (n); RNN f.
    std::vector<ActivationFunction> activations;
    /// The initial state is a parameter: tensors initial_h [L * D, H_out] and (LSTM) initial_c
    /// [L * D, H] follow the cells' tensors, and get gradients when a training forward starts
    /// from them (Model::initial_state). Not for a single cell.
    bool learn_initial_state = false;

    /// What is wrong with the spec, naming the first field out of range; empty when it is valid.
    std::string problem() const;
    /// Raises ArgumentError with problem() when there is one.
    void validate() const;
    /// The one spelling of the options: activations equal to the cell's own are cleared, an
    /// RNN_TANH whose functions are all Relu becomes RNN_RELU.
    void canonicalize();

    int directions() const { return bidirectional ? 2 : 1; }
    int gate_count() const;  ///< 1, 4 or 3
    int gate_rows() const { return gate_count() * hidden_size; }  ///< G
    int output_size() const { return proj_size > 0 ? proj_size : hidden_size; }  ///< H_out
    bool has_cell_state() const { return kind == CellKind::lstm; }
    /// Floats of one layer and direction's initial state: H_out, plus H for an LSTM's c.
    int initial_state_width() const { return output_size() + (has_cell_state() ? hidden_size : 0); }
    /// The functions of a cell: LSTM 3, GRU 2, RNN 1.
    int cell_function_count() const;
    /// Function `index` of `direction` (activations, or the cell's own), of a valid spec.
    ActivationFunction cell_function(int direction, int index) const;
    /// Whether every function is the cell's own (activations empty, or spelling those out).
    bool has_own_functions() const;
    /// Whether any of ONNX's options differs from its default: the cells then run their general
    /// equations (cells/options.hpp), not the fused defaults.
    bool has_cell_options() const;
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
/// Python, and `field` a CellKind, int, bool, float, double or std::vector<ActivationFunction>. The one
/// list of a spec's fields that every reader and writer of specs goes through (model files, the
/// bindings of both backends): the fields every model file has (for_each_base_field), then ONNX's
/// cell options (for_each_option_field), which files of format version 1 lack, then the fields of
/// format version 3 (for_each_state_field).
template <typename Spec, typename Visit>
void for_each_base_field(Spec& spec, Visit&& visit)
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

template <typename Spec, typename Visit>
void for_each_option_field(Spec& spec, Visit&& visit)
{
    visit("peepholes", spec.peepholes);
    visit("input_forget", spec.input_forget);
    visit("clip", spec.clip);
    visit("activations", spec.activations);
}

template <typename Spec, typename Visit>
void for_each_state_field(Spec& spec, Visit&& visit)
{
    visit("learn_initial_state", spec.learn_initial_state);
}

template <typename Spec, typename Visit>
void for_each_field(Spec& spec, Visit&& visit)
{
    for_each_base_field(spec, visit);
    for_each_option_field(spec, visit);
    for_each_state_field(spec, visit);
}

}  // namespace streamrnn
