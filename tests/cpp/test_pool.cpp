// tests/cpp/test_pool.cpp: a Pool gives each of its streams what a Stream of one row would, under
// random interleavings of its calls; refused calls change nothing; snapshots move streams between
// pools; nothing allocates. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"
#include "streamrnn/pool.hpp"
#include "streamrnn/stream.hpp"

#include "count_allocations.hpp"
#include "random_values.hpp"
#include "spec_of.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <vector>

using namespace streamrnn;
using testing::random_values;

namespace {

std::vector<ModelSpec> pool_specs()
{
    std::vector<ModelSpec> specs;
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::gru, CellKind::rnn_tanh, CellKind::rnn_relu}) {
        ModelSpec spec;
        spec.kind = kind;
        spec.input_size = 5;
        spec.hidden_size = 7;
        spec.num_layers = 2;
        specs.push_back(spec);
    }
    specs[0].proj_size = 5;  // LSTM with projection and residual joins
    specs[0].residual = true;
    specs[2].reset_after = false;  // Cho's GRU, batch-first
    specs[2].batch_first = true;
    specs[3].num_layers = 1;
    ModelSpec options = specs[0];  // ONNX's options: the general cells
    options.proj_size = 0;
    options.residual = false;
    options.peepholes = true;
    options.clip = 0.8f;
    specs.push_back(options);
    return specs;
}

double worst_difference(const std::vector<float>& a, const std::vector<float>& b)
{
    REQUIRE(a.size() == b.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(double(a[i]) - double(b[i]));
        if (!(d <= worst))
            worst = d;  // a NaN counts as the worst
    }
    return worst;
}

}  // namespace

TEST_CASE("every stream of a pool gets what a Stream of one row gets, under random interleavings of the pool's calls")
{
    for (const ModelSpec& spec : pool_specs()) {
        CAPTURE(kind_name(spec.kind));
        CAPTURE(spec.batch_first);
        auto model = std::make_shared<const Model>(spec, 11);
        const Index I = spec.input_size, H_out = spec.output_size(), capacity = 6;
        Pool pool(model, capacity);
        Pool other(model, 3);  // snapshots move to it and back
        std::map<StreamId, Stream> references;
        std::mt19937 random(5);
        double worst = 0.0;
        auto reference_of = [&](StreamId id) -> Stream& { return references.at(id); };
        auto open_reference = [&](StreamId id, const Stream* from) {
            Stream stream(model, 1);
            if (from) {
                std::vector<float> h(from->h_size()), c(from->c_size());
                from->get_state(h.data(), c.data());
                stream.set_state(h.data(), c.data());
            }
            references.emplace(id, std::move(stream));
        };
        for (int round = 0; round < 300; ++round) {
            std::vector<StreamId> open;
            for (const auto& entry : references)
                open.push_back(entry.first);
            std::shuffle(open.begin(), open.end(), random);
            const int action = int(random() % 10);
            if (open.empty() || (action == 0 && Index(open.size()) < capacity)) {
                StreamId id;
                REQUIRE(pool.open(&id));
                open_reference(id, nullptr);
            } else if (action == 1) {
                REQUIRE(pool.close(open[0]));
                references.erase(open[0]);
            } else if (action == 2) {
                REQUIRE(pool.reset(open.data(), 1));
                reference_of(open[0]).reset();
            } else if (action == 3 && Index(open.size()) < capacity) {
                StreamId id;
                REQUIRE(pool.fork(open[0], &id));
                open_reference(id, &reference_of(open[0]));
            } else if (action == 4) {
                // Out to another pool and back: the stream's id changes, its state does not.
                std::vector<unsigned char> bytes(pool.snapshot_size());
                REQUIRE(pool.snapshot(open[0], bytes.data(), bytes.size()));
                StreamId moved, back;
                REQUIRE(other.restore(bytes.data(), bytes.size(), &moved));
                REQUIRE(other.snapshot(moved, bytes.data(), bytes.size()));
                REQUIRE(other.close(moved));
                REQUIRE(pool.close(open[0]));
                REQUIRE(pool.restore(bytes.data(), bytes.size(), &back));
                auto node = references.extract(open[0]);
                node.key() = back;
                references.insert(std::move(node));
            } else {
                // A step or a chunk of a random subset, in a random order.
                const Index n = 1 + Index(random() % open.size()), T = action >= 8 ? 1 + Index(random() % 5) : 1;
                const std::vector<StreamId> ids(open.begin(), open.begin() + n);
                const std::vector<float> x = random_values(std::size_t(T * n * I), unsigned(round));
                std::vector<float> y(std::size_t(T * n * H_out)), expected(y.size());
                REQUIRE((T == 1 ? pool.step(ids.data(), n, x.data(), y.data())
                                : pool.process(ids.data(), n, x.data(), y.data(), T)));
                const bool batch_first = spec.batch_first && T > 1;
                for (Index i = 0; i < n; ++i) {
                    std::vector<float> x_i(std::size_t(T * I)), y_i(std::size_t(T * H_out));
                    for (Index t = 0; t < T; ++t)
                        std::copy_n(&x[std::size_t((batch_first ? i * T + t : t * n + i) * I)], I, &x_i[std::size_t(t * I)]);
                    reference_of(ids[std::size_t(i)]).process(x_i.data(), y_i.data(), T);
                    for (Index t = 0; t < T; ++t)
                        std::copy_n(&y_i[std::size_t(t * H_out)], H_out,
                                    &expected[std::size_t((batch_first ? i * T + t : t * n + i) * H_out)]);
                }
                worst = std::max(worst, worst_difference(y, expected));
            }
            CHECK(pool.size() == Index(references.size()));
        }
        // The states too, stream by stream.
        for (auto& [id, stream] : references) {
            std::vector<float> h(pool.h_size()), c(pool.c_size()), h_ref(h.size()), c_ref(c.size());
            REQUIRE(pool.get_state(id, h.data(), c.data()));
            stream.get_state(h_ref.data(), c_ref.data());
            worst = std::max({worst, worst_difference(h, h_ref), worst_difference(c, c_ref)});
        }
        CHECK(worst <= 2e-6);
    }
}

