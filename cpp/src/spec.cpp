// cpp/src/spec.cpp: ModelSpec validation and the names of cell kinds.
// Part of streamrnn, MIT licence.
#include "streamrnn/spec.hpp"

#include "streamrnn/errors.hpp"

#include <cmath>

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
    return {};
}

void ModelSpec::validate() const
{
    if (std::string problem = this->problem(); !problem.empty())
        raise(ErrorKind::argument, problem);
}

std::uint64_t ModelSpec::parameter_count() const
{
    // Per layer and direction: W_ih [G, I_l], W_hh [G, H_out], b_ih and b_hh [G], W_hr [P, H].
    const std::uint64_t G = static_cast<std::uint64_t>(gate_rows());
    std::uint64_t count = 0;
    for (int layer = 0; layer < num_layers; ++layer)
        count += G * static_cast<std::uint64_t>(layer_input_size(layer) + output_size()) + (bias ? 2 * G : 0) +
                 (proj_size > 0 ? static_cast<std::uint64_t>(proj_size) * hidden_size : 0);
    return count * static_cast<std::uint64_t>(directions());
}

bool ModelSpec::operator==(const ModelSpec& o) const
{
    return kind == o.kind && input_size == o.input_size && hidden_size == o.hidden_size &&
           num_layers == o.num_layers && proj_size == o.proj_size && bias == o.bias &&
           batch_first == o.batch_first && bidirectional == o.bidirectional && residual == o.residual &&
           reset_after == o.reset_after && dropout == o.dropout && is_cell == o.is_cell;
}

}  // namespace streamrnn
