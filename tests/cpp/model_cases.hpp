// tests/cpp/model_cases.hpp: architectures that cover every path of a forward (kinds, projection,
// stacks, directions, residual, layouts, lengths, no bias), the inputs to run them on, and a
// comparison of outputs. Part of streamrnn, MIT licence.
#pragma once

#include "random_values.hpp"

#include "streamrnn/model.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace streamrnn::testing {

struct ModelCase {
    CellKind kind;
    int layers;
    bool bidirectional, residual, batch_first, reset_after, with_lengths, bias;
    int proj_size;

    ModelSpec spec(int input_size, int hidden_size) const
    {
        ModelSpec s;
        s.kind = kind;
        s.input_size = input_size;
        s.hidden_size = hidden_size;
        s.num_layers = layers;
        s.proj_size = proj_size;
        s.bias = bias;
        s.batch_first = batch_first;
        s.bidirectional = bidirectional;
        s.residual = residual;
        s.reset_after = reset_after;
        return s;
    }
};

inline const std::vector<ModelCase>& model_cases()
{
    static const std::vector<ModelCase> cases = {
        {CellKind::lstm, 1, false, false, false, true, false, true, 0},
        {CellKind::lstm, 2, true, true, true, true, true, true, 0},
        {CellKind::lstm, 3, false, true, false, true, true, false, 5},
        {CellKind::lstm, 2, true, false, false, true, false, true, 4},
        {CellKind::gru, 2, false, true, false, true, true, true, 0},
        {CellKind::gru, 2, true, false, true, false, true, true, 0},
        {CellKind::gru, 1, false, false, false, false, false, false, 0},
        {CellKind::rnn_tanh, 3, true, true, false, true, true, true, 0},
        {CellKind::rnn_relu, 2, false, false, true, true, false, true, 0},
    };
    return cases;
}

/// A forward's inputs and, from Model::forward, its expected outputs.
struct ForwardCase {
    long long T, B;
    std::vector<float> x, h0, c0, y, h, c;
    std::vector<std::int64_t> lengths;  ///< empty: none

    ForwardCase(const Model& model, long long T_, long long B_, bool with_lengths, unsigned seed) : T(T_), B(B_)
    {
        const ModelSpec& spec = model.spec();
        const long long cells = spec.num_layers * spec.directions();
        x = random_values(std::size_t(T * B * spec.input_size), seed);
        h0 = random_values(std::size_t(cells * B * spec.output_size()), seed + 1);
        c0 = random_values(std::size_t(spec.has_cell_state() ? cells * B * spec.hidden_size : 0), seed + 2);
        if (with_lengths)
            for (long long b = 0; b < B; ++b)
                lengths.push_back((b * 7 + 5) % (T + 1));  // T, 0 and values between
        y.assign(std::size_t(T * B * spec.directions() * spec.output_size()), 0.0f);
        h = h0;
        c = c0;
        model.forward(x.data(), T, B, lengths_data(), y.data(), h.data(), spec.has_cell_state() ? c.data() : nullptr);
    }
    const std::int64_t* lengths_data() const { return lengths.empty() ? nullptr : lengths.data(); }
};

}  // namespace streamrnn::testing

// Outside namespace streamrnn: on ARM, doctest's assertions break into the debugger with an
// unqualified raise(SIGTRAP), which streamrnn::raise would hide there.
inline void check_close(const std::vector<float>& got, const std::vector<float>& expected, float tolerance = 2e-5f)
{
    REQUIRE(got.size() == expected.size());
    float worst = 0.0f;
    for (std::size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(got[i] - expected[i]));
    CHECK(worst < tolerance);
}