TEST_CASE("ids are never reused; unknown and repeated ids, a full pool and bad snapshots refuse the call and change nothing")
{
    ModelSpec spec = testing::spec_of(CellKind::lstm, 3, 4, 1);
    auto model = std::make_shared<const Model>(spec, 2);
    Pool pool(model, 2);
    StreamId a, b, c;
    REQUIRE(pool.open(&a));
    REQUIRE(pool.open(&b));
    CHECK(pool.open(&c).status == PoolStatus::full);
    CHECK(pool.fork(a, &c).status == PoolStatus::full);
    REQUIRE(pool.close(a));
    CHECK(pool.close(a).status == PoolStatus::unknown_id);
    // The value a free slot holds is no stream's id.
    CHECK(pool.close(~StreamId(0)).status == PoolStatus::unknown_id);
    CHECK(!pool.contains(~StreamId(0)));
    REQUIRE(pool.open(&c));
    CHECK(c != a);
    CHECK(c != b);
    CHECK(!pool.contains(a));
    std::vector<StreamId> listed(2);
    CHECK(pool.ids(listed.data(), 2) == 2);
    CHECK(std::is_sorted(listed.begin(), listed.end()));

    const std::vector<float> x = random_values(6, 1);
    std::vector<float> y(8), h_before(4), h_after(4);
    REQUIRE(pool.step(&b, 1, x.data(), y.data()));
    REQUIRE(pool.get_state(b, h_before.data(), nullptr));
    const StreamId unknown[] = {b, a}, repeated[] = {b, b};
    const PoolResult refused = pool.step(unknown, 2, x.data(), y.data());
    CHECK(refused.status == PoolStatus::unknown_id);
    CHECK(refused.at == 1);
    CHECK(pool.step(repeated, 2, x.data(), y.data()).status == PoolStatus::repeated_id);
    CHECK(pool.reset(unknown, 2).status == PoolStatus::unknown_id);
    REQUIRE(pool.get_state(b, h_after.data(), nullptr));
    CHECK(h_after == h_before);
    CHECK(pool.get_state(a, h_after.data(), nullptr).status == PoolStatus::unknown_id);

    // Snapshots: any changed or missing byte, another architecture, other weights.
    std::vector<unsigned char> bytes(pool.snapshot_size());
    REQUIRE(pool.snapshot(b, bytes.data(), bytes.size()));
    REQUIRE(pool.close(c));
    for (std::size_t at : {std::size_t(0), std::size_t(9), std::size_t(30), bytes.size() / 2, bytes.size() - 1}) {
        std::vector<unsigned char> changed = bytes;
        changed[at] ^= 1;
        StreamId id;
        CHECK(pool.restore(changed.data(), changed.size(), &id).status == PoolStatus::bad_snapshot);
    }
    StreamId id;
    CHECK(pool.restore(bytes.data(), bytes.size() - 1, &id).status == PoolStatus::bad_snapshot);
    CHECK(pool.restore(bytes.data(), 10, &id).status == PoolStatus::bad_snapshot);
    ModelSpec wider = spec;
    wider.hidden_size = 5;
    Pool other_architecture(std::make_shared<const Model>(wider, 2), 1);
    CHECK(other_architecture.restore(bytes.data(), bytes.size(), &id).status == PoolStatus::other_model);
    Pool other_weights(std::make_shared<const Model>(spec, 3), 1);
    CHECK(other_weights.restore(bytes.data(), bytes.size(), &id).status == PoolStatus::other_weights);
    CHECK(pool.size() == 1);
    REQUIRE(pool.restore(bytes.data(), bytes.size(), &id));
    REQUIRE(pool.get_state(id, h_after.data(), nullptr));
    CHECK(h_after == h_before);
    // Weights loaded into the model: its snapshots no longer restore.
    auto trained = std::make_shared<Model>(spec, 2);
    Pool changing(trained, 2);
    REQUIRE(changing.restore(bytes.data(), bytes.size(), &id));
    const Model reloaded(spec, 4);
    trained->set_parameters(reloaded.weights().data());
    CHECK(changing.restore(bytes.data(), bytes.size(), &id).status == PoolStatus::other_weights);
    CHECK_THROWS_AS(Pool(model, 0), ArgumentError);
}

