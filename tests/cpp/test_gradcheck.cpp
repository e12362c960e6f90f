// tests/cpp/test_gradcheck.cpp: Model::backward's gradients against central differences of the float32 forward.
// Part of streamrnn, MIT licence.
#include "model_access.hpp"
#include "model_cases.hpp"

#include "streamrnn/chunked.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace streamrnn;

namespace {

using testing::random_values;

/// The file's one write of a weight: a new version of the weights with one value changed.
void set_parameter(Model& model, std::size_t index, float value)
{
    Trainable::Update update = model.update();
    update.data()[index] = value;
    update.commit();
}

// The loss carries the float32 forward's rounding, about 1e-6 over the small cases' outputs and
// several times that over the batch-split ones'; a central difference D(h) over +-h divides it by
// 2h, and adds a truncation error of h^2 / 6 times the third derivative, which sums over every row
// and step even where the gradient itself cancels. (4 D(h) - D(2h)) / 3 (Richardson) cancels that
// h^2 term, so h can be large enough to keep the rounding small. Weights (uniform within
// 1/sqrt(H) = 0.5) and inputs (normal) are of order 1: one absolute step serves all of them.
// A gradient a passes against the numeric n when
//     |a - n| <= tolerance * max(small_gradient, |a| + |n|),
// 1e-3 absolute where gradients are small (the rounding), 1% of |a| + |n| where they are large.
// Over a dozen seeds and every kernel cap, correct gradients stay within 0.4 of that; a wrong
// term is off by the order of the gradient itself.
constexpr double step = 1e-2;
constexpr double tolerance = 1e-2;
constexpr double small_gradient = 1e-1;
/// RNN relu's step: narrower, so that fewer differences cross a kink (Tally::check). Its cases
/// are the small ones, whose rounding allows it.
constexpr double kink_step = 2.5e-3;

/// A forward's inputs, and the fixed random weights of the loss
///     L = sum(y * r_y) + sum(h_n * r_h) + sum(c_n * r_c),
/// whose gradients dy, dh_n and dc_n are the r's themselves.
struct Problem {
    Index T, B;
    int threads;
    std::vector<float> x, h0, c0, r_y, r_h, r_c;
    std::vector<std::int64_t> lengths;  ///< empty: none
    Chunking chunking{0, 0};            ///< chunk 0: a plain forward, else forward_train_chunked

    Problem(const ModelSpec& spec, Index T_, Index B_, bool with_lengths, int threads_, unsigned seed)
        : T(T_), B(B_), threads(threads_)
    {
        const std::size_t cells = std::size_t(spec.num_layers) * std::size_t(spec.directions());
        const std::size_t rows = std::size_t(T * B), H_out = std::size_t(spec.output_size());
        x = random_values(rows * std::size_t(spec.input_size), seed);
        h0 = random_values(cells * std::size_t(B) * H_out, seed + 1);
        c0 = random_values(spec.has_cell_state() ? cells * std::size_t(B) * std::size_t(spec.hidden_size) : 0,
                           seed + 2);
        r_y = random_values(rows * std::size_t(spec.directions()) * H_out, seed + 3);
        r_h = random_values(h0.size(), seed + 4);
        r_c = random_values(c0.size(), seed + 5);
        // Full rows, empty rows, and rows that end part way, from 2 to T - 1 steps.
        if (with_lengths)
            for (Index b = 0; b < B; ++b)
                lengths.push_back(b % 3 == 0 ? T : b % 3 == 1 ? 0 : 2 + (b / 3) % (T - 2));
    }
};

/// L of a training forward (the function that backward differentiates), summed in double.
double loss(Model& model, const Problem& p)
{
    std::vector<float> y(p.r_y.size()), h = p.h0, c = p.c0;
    const std::int64_t* lengths = p.lengths.empty() ? nullptr : p.lengths.data();
    if (p.chunking.chunk > 0)
        forward_train_chunked(model, p.x.data(), p.T, p.B, lengths, p.chunking, y.data(), h.data(),
                              c.empty() ? nullptr : c.data());
    else
        model.forward_train(p.x.data(), p.T, p.B, lengths, y.data(), h.data(), c.empty() ? nullptr : c.data(),
                            p.threads);
    auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
        return std::inner_product(a.begin(), a.end(), b.begin(), 0.0, std::plus<>(),
                                  [](float u, float v) { return double(u) * double(v); });
    };
    return dot(y, p.r_y) + dot(h, p.r_h) + dot(c, p.r_c);
}

