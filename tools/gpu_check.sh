#!/usr/bin/env bash
# tools/gpu_check.sh: the CUDA backend's checks on a GPU machine, in one run: build, the GPU tests
# (Python and C++), and the GPU benchmark against PyTorch (cuDNN).
#
#   tools/gpu_check.sh --prepare   # here, with network: fetch what the GPU machine lacks into .gpu/
#   tools/gpu_check.sh             # there (a machine with nvcc, PyTorch and nvidia-cublas, no network)
#
# --prepare puts the cmeel-eigen wheel (Eigen's headers) and doctest's header into .gpu/, which git
# ignores; carry that folder to the GPU machine. Results go to $OUT (or /tmp/gpu-check).
# Part of streamrnn, MIT licence.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    mkdir -p .gpu/doctest
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .gpu cmeel-eigen
    cp /usr/include/doctest/doctest.h .gpu/doctest/
    ls -l .gpu
    exit 0
fi

out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

# Eigen from the carried wheel, on sys.path, where CMake looks for cmeel.prefix.
python3 -m pip install --quiet --no-index --no-deps --target /tmp/site .gpu/cmeel_eigen-*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

echo "== build: the Python package with its CUDA module"
time python3 -m pip install --quiet --no-build-isolation --no-deps . -Cbuild-dir=/tmp/build-python \
    -Ccmake.define.STREAMRNN_CUDA=ON -Ccmake.define.STREAMRNN_DISPATCH=OFF -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90
python3 -c "import streamrnn as sr; print('GPUs seen by streamrnn:', sr.cuda.device_count())"

echo "== Python GPU tests"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest_cuda.txt" || true

echo "== C++ GPU tests"
cmake -S . -B /tmp/build-cpp -G Ninja -DSTREAMRNN_PYTHON=OFF -DSTREAMRNN_TESTS=ON -DSTREAMRNN_CUDA=ON \
    -DSTREAMRNN_EXAMPLES=OFF -DSTREAMRNN_SHARED=OFF -DSTREAMRNN_INSTALL=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DDOCTEST_INCLUDE_DIR="$PWD/.gpu" > /dev/null
cmake --build /tmp/build-cpp --target streamrnn_cuda_tests > /dev/null
/tmp/build-cpp/tests/cpp/streamrnn_cuda_tests 2>&1 | tail -15 | tee "$out/cpp_cuda.txt" || true

echo "== GPU benchmark"
python3 bench/gpu.py --json "$out/gpu.json" 2>&1 | tee "$out/bench_gpu.txt"