TEST_CASE("a pool's calls allocate nothing and lock nothing once it exists, failing ones included")
{
    for (const ModelSpec& spec : pool_specs()) {
        CAPTURE(kind_name(spec.kind));
        auto model = std::make_shared<const Model>(spec, 3);
        Pool pool(model, 8);
        const Index I = spec.input_size, H_out = spec.output_size(), T = 20;
        std::vector<StreamId> ids(8);
        const std::vector<float> x = random_values(std::size_t(T * 8 * I), 4);
        std::vector<float> y(std::size_t(T * 8 * H_out)), h(pool.h_size()), c(pool.c_size());
        std::vector<unsigned char> bytes(pool.snapshot_size());
        StreamId fork, restored;
        REQUIRE(pool.open(&ids[0]));
        REQUIRE(pool.snapshot(ids[0], bytes.data(), bytes.size()));  // hashes the weights: once
        const long allocations = testing::allocation_count(), locks = testing::lock_count();
        for (Index i = 1; i < 6; ++i)
            REQUIRE(pool.open(&ids[std::size_t(i)]));
        for (Index n : {Index(1), Index(3), Index(6)}) {
            REQUIRE(pool.step(ids.data(), n, x.data(), y.data()));
            REQUIRE(pool.process(ids.data(), n, x.data(), y.data(), T));
        }
        REQUIRE(pool.get_state(ids[1], h.data(), c.data()));
        REQUIRE(pool.set_state(ids[2], h.data(), c.data()));
        REQUIRE(pool.reset(ids.data(), 3));
        REQUIRE(pool.fork(ids[1], &fork));
        REQUIRE(pool.snapshot(ids[1], bytes.data(), bytes.size()));
        REQUIRE(pool.restore(bytes.data(), bytes.size(), &restored));
        REQUIRE(pool.close(fork));
        CHECK(pool.step(&fork, 1, x.data(), y.data()).status == PoolStatus::unknown_id);
        CHECK(testing::allocation_count() == allocations);
        CHECK(testing::lock_count() == locks);
    }
}

TEST_CASE("a pool refuses a bidirectional model")
{
    ModelSpec spec = testing::spec_of(CellKind::gru, 2, 3, 1);
    spec.bidirectional = true;
    CHECK_THROWS_AS(Pool(std::make_shared<const Model>(spec, 1), 4), ArgumentError);
}