/// The elements of a tensor or input of `size` to check: all, or `most` drawn at random.
std::vector<std::size_t> sample(std::size_t size, std::size_t most, unsigned seed)
{
    std::vector<std::size_t> indices(size);
    std::iota(indices.begin(), indices.end(), std::size_t(0));
    if (size > most) {
        std::shuffle(indices.begin(), indices.end(), std::mt19937(seed));
        indices.resize(most);
    }
    return indices;
}

/// The checks of one tensor or input, reported as one assertion about the worst of them.
struct Tally {
    std::string name;
    std::size_t checked = 0, skipped = 0;
    /// The worst element: its |a - n| over what that may be (below 1 passes), index, a and n.
    double worst = 0.0;
    std::size_t index = 0;
    double analytic = 0.0, numeric = 0.0;

    /// One element: `value` where it is, `base` the loss there, `loss_at(v)` the loss with the
    /// element at v. `kinks`: the forward is only piecewise smooth (RNN relu).
    template <typename LossAt>
    void check(std::size_t at, float value, double gradient, double base, bool kinks, LossAt loss_at)
    {
        // D(s), and how far the one-sided differences disagree, over the steps actually taken
        // after rounding to float.
        auto difference = [&](double s) {
            const float up = value + float(s), down = value - float(s);
            const double loss_up = loss_at(up), loss_down = loss_at(down);
            const double forward = (loss_up - base) / (double(up) - double(value));
            const double backward = (base - loss_down) / (double(value) - double(down));
            return std::pair((loss_up - loss_down) / (double(up) - double(down)), std::abs(forward - backward));
        };
        const double h = kinks ? kink_step : step;
        const auto [narrow, narrow_gap] = difference(h);
        const auto [wide, wide_gap] = difference(2 * h);
        const double measured = (4 * narrow - wide) / 3;
        const double allowed = tolerance * std::max(small_gradient, std::abs(gradient) + std::abs(measured));
        // Where a step carries a relu's pre-activation across 0, the differences mix the slopes on
        // either side: the one-sided ones then disagree by the jump in slope (at a smooth point,
        // by s times the second derivative), and D(h) and D(2h) disagree too. An element where
        // any of them disagree by more than it may be off is skipped, not misjudged: about one in
        // twenty of RNN relu's, at worst a third of a case's (check_gradients bounds how many).
        if (kinks && std::max({narrow_gap, wide_gap, std::abs(narrow - wide)}) > allowed) {
            ++skipped;
            return;
        }
        ++checked;
        const double error = std::abs(gradient - measured) / allowed;
        if (error >= worst) {
            worst = error;
            index = at;
            analytic = gradient;
            numeric = measured;
        }
    }

    void report() const
    {
        CHECK_MESSAGE(worst < 1.0, name << "[" << index << "]: backward gives " << analytic
                                        << ", the differences " << numeric);
    }
};

/// Checks backward's weight, input and initial-state gradients for a model of `spec` over T
/// steps of B rows, at most `most` elements of each tensor or input.
void check_gradients(const ModelSpec& spec, Index T, Index B, bool with_lengths, int threads, std::size_t most,
                     unsigned seed, Chunking chunking = {0, 0})
{
    // Dropout (off in spec) would draw new masks every forward: the differences would measure them.
    REQUIRE(spec.dropout == 0.0);
    Model model(spec, seed);
    Problem p(spec, T, B, with_lengths, threads, seed + 1);
    p.chunking = chunking;
    const bool lstm = spec.has_cell_state();
    // Relu, clipping and the piecewise functions are smooth only piecewise; so is softsign's
    // slope, whose jump in curvature at 0 puts the differences near it off by far more than s^2.
    bool kinks = spec.kind == CellKind::rnn_relu || spec.clip > 0.0;
    for (const ActivationFunction& f : spec.activations)
        kinks = kinks || f.kind == Activation::relu || f.kind == Activation::leaky_relu ||
                f.kind == Activation::thresholded_relu || f.kind == Activation::hard_sigmoid ||
                f.kind == Activation::elu || f.kind == Activation::softsign;

    const double base = loss(model, p);
    std::vector<float> dx(p.x.size()), dh0(p.h0.size()), dc0(p.c0.size());
    model.zero_grad();
    model.backward(p.r_y.data(), p.r_h.data(), lstm ? p.r_c.data() : nullptr, dx.data(), dh0.data(),
                   lstm ? dc0.data() : nullptr, threads);
    if (threads > 1)
        CHECK_MESSAGE(ModelAccess::record_parts(model) > 1, "the batch was not split across threads");
    const std::vector<float> gradients(model.gradients().begin(), model.gradients().end());

    std::size_t checked = 0, skipped = 0;
    auto finish = [&](const Tally& tally) {
        tally.report();
        checked += tally.checked;
        skipped += tally.skipped;
    };
    for (const TensorInfo& tensor : model.tensors()) {
        Tally tally{tensor.name};
        for (std::size_t i : sample(tensor.size, most, seed + unsigned(tensor.offset))) {
            const std::size_t at = tensor.offset + i;
            const float value = model.parameters()[at];
            tally.check(i, value, gradients[at], base, kinks, [&](float v) {
                set_parameter(model, at, v);
                return loss(model, p);
            });
            set_parameter(model, at, value);
        }
        finish(tally);
    }
    auto check_input = [&](const char* name, std::vector<float> Problem::*input, const std::vector<float>& analytic) {
        Problem moved = p;
        std::vector<float>& values = moved.*input;
        Tally tally{name};
        for (std::size_t i : sample(values.size(), most, seed)) {
            const float value = values[i];
            tally.check(i, value, analytic[i], base, kinks, [&](float v) {
                values[i] = v;
                return loss(model, moved);
            });
            values[i] = value;
        }
        finish(tally);
    };
    check_input("dx", &Problem::x, dx);
    check_input("dh0", &Problem::h0, dh0);
    if (lstm)
        check_input("dc0", &Problem::c0, dc0);
    // Skips must stay the exception, or the check would pass by checking little.
    CHECK(skipped <= checked);
}

