// tests/cpp/random_values.hpp: reproducible normal(0, 1) test data.
// Part of streamrnn, MIT licence.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

namespace streamrnn::testing {

/// n values drawn from normal(0, 1) with `seed`.
inline std::vector<float> random_values(std::size_t n, unsigned seed)
{
    std::mt19937 engine(seed);
    std::normal_distribution<float> normal;
    std::vector<float> values(n);
    for (float& v : values)
        v = normal(engine);
    return values;
}

}  // namespace streamrnn::testing
