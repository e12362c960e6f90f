# bench/audio_models.py: whole audio models a sample at a time, streamrnn against PyTorch running
# the same model step by step. Part of streamrnn, MIT licence.
"""Neural Amp Modeler's LSTM (1 -> 16, one layer, a Linear(16, 1) head) and RTNeural's typical
Dense(1, 8) -> tanh -> LSTM(8) -> Dense(8, 1), on the same weights in both libraries (parity
checked first, 1e-5): microseconds per sample of

- streamrnn step: m.stream(1).step(x_t, out=y_t), one call per sample, from Python;
- streamrnn process 64: m.stream(1).process(block), blocks of 64 samples;
- torch step: the torch.nn modules called once per sample with the state carried (inference_mode,
  one thread), as a plugin prototype in PyTorch does;
- torch process 64: the same modules on blocks of 64 samples;

and torch over streamrnn. The C API's times, without Python's call, and the whole model against
its recurrent part alone, are bench/cpp/bench_audio_models.cpp's; RTNeural's are
bench/cpp/vs_rtneural.cpp's.

Run: python bench/audio_models.py [--quick]. Needs the installed streamrnn and torch.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # suite

from suite import machine, measure, timed  # noqa: E402

SETTINGS = {"full": {"rounds": 5, "chunk_s": 0.3}, "quick": {"rounds": 1, "chunk_s": 0.02}}
BLOCK = 64


def models(torch):
    """(name, torch modules in order, the streamrnn Sequential on their weights)."""
    import streamrnn as sr

    torch.manual_seed(0)
    nam = [torch.nn.LSTM(1, 16), torch.nn.Linear(16, 1)]
    rtneural = [torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.LSTM(8, 8), torch.nn.Linear(8, 1)]
    out = []
    for name, modules in (("NAM LSTM(1, 16) + Linear(16, 1)", nam),
                          ("RTNeural Dense(8) tanh LSTM(8) Dense(1)", rtneural)):
        blocks = []
        for module in modules:
            if isinstance(module, torch.nn.LSTM):
                blocks.append(sr.from_torch(module))
            elif isinstance(module, torch.nn.Linear):
                linear = sr.Linear(module.in_features, module.out_features)
                linear.load_state_dict(module.state_dict())
                blocks.append(linear)
            else:
                blocks.append(sr.Tanh())
        out.append((name, modules, sr.Sequential(*blocks)))
    return out


def torch_runner(torch, modules):
    """run(x (T, 1, 1) tensor) -> y, the modules one after another with the LSTM's state carried."""
    state = [None]

    def run(x):
        for module in modules:
            if isinstance(module, torch.nn.LSTM):
                x, state[0] = module(x, state[0])
            else:
                x = module(x)
        return x

    return run, state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round: that it runs")
    setting = SETTINGS["quick" if parser.parse_args().quick else "full"]
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    signal = (0.5 * np.sin(np.arange(4096) / 7.0) + 0.1 * rng.standard_normal(4096)).astype(np.float32)
    print(f"machine: {machine()}")
    print("microseconds per sample, median over rounds; batch 1, one thread\n")
    print(f"| model | streamrnn step | streamrnn process {BLOCK} | torch step | torch process {BLOCK} | "
          "torch / streamrnn, step | torch / streamrnn, process |")
    print("|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for name, modules, model in models(torch):
            run_torch, torch_state = torch_runner(torch, modules)
            x = torch.from_numpy(signal).reshape(-1, 1, 1)
            reference = run_torch(x).numpy().reshape(-1)
            torch_state[0] = None
            whole = model(signal[:, None])[0].reshape(-1)
            difference = float(np.abs(whole - reference).max())
            if difference > 1e-5:
                print(f"FAILED: {name}: streamrnn and torch differ by {difference:.2e}")
                return 1
            stepped, blocked = model.stream(1), model.stream(1)
            sample, out = np.zeros(1, np.float32), np.zeros(1, np.float32)
            block = signal[:BLOCK, None]
            torch_sample, torch_block = x[:1], x[:BLOCK]
            runs = {"step": timed(lambda: stepped.step(sample, out=out)),
                    "process": timed(lambda: blocked.process(block)),
                    "torch step": timed(lambda: run_torch(torch_sample)),
                    "torch process": timed(lambda: run_torch(torch_block))}
            times = measure(runs, setting["rounds"], setting["chunk_s"])
            us = {key: float(np.median(value)) / (BLOCK if "process" in key else 1) for key, value in times.items()}
            print(f"| {name} | {us['step']:.3f} | {us['process']:.3f} | {us['torch step']:.2f} | "
                  f"{us['torch process']:.3f} | {us['torch step'] / us['step']:.0f}x | "
                  f"{us['torch process'] / us['process']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
