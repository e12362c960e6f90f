// cpp/src/spec.cpp: ModelSpec validation and the names of cell kinds.
// Part of streamrnn, MIT licence.
#include "streamrnn/spec.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace streamrnn {

const char* kind_name(CellKind kind)
{
    switch (kind) {
    case CellKind::rnn_tanh: return "RNN_TANH";
    case CellKind::rnn_relu: return "RNN_RELU";
    case CellKind::lstm: return "LSTM";
    case CellKind::gru: return "GRU";
    }
    return "?";
}

bool parse_kind_name(const std::string& name, CellKind& kind)
{
    for (CellKind candidate : {CellKind::rnn_tanh, CellKind::rnn_relu, CellKind::lstm, CellKind::gru})
        if (name == kind_name(candidate)) {
            kind = candidate;
            return true;
        }
    return false;
}

CellKind kind_from_name(const std::string& name)
{
    CellKind kind{};
    if (!parse_kind_name(name, kind))
        raise(ErrorKind::argument, "mode: expected one of LSTM, GRU, RNN_TANH, RNN_RELU, got '" + name + "'");
    return kind;
}

namespace {

constexpr Activation all_activations[] = {Activation::sigmoid,     Activation::tanh,
                                          Activation::relu,        Activation::affine,
                                          Activation::leaky_relu,  Activation::thresholded_relu,
                                          Activation::scaled_tanh, Activation::hard_sigmoid,
                                          Activation::elu,         Activation::softsign,
                                          Activation::softplus};

/// Function `index` of a `kind` cell without options.
ActivationFunction own_function(CellKind kind, int index)
{
    switch (kind) {
    case CellKind::rnn_tanh: return {Activation::tanh};
    case CellKind::rnn_relu: return {Activation::relu};
    default: return {index == 0 ? Activation::sigmoid : Activation::tanh};
    }
}

std::string lower(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

}  // namespace

const char* activation_name(Activation kind)
{
    switch (kind) {
    case Activation::sigmoid: return "Sigmoid";
    case Activation::tanh: return "Tanh";
    case Activation::relu: return "Relu";
    case Activation::affine: return "Affine";
    case Activation::leaky_relu: return "LeakyRelu";
    case Activation::thresholded_relu: return "ThresholdedRelu";
    case Activation::scaled_tanh: return "ScaledTanh";
    case Activation::hard_sigmoid: return "HardSigmoid";
    case Activation::elu: return "Elu";
    case Activation::softsign: return "Softsign";
    case Activation::softplus: return "Softplus";
    case Activation::gelu: return "Gelu";
    }
    return "?";
}

bool parse_activation_name(const std::string& name, Activation& kind)
{
    const std::string wanted = lower(name);
    for (Activation candidate : all_activations)
        if (wanted == lower(activation_name(candidate))) {
            kind = candidate;
            return true;
        }
    return false;
}

int activation_parameter_count(Activation kind)
{
    switch (kind) {
    case Activation::affine:
    case Activation::scaled_tanh:
    case Activation::hard_sigmoid: return 2;
    case Activation::leaky_relu:
    case Activation::thresholded_relu:
    case Activation::elu: return 1;
    default: return 0;
    }
}

ActivationFunction default_parameters(Activation kind)
{
    switch (kind) {
    case Activation::leaky_relu: return {kind, 0.01f, 0.0f};
    case Activation::thresholded_relu:
    case Activation::elu: return {kind, 1.0f, 0.0f};
    case Activation::hard_sigmoid: return {kind, 0.2f, 0.5f};
    case Activation::affine: return {kind, 1.0f, 0.0f};
    case Activation::scaled_tanh: return {kind, 1.0f, 1.0f};
    default: return {kind, 0.0f, 0.0f};
    }
}

int ModelSpec::cell_function_count() const
{
    switch (kind) {
    case CellKind::lstm: return 3;
    case CellKind::gru: return 2;
    default: return 1;
    }
}

bool ModelSpec::has_own_functions() const
{
    const int n = cell_function_count();
    for (std::size_t i = 0; i < activations.size(); ++i)
        if (activations[i] != own_function(kind, static_cast<int>(i) % n))
            return false;
    return true;
}

ActivationFunction ModelSpec::cell_function(int direction, int index) const
{
    if (activations.empty())
        return own_function(kind, index);
    return activations[static_cast<std::size_t>(direction * cell_function_count() + index)];
}

bool ModelSpec::has_cell_options() const
{
    return peepholes || input_forget || clip != 0.0f || !has_own_functions();
}

void ModelSpec::canonicalize()
{
    const bool all_relu = !activations.empty() && std::all_of(activations.begin(), activations.end(), [](auto& f) {
        return f == ActivationFunction{Activation::relu};
    });
    if (kind == CellKind::rnn_tanh && all_relu)
        kind = CellKind::rnn_relu;
    if (has_own_functions())
        activations.clear();
}

int ModelSpec::gate_count() const
{
    switch (kind) {
    case CellKind::lstm: return 4;
    case CellKind::gru: return 3;
    default: return 1;
    }
}

// Sizes are bounded so that parameter_count() fits easily in 64 bits.
constexpr int max_size = 1 << 20;
constexpr int max_layers = 1 << 10;

std::string ModelSpec::problem() const
{
    auto size_problem = [](const char* name, int value, int min, int max = max_size) {
        if (value < min || value > max)
            return std::string(name) + ": expected an integer in [" + std::to_string(min) + ", " +
                   std::to_string(max) + "], got " + std::to_string(value);
        return std::string();
    };
    for (std::string problem : {size_problem("input_size", input_size, 1), size_problem("hidden_size", hidden_size, 1),
                                size_problem("num_layers", num_layers, 1, max_layers),
                                size_problem("proj_size", proj_size, 0)})
        if (!problem.empty())
            return problem;
    if (proj_size > 0 && kind != CellKind::lstm)
        return "proj_size: only LSTM supports a projection, got proj_size=" + std::to_string(proj_size);
    if (proj_size >= hidden_size && proj_size > 0)
        return "proj_size: expected proj_size < hidden_size (" + std::to_string(hidden_size) + "), got " +
               std::to_string(proj_size);
    if (!(dropout >= 0.0 && dropout <= 1.0))
        return "dropout: expected a probability in [0, 1], got " + std::to_string(dropout);
    if (is_cell && (num_layers != 1 || bidirectional || residual || proj_size != 0))
        return "a cell has one layer, one direction, no residual and no projection";
    if (kind != CellKind::lstm && (peepholes || input_forget))
        return std::string(peepholes ? "peepholes" : "input_forget") + ": only LSTM has this option, the model is " +
               kind_name(kind);
    if (!(clip >= 0.0f && clip <= std::numeric_limits<float>::max()))
        return "clip: expected a positive finite number (0: no clipping), got " + std::to_string(clip);
    const std::size_t functions = static_cast<std::size_t>(cell_function_count() * directions());
    if (!activations.empty() && activations.size() != functions)
        return "activations: expected " + std::to_string(functions) + " functions (" +
               std::to_string(cell_function_count()) + " per direction), got " + std::to_string(activations.size());
    for (const ActivationFunction& f : activations) {
        const int count = activation_parameter_count(f.kind);
        if (!std::isfinite(f.alpha) || !std::isfinite(f.beta))
            return std::string("activations: ") + activation_name(f.kind) + "'s alpha and beta must be finite";
        if ((count < 1 && f.alpha != 0.0f) || (count < 2 && f.beta != 0.0f))
            return std::string("activations: ") + activation_name(f.kind) + " takes " +
                   (count == 0 ? "no alpha or beta" : "an alpha and no beta");
    }
    for (const ActivationFunction& f : activations)
        if (f.kind == Activation::gelu)
            return "activations: Gelu is a block's function (Sequential), not one of a cell's";
    if (is_cell && learn_initial_state)
        return "learn_initial_state: a cell has no initial state of its own (its state is an argument)";
    if (kind == CellKind::rnn_relu && !has_own_functions())
        return "activations: an RNN_RELU's function is Relu; other functions go with mode RNN_TANH";
    return {};
}

void ModelSpec::validate() const
{
    if (std::string problem = this->problem(); !problem.empty())
        raise(ErrorKind::argument, problem);
}

std::uint64_t ModelSpec::parameter_count() const
{
    // Per layer and direction: W_ih [G, I_l], W_hh [G, H_out], b_ih and b_hh [G], W_hr [P, H],
    // P [3, H].
    const std::uint64_t G = static_cast<std::uint64_t>(gate_rows());
    std::uint64_t count = 0;
    for (int layer = 0; layer < num_layers; ++layer)
        count += G * static_cast<std::uint64_t>(layer_input_size(layer) + output_size()) + (bias ? 2 * G : 0) +
                 (proj_size > 0 ? static_cast<std::uint64_t>(proj_size) * hidden_size : 0) +
                 (peepholes ? 3 * static_cast<std::uint64_t>(hidden_size) : 0);
    if (learn_initial_state)
        count += static_cast<std::uint64_t>(num_layers) * initial_state_width();
    return count * static_cast<std::uint64_t>(directions());
}

namespace {

/// Whether two specs of the same kind and directions run the same functions, spelt out or not.
bool same_functions(const ModelSpec& a, const ModelSpec& b)
{
    if (a.kind != b.kind || a.directions() != b.directions())
        return false;
    for (int direction = 0; direction < a.directions(); ++direction)
        for (int index = 0; index < a.cell_function_count(); ++index)
            if (a.cell_function(direction, index) != b.cell_function(direction, index))
                return false;
    return true;
}

}  // namespace

bool ModelSpec::operator==(const ModelSpec& o) const
{
    return kind == o.kind && input_size == o.input_size && hidden_size == o.hidden_size &&
           num_layers == o.num_layers && proj_size == o.proj_size && bias == o.bias &&
           batch_first == o.batch_first && bidirectional == o.bidirectional && residual == o.residual &&
           reset_after == o.reset_after && dropout == o.dropout && is_cell == o.is_cell &&
           peepholes == o.peepholes && input_forget == o.input_forget && clip == o.clip &&
           learn_initial_state == o.learn_initial_state && same_functions(*this, o);
}

}  // namespace streamrnn
