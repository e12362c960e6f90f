# bench/bench_step.py: streaming step latency, streamrnn against PyTorch, measured interleaved.
# Part of streamrnn, MIT licence.
"""Median and p99 microseconds per streaming step, batch 1, one thread, state carried.

Contenders, each timed in rounds that alternate between them so that the machine's drift hits
all alike: streamrnn `Stream.step(x, out=)` from Python; PyTorch's `*Cell` (its fastest per-step
call) and `nn.LSTM/GRU/RNN` on a (1, 1, I) input, both under inference_mode. ONNX Runtime joins
with the benchmark-suite issue. Run: `python bench/bench_step.py [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import streamrnn as sr

torch.set_num_threads(1)


def timer(step, warmup: int = 200):
    for _ in range(warmup):
        step()

    def run(n: int) -> np.ndarray:
        times = np.empty(n)
        for i in range(n):
            start = time.perf_counter_ns()
            step()
            times[i] = time.perf_counter_ns() - start
        return times / 1e3

    return run


def contenders(kind: str, H: int):
    torch_layer = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind](H, H)
    torch_cell = {"LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell, "RNN": torch.nn.RNNCell}[kind](H, H)
    ours = sr.from_torch(torch_layer)
    stream = ours.stream(1)
    x = np.random.default_rng(0).standard_normal((1, H)).astype(np.float32)
    out = np.empty((1, H), np.float32)
    xt = torch.from_numpy(x)
    state = {"layer": None, "cell": None}

    def ours_step():
        stream.step(x, out=out)

    def layer_step():
        with torch.inference_mode():
            _, state["layer"] = torch_layer(xt[None], state["layer"])

    def cell_step():
        with torch.inference_mode():
            state["cell"] = torch_cell(xt, state["cell"])

    return {"streamrnn step(out=)": timer(ours_step), "torch *Cell": timer(cell_step),
            f"torch nn.{kind}": timer(layer_step)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    print(f"{'model':<12}{'contender':<24}{'median us':>11}{'p99 us':>10}{'vs streamrnn':>14}")
    for kind in ("LSTM", "GRU", "RNN"):
        for H in (32, 128, 512):
            runs = contenders(kind, H)
            n = 400 if H == 512 else 2000
            samples = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    samples[name].append(run(n))
            ours = float(np.median(np.concatenate(samples["streamrnn step(out=)"])))
            for name, parts in samples.items():
                times = np.concatenate(parts)
                median, p99 = float(np.median(times)), float(np.percentile(times, 99))
                rows.append({"kind": kind, "H": H, "contender": name, "median_us": median, "p99_us": p99})
                print(f"{kind + ' H=' + str(H):<12}{name:<24}{median:>11.2f}{p99:>10.2f}{median / ours:>13.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