struct Kind {
    std::string name;
    CellKind kind;
    bool reset_after;
    int proj_size;
};

const Kind kinds[] = {
    {"RNN tanh", CellKind::rnn_tanh, true, 0},     {"RNN relu", CellKind::rnn_relu, true, 0},
    {"LSTM", CellKind::lstm, true, 0},             {"LSTM with projection", CellKind::lstm, true, 3},
    {"GRU reset-after", CellKind::gru, true, 0},   {"GRU reset-before", CellKind::gru, false, 0},
};

constexpr int hidden_size = 4;

/// The options around a cell (model_cases.hpp's ModelCase, and the cell form); input_size 0 means
/// the cell's output size, so that a residual join applies at the first layer too.
struct Options {
    std::string name;
    int layers;
    bool bidirectional, residual, batch_first, bias, lengths, is_cell;
    int input_size;

    ModelSpec spec(const Kind& kind) const
    {
        const testing::ModelCase shape{kind.kind, layers, bidirectional, residual, batch_first, kind.reset_after,
                                       lengths, bias, kind.proj_size};
        const int output_size = kind.proj_size > 0 ? kind.proj_size : hidden_size;
        ModelSpec s = shape.spec(input_size > 0 ? input_size : output_size, hidden_size);
        s.is_cell = is_cell;
        return s;
    }
};

const Options options[] = {
    {"one layer", 1, false, false, false, true, false, false, 3},
    {"one layer without bias, with lengths", 1, false, false, false, false, true, false, 3},
    {"two bidirectional layers", 2, true, false, false, true, false, false, 3},
    {"two residual layers, batch-first", 2, false, true, true, true, false, false, 0},
    {"two bidirectional residual layers without bias, batch-first, with lengths", 2, true, true, true, false, true,
     false, 3},
    {"a cell", 1, false, false, false, true, false, true, 3},
};

}  // namespace

TEST_CASE("backward's gradients agree with central differences of the forward for every cell and option")
{
    const std::size_t every = std::numeric_limits<std::size_t>::max();  // every element is checked
    unsigned seed = 1;
    for (const Kind& kind : kinds)
        for (const Options& option : options) {
            if (option.is_cell && kind.proj_size > 0)
                continue;  // a cell has no projection
            INFO(kind.name);
            INFO(option.name);
            check_gradients(option.spec(kind), 5, 3, option.lengths, 1, every, seed += 20);
        }
}

TEST_CASE("backward's gradients agree with central differences of the forward when two threads split the batch")
{
    // Model::training_parts splits a batch of 16 rows or more per thread over 8 steps or more. A
    // dozen elements of each tensor and input: what the split can break is their sums over rows.
    const Options option{"two bidirectional residual layers, batch-first, with lengths", 2, true, true, true, true,
                         true, false, 3};
    unsigned seed = 500;
    INFO(option.name);
    for (const Kind& kind : kinds) {
        // Over 256 rows nearly every difference of RNN relu crosses a kink; the split is the same
        // code for every cell, and relu's cell is checked above.
        if (kind.kind == CellKind::rnn_relu)
            continue;
        INFO(kind.name);
        check_gradients(option.spec(kind), 8, 32, option.lengths, 2, 12, seed += 20);
    }
}

