# tests/test_embedded.py: `python -m streamrnn run` prints the outputs that the C and C++ examples
# (examples/embedded) are checked against, in any chunking. Part of streamrnn, MIT licence.
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streamrnn as sr

DATA = Path(__file__).parent / "data" / "embedded"
MODELS = ["lstm_proj", "gru_cho", "rnn_relu", "whole"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamrnn", "run", *args], capture_output=True, text=True)


def rows(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split()] for line in text.splitlines()])


@pytest.mark.parametrize("chunk", ["1", "7", "300"])
@pytest.mark.parametrize("name", MODELS)
def test_run_prints_the_expected_outputs(name, chunk):
    done = run(str(DATA / f"{name}.safetensors"), str(DATA / "input.f32"), "--chunk", chunk)
    assert done.returncode == 0, done.stderr
    expected = rows((DATA / f"expected_{name}.txt").read_text())
    printed = rows(done.stdout)
    assert printed.shape == expected.shape
    # The same tolerance as the C++ examples' check (tests/cpp/CMakeLists.txt): float32 rounding
    # of another engine build (AVX2, AVX-512) or CPU grows a little over 300 steps.
    np.testing.assert_allclose(printed, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_expected_outputs_are_the_whole_sequence_forward(name):
    model = sr.load(DATA / f"{name}.safetensors")
    x = np.fromfile(DATA / "input.f32", dtype="<f4").reshape(-1, model.input_size)
    y, _ = model(x)
    np.testing.assert_allclose(y, rows((DATA / f"expected_{name}.txt").read_text()), rtol=1e-5, atol=1e-5)


def test_run_reports_an_input_of_the_wrong_size(tmp_path):
    odd = tmp_path / "odd.f32"
    np.zeros(4, "<f4").tofile(odd)
    done = run(str(DATA / "lstm_proj.safetensors"), str(odd))
    assert done.returncode == 1
    assert "3 per step" in done.stdout


def test_run_rejects_a_chunk_below_one():
    done = run(str(DATA / "lstm_proj.safetensors"), str(DATA / "input.f32"), "--chunk", "0")
    assert done.returncode == 2
    assert "--chunk" in done.stderr
