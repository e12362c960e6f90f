// tests/cpp/test_gemm.cpp: the packed-weights kernel against Eigen's product, over the shapes its
// tiles and panels cut unevenly. Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "kernels/gemm.hpp"
#include "kernels/panel_kernels.hpp"

#include "random_values.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

using namespace streamrnn;

namespace {

// Asked during this file's static initialisation, before the library's own (it is linked after):
// the answer must be the one every later call gets (B10: it was a constant initialised there).
const bool kernels_at_static_init = PackedWeights::available();

}  // namespace

TEST_CASE("Whether the packed kernels exist is known already during static initialisation")
{
    CHECK(kernels_at_static_init == (panel_kernels() != nullptr));
}

TEST_CASE("The matrix kernels are the widest that the CPU runs, within STREAMRNN_KERNELS")
{
    const PanelKernels* kernels = panel_kernels();
    const std::string name = kernels ? kernels->name : "none";
    MESSAGE("matrix kernels: " << name);
    CHECK(PackedWeights::panel_width() == (kernels ? kernels->panel_width : 0));
    const char* cap_value = std::getenv("STREAMRNN_KERNELS");
    const std::string cap = cap_value ? cap_value : "";
    if (cap == "none")
        CHECK(name == "none");
#if defined(__x86_64__) && defined(__GNUC__)
    // GCC and Clang on x86-64 build both (cpp/CMakeLists.txt), whatever the build's own flags.
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (cap != "none" && cap != "avx2" && __builtin_cpu_supports("avx512f"))
        CHECK(name == "avx512");
    else if (cap != "none" && avx2)
        CHECK(name == "avx2");
    else
        CHECK(name == "none");
#endif
}

TEST_CASE("PackedWeights multiplies as Eigen does, for every remainder of rows, panels and depth")
{
    if (!PackedWeights::available()) {
        MESSAGE("no packed kernel in this build (it needs AVX2 with FMA, or AVX-512)");
        return;
    }
    const Index P = PackedWeights::panel_width();
    for (Index N : {Index(1), P - 1, P, 3 * P + 5})
        for (Index K : {Index(1), Index(7), Index(64)})
            for (Index M : {Index(1), Index(5), Index(13), Index(40), Index(100)})
                for (int start = 0; start < 3; ++start) {
                    // 0: c = a W^T; 1: c += a W^T; 2: c = a W^T + bias.
                    const bool accumulate = start == 1, biased = start == 2;
                    CAPTURE(N);
                    CAPTURE(K);
                    CAPTURE(M);
                    CAPTURE(start);
                    // a and c with row pitches wider than their rows, as the engine's views have.
                    const auto a_values = testing::random_values(static_cast<std::size_t>(M * (K + 3)), 1);
                    const auto w_values = testing::random_values(static_cast<std::size_t>(N * K), 2);
                    const auto c_values = testing::random_values(static_cast<std::size_t>(M * (N + 2)), 3);
                    const auto bias = testing::random_values(static_cast<std::size_t>(N), 7);
                    const ConstMatMap a = mat(a_values.data(), M, K, K + 3), w = mat(w_values.data(), N, K);
                    PackedWeights packed(N, K), from_transpose(N, K);
                    packed.pack(w);
                    // The same W read through a transposed view (as the backward pass packs).
                    const Matrix w_t = w.transpose();
                    from_transpose.pack(Strided::of(mat(w_t.data(), K, N)).transposed());
                    for (Index first = 0; first < N; first += P) {
                        const Index cols = N - first;
                        std::vector<float> c_data = c_values;
                        MatMap c = mat(c_data.data(), M, cols, N + 2);
                        Matrix expected = accumulate ? Matrix(c) : Matrix::Zero(M, cols);
                        expected.noalias() += a * w.middleRows(first, cols).transpose();
                        if (biased)
                            expected.rowwise() += mat(bias.data() + first, 1, cols).row(0);
                        const float* b = biased ? bias.data() + first : nullptr;
                        std::vector<float> c_twin = c_data;
                        from_transpose.multiply_transposed(Strided::of(a), first, mat(c_twin.data(), M, cols, N + 2),
                                                           accumulate, b);
                        packed.multiply_transposed(Strided::of(a), first, c, accumulate, b);
                        CHECK(c_twin == c_data);
                        CHECK((c - expected).cwiseAbs().maxCoeff() <= 1e-4f * std::max(1.0f, float(K)));
                        // Nothing past the product's columns is written.
                        for (Index m = 0; m < M; ++m)
                            for (Index j = cols; j < N + 2; ++j)
                                CHECK(c_data[static_cast<std::size_t>(m * (N + 2) + j)]
                                      == c_values[static_cast<std::size_t>(m * (N + 2) + j)]);
                    }
                }
}

TEST_CASE("row_times multiplies one row as Eigen does, where it has a kernel, and declines elsewhere")
{
    const Index width = PackedWeights::available() ? PackedWeights::panel_width() / 2 : 0;  // one vector
    for (Index vectors = 1; vectors <= 9; ++vectors)
        for (Index K : {Index(1), Index(2), Index(7), Index(32)})
            for (bool accumulate : {false, true}) {
                CAPTURE(vectors);
                CAPTURE(K);
                CAPTURE(accumulate);
                const Index cols = std::max<Index>(vectors * width, 3), pitch = cols + 5;
                const auto a = testing::random_values(static_cast<std::size_t>(K), 4);
                const auto w = testing::random_values(static_cast<std::size_t>(K * pitch), 5);
                std::vector<float> out = testing::random_values(static_cast<std::size_t>(cols + 1), 6);
                const std::vector<float> before = out;
                Matrix expected = accumulate ? Matrix(mat(before.data(), 1, cols)) : Matrix::Zero(1, cols);
                expected.noalias() += mat(a.data(), 1, K) * mat(w.data(), K, cols, pitch);
                const bool done = row_times(a.data(), K, w.data(), pitch, cols, out.data(), accumulate);
                CHECK(done == (width > 0 && vectors <= 8));
                if (done)
                    CHECK((mat(out.data(), 1, cols) - expected).cwiseAbs().maxCoeff() <= 1e-5f * float(K));
                else
                    CHECK(out == before);  // declined: nothing written
                CHECK(out.back() == before.back());  // never past its columns
            }
}

TEST_CASE("A product split across threads takes any thread count, none or negative meaning one")
{
    // B6: the count of parts was clamped with bounds out of order for threads <= 0.
    if (!PackedWeights::available())
        return;
    const Index N = 4 * PackedWeights::panel_width(), K = 300, M = 200;  // past the split's threshold
    const auto a = testing::random_values(static_cast<std::size_t>(M * K), 1);
    const auto w = testing::random_values(static_cast<std::size_t>(N * K), 2);
    PackedWeights packed(N, K);
    packed.pack(mat(w.data(), N, K));
    std::vector<float> one(static_cast<std::size_t>(M * N)), got(one.size());
    packed.multiply_transposed(Strided::of(mat(a.data(), M, K)), 0, mat(one.data(), M, N), false, 1);
    for (int threads : {0, -3, 2, 64}) {
        CAPTURE(threads);
        std::fill(got.begin(), got.end(), -1.0f);
        packed.multiply_transposed(Strided::of(mat(a.data(), M, K)), 0, mat(got.data(), M, N), false, threads);
        CHECK(got == one);
    }
}