TEST_CASE("backward's gradients agree with central differences of the chunked forward (latency-controlled)")
{
    // Windows that overlap (a look-ahead past the chunk), that do not, and a last chunk cut short;
    // with lengths, rows end inside a chunk, inside a look-ahead, or have no steps.
    const std::size_t every = std::numeric_limits<std::size_t>::max();
    const Options stacked{"two bidirectional layers", 2, true, false, false, true, false, false, 3};
    const Options joined{"two bidirectional residual layers without bias, batch-first, with lengths", 2, true, true,
                         true, false, true, false, 3};
    unsigned seed = 900;
    for (const Kind& kind : kinds)
        for (const Options* option : {&stacked, &joined})
            for (const Chunking chunking : {Chunking{2, 3}, Chunking{3, 0}}) {
                INFO(kind.name);
                INFO(option->name);
                INFO("chunk " << chunking.chunk << ", lookahead " << chunking.lookahead);
                check_gradients(option->spec(kind), 7, 3, option->lengths, 1, every, seed += 20, chunking);
            }
}

TEST_CASE("backward's gradients agree with central differences of the forward with ONNX's cell options")
{
    const std::size_t every = std::numeric_limits<std::size_t>::max();
    const auto with = [](Activation kind, float alpha = 0.0f, float beta = 0.0f) {
        return ActivationFunction{kind, alpha, beta};
    };
    struct Case {
        std::string name;
        Kind kind;
        bool peepholes, input_forget;
        float clip;
        std::vector<ActivationFunction> forward, reverse;  // a direction's functions; empty: the cell's own
    };
    const Kind lstm{"LSTM", CellKind::lstm, true, 0}, projected{"LSTM with projection", CellKind::lstm, true, 3};
    const Kind gru_after{"GRU reset-after", CellKind::gru, true, 0}, gru_before{"GRU reset-before", CellKind::gru, false, 0};
    const Kind rnn{"RNN", CellKind::rnn_tanh, true, 0};
    const Case cases[] = {
        {"peepholes", lstm, true, false, 0.0, {}, {}},
        {"peepholes, projection, coupled gates", projected, true, true, 0.0, {}, {}},
        {"clip", lstm, false, false, 0.6, {}, {}},
        {"smooth functions", lstm, true, false, 0.0,
         {with(Activation::softsign), with(Activation::scaled_tanh, 1.5f, 0.7f), with(Activation::softplus)},
         {with(Activation::sigmoid), with(Activation::affine, 0.8f, 0.1f), with(Activation::tanh)}},
        {"piecewise functions, clip", lstm, false, true, 0.8,
         {with(Activation::hard_sigmoid, 0.3f, 0.5f), with(Activation::leaky_relu, 0.1f), with(Activation::elu, 0.9f)},
         {with(Activation::hard_sigmoid, 0.3f, 0.5f), with(Activation::relu), with(Activation::thresholded_relu, 0.1f)}},
        {"GRU functions", gru_after, false, false, 0.0, {with(Activation::softsign), with(Activation::softplus)},
         {with(Activation::sigmoid), with(Activation::scaled_tanh, 1.2f, 0.9f)}},
        {"GRU functions, clip", gru_before, false, false, 0.7, {with(Activation::softsign), with(Activation::elu, 0.5f)},
         {with(Activation::hard_sigmoid, 0.25f, 0.5f), with(Activation::tanh)}},
        {"RNN functions, clip", rnn, false, false, 0.9, {with(Activation::softsign)}, {with(Activation::leaky_relu, 0.2f)}},
    };
    const Options option{"two bidirectional layers without bias, with lengths", 2, true, false, false, false, true,
                         false, 3};
    unsigned seed = 900;
    for (const Case& c : cases) {
        INFO(c.name);
        ModelSpec spec = option.spec(c.kind);
        spec.peepholes = c.peepholes;
        spec.input_forget = c.input_forget;
        spec.clip = c.clip;
        spec.activations = c.forward;
        spec.activations.insert(spec.activations.end(), c.reverse.begin(), c.reverse.end());
        REQUIRE(spec.has_cell_options());
        check_gradients(spec, 5, 3, option.lengths, 1, every, seed += 20);
        INFO("in chunks of 2 with a look-ahead of 1");
        check_gradients(spec, 5, 3, option.lengths, 1, every, seed += 20, Chunking{2, 1});
    }
}
