# tools/make_embedded_data.py: writes the models, input and expected outputs that check the C and
# C++ examples (and the ARM builds) against Python. Part of streamrnn, MIT licence.
"""Regenerates tests/data/embedded/: three small models (an LSTM with projection, a Cho GRU and a
ReLU RNN, two layers each) and a whole model (Linear, Tanh, a 2-layer LSTM with a set initial
state, LeakyReLU, Linear), input.f32 (300 steps of 3 features, raw float32) and, per model,
expected_<name>.txt: the whole-sequence forward in Python, one line per step as "%.9g". The C++
tests run examples/embedded on them (also under qemu on ARM) and tests/test_embedded.py runs
`python -m streamrnn run`; both must print these numbers to float32 rounding.
Run once on x86-64 and commit the files (about 160 KiB)."""

from pathlib import Path

import numpy as np

import streamrnn as sr

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "embedded"
STEPS, FEATURES = 300, 3

MODELS = {
    "lstm_proj": lambda: sr.LSTM(FEATURES, 16, num_layers=2, proj_size=8, seed=11),
    "gru_cho": lambda: sr.GRU(FEATURES, 16, num_layers=2, reset_after=False, seed=12),
    "rnn_relu": lambda: sr.RNN(FEATURES, 16, num_layers=2, nonlinearity="relu", seed=13),
    "whole": lambda: _whole(),
}


def _whole() -> sr.Sequential:
    lstm = sr.LSTM(8, 16, num_layers=2, seed=15)
    rng = np.random.default_rng(16)
    lstm.initial_state = tuple(0.5 * rng.standard_normal((2, 2, 16)).astype(np.float32))
    return sr.Sequential(sr.Linear(FEATURES, 8, seed=14), sr.Tanh(), lstm, sr.LeakyReLU(0.1),
                         sr.Linear(16, 2, seed=17), metadata={"made_by": "tools/make_embedded_data.py"})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    t = np.arange(STEPS)[:, None] / 50.0
    rng = np.random.default_rng(5)
    # Slow sines in three phases plus noise: values of either sign, and gates away from saturation.
    x = (np.sin(t * np.array([1.0, 2.3, 0.7]) + np.array([0.0, 1.0, 2.0])) + 0.3 * rng.standard_normal((STEPS, FEATURES)))
    x.astype("<f4").tofile(OUT / "input.f32")
    x32 = np.fromfile(OUT / "input.f32", dtype="<f4").reshape(STEPS, FEATURES)
    for name, make in MODELS.items():
        model = make()
        model.save(OUT / f"{name}.safetensors")
        y, _ = model(x32)
        lines = [" ".join(f"{float(v):.9g}" for v in row) for row in np.asarray(y).reshape(STEPS, -1)]
        (OUT / f"expected_{name}.txt").write_text("\n".join(lines) + "\n")
        print(f"{name}: {model}, outputs in [{y.min():.3f}, {y.max():.3f}]")


if __name__ == "__main__":
    main()
