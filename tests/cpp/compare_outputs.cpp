// tests/cpp/compare_outputs.cpp: compares two files of numbers, line by line, within a tolerance.
// Part of streamrnn, MIT licence.
//
//   compare_outputs ACTUAL EXPECTED TOLERANCE
// Passes (exit 0) when both files have the same lines, each with the same count of numbers, and
// every number of ACTUAL is within TOLERANCE of EXPECTED's, absolutely or relatively (for the
// large ones). Prints the largest difference either way. Built for the target, so that it runs
// under the same emulator as the examples it checks.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::vector<double>> read_rows(const char* path)
{
    std::ifstream file(path);
    if (!file) {
        std::fprintf(stderr, "compare_outputs: cannot read %s\n", path);
        std::exit(2);
    }
    std::vector<std::vector<double>> rows;
    for (std::string line; std::getline(file, line);) {
        std::istringstream numbers(line);
        std::vector<double> row;
        for (double value; numbers >> value;)
            row.push_back(value);
        if (!numbers.eof()) {
            std::fprintf(stderr, "compare_outputs: %s line %zu is not numbers: %s\n", path, rows.size() + 1,
                         line.c_str());
            std::exit(2);
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc != 4) {
        std::fprintf(stderr, "usage: compare_outputs ACTUAL EXPECTED TOLERANCE\n");
        return 2;
    }
    const auto actual = read_rows(argv[1]), expected = read_rows(argv[2]);
    const double tolerance = std::strtod(argv[3], nullptr);
    if (actual.size() != expected.size()) {
        std::printf("FAIL: %zu lines, expected %zu\n", actual.size(), expected.size());
        return 1;
    }
    double worst = 0.0;
    std::size_t worst_line = 0, failures = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        if (actual[i].size() != expected[i].size()) {
            std::printf("FAIL: line %zu has %zu numbers, expected %zu\n", i + 1, actual[i].size(), expected[i].size());
            return 1;
        }
        for (std::size_t k = 0; k < actual[i].size(); ++k) {
            const double difference = std::fabs(actual[i][k] - expected[i][k]);
            const bool within = difference <= tolerance * std::max(1.0, std::fabs(expected[i][k]));
            failures += within ? 0 : 1;
            if (!(difference <= worst)) {
                worst = difference;
                worst_line = i + 1;
            }
        }
    }
    std::printf("%s: %zu lines, max abs difference %.3g (line %zu), tolerance %g\n", failures ? "FAIL" : "ok",
                actual.size(), worst, worst_line, tolerance);
    return failures ? 1 : 0;
}
