# bench/suite.py: the benchmark suite, streamrnn against PyTorch and ONNX Runtime, in one command.
# Part of streamrnn, MIT licence.
"""streamrnn against PyTorch and ONNX Runtime: streaming steps, audio blocks, whole sequences, and
the matrix-vector floor of a step on this machine.

Run: python bench/suite.py [--quick] [--json results.json]. It builds nothing; it needs the
installed streamrnn, torch, onnx and onnxruntime. Every row times its contenders in alternating
rounds within this process, so read the ratios in a row, not numbers across rows or runs.
bench/README.md says what each column means.

torch, streamrnn and the ONNX helpers are imported inside the functions that use them: the GEMV
worker (`--gemv-worker`, started by the suite itself) runs this file with NumPy alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
SAMPLE_RATE = 48_000
TOLERANCE = 1e-5  # max abs difference allowed between an ONNX model and streamrnn

# Rounds per row, and the time each contender gets per round; --quick is for CI smoke runs.
SETTINGS = {
    "full": {"rounds": 15, "chunk_s": 0.04, "seq_rounds": 9, "seq_chunk_s": 0.25},
    "quick": {"rounds": 3, "chunk_s": 0.01, "seq_rounds": 2, "seq_chunk_s": 0.0},
}

Run = Callable[[int], np.ndarray]  # run(n) -> microseconds, one row per call


def timed(call: Callable[[], object]) -> Run:
    """run(n): calls `call` n times and returns each call's microseconds."""

    def run(n: int) -> np.ndarray:
        clock = time.perf_counter_ns
        times = np.empty(n)
        for i in range(n):
            start = clock()
            call()
            times[i] = clock() - start
        return times / 1e3

    return run


def measure(runs: dict[str, Run], rounds: int, chunk_s: float) -> dict[str, np.ndarray]:
    """Times every contender in `rounds` rounds, each round giving each one about chunk_s seconds.

    The machine's speed drifts by 2-5x within minutes; alternating keeps that drift common to all
    contenders of a row. The order rotates each round so that none always follows the same one."""
    counts = {}
    for name, run in runs.items():
        run(2)  # first calls pay one-off costs: allocations, lazy initialisation, cold caches
        per_call = float(run(1).sum())
        if per_call < 1e4:  # short calls: a steadier estimate costs little
            per_call = float(np.median(run(9).reshape(9, -1).sum(axis=1)))
        counts[name] = int(np.clip(chunk_s * 1e6 / per_call, 1, 200_000))
        if counts[name] >= 4:
            run(counts[name] // 4)  # and a warm-up at full pace, for caches and clocks
    return rotate(runs, rounds, counts)


def rotate(runs: dict[str, Run], rounds: int, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """`rounds` rounds of counts[name] calls of each contender, in an order that rotates each round
    so that none always follows the same one: microseconds per call of each."""
    names = list(runs)
    samples: dict[str, list] = {name: [] for name in names}
    # A collection landing inside one contender's chunk would be charged to it alone, so the
    # collector is off during chunks; one collection per row (tens of ms with torch loaded)
    # clears what the set-up left.
    gc.collect()
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            gc.disable()
            try:
                samples[name].append(runs[name](counts[name]))
            finally:
                gc.enable()
    return {name: np.concatenate(parts) for name, parts in samples.items()}


def stats(times: np.ndarray) -> dict:
    return {"median_us": float(np.median(times)), "p99_us": float(np.percentile(times, 99)), "calls": len(times)}


def fmt(us: float) -> str:
    return f"{us:.2f}" if us < 10 else f"{us:.1f}" if us < 100 else f"{us:.0f}"


# ---------------------------------------------------------------------------------------------
# The GEMV floor: NumPy on one thread, in its own process so that its BLAS starts single-threaded.


def gemv_worker() -> None:
    """Serves timings over stdin/stdout: `load PATH` (an .npz of fused layer weights W0, W1, ...)
    and `time N` (answered with a "rows cols" line and float64 microseconds, one row per call:
    each layer's np.dot, then the empty 1x1 np.dot)."""
    dot = np.dot
    rng = np.random.default_rng(0)
    weights, vectors, outs = [], [], []
    w1, v1, o1 = np.ones((1, 1), np.float32), np.ones(1, np.float32), np.empty(1, np.float32)
    clock = time.perf_counter_ns
    for line in sys.stdin:
        command, argument = line.split()
        if command == "load":
            with np.load(argument) as archive:
                weights = [archive[f"W{l}"] for l in range(len(archive.files))]
            vectors = [rng.standard_normal(w.shape[1]).astype(np.float32) for w in weights]
            outs = [np.empty(w.shape[0], np.float32) for w in weights]
            continue
        n = int(argument)
        times = np.empty((n, len(weights) + 1))
        for i in range(n):
            # The layers in turn, as a step runs them, so a stack's weights compete for cache as
            # they do in a real step; the empty call in the same loop sees the same conditions.
            for l, (w, v, o) in enumerate(zip(weights, vectors, outs)):
                start = clock()
                dot(w, v, out=o)
                times[i, l] = clock() - start
            start = clock()
            dot(w1, v1, out=o1)
            times[i, -1] = clock() - start
        times /= 1e3
        sys.stdout.buffer.write(f"{n} {times.shape[1]}\n".encode())
        sys.stdout.buffer.write(times.tobytes())
        sys.stdout.buffer.flush()


class GemvFloor:
    """The GEMV worker process, as a contender for `measure`: it waits on a pipe while the others run."""

    def __init__(self) -> None:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--gemv-worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.dir = tempfile.TemporaryDirectory(prefix="streamrnn-bench-")

    def load(self, fused: list) -> None:
        path = os.path.join(self.dir.name, "weights.npz")
        np.savez(path, **{f"W{l}": w for l, w in enumerate(fused)})
        self._send(f"load {path}")

    def run(self, n: int) -> np.ndarray:
        self._send(f"time {n}")
        rows, cols = map(int, self.proc.stdout.readline().split())
        return np.frombuffer(self.proc.stdout.read(rows * cols * 8), np.float64).reshape(rows, cols)

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.dir.cleanup()


# ---------------------------------------------------------------------------------------------
# Models: streamrnn's, and PyTorch's and ONNX's twins carrying the same weights.


def ours(kind: str, I: int, H: int, L: int, seed: int = 0):
    import streamrnn as sr

    return getattr(sr, kind)(I, H, L, seed=seed)


def torch_layer(model, kind: str):
    import torch

    layer = getattr(torch.nn, kind)(model.input_size, model.hidden_size, model.num_layers)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return layer.eval()


def torch_cells(model, kind: str) -> list:
    import torch

    weights, cells = model.state_dict(), []
    for l in range(model.num_layers):
        cell = getattr(torch.nn, kind + "Cell")(model.input_size if l == 0 else model.hidden_size, model.hidden_size)
        cell.load_state_dict({name: torch.from_numpy(weights[f"{name}_l{l}"])
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        cells.append(cell.eval())
    return cells


def ort_stream(model, kind: str, T: int, B: int, threads: int = 1, carry: bool = True):
    import onnx_models

    sess = onnx_models.session(onnx_models.to_onnx(model, T=T, B=B), threads)
    return onnx_models.OrtStream(sess, kind, model.num_layers, T, B, model.input_size, model.hidden_size,
                                 carry=carry)


def check_onnx(model, kind: str, ort, x: np.ndarray, label: str) -> float:
    """Runs x [k*T, B, I] through `ort` in chunks of its T from a zero state, and fails unless its
    outputs and final state match streamrnn's m(x) to TOLERANCE. Returns the max abs difference."""
    y, state = model(x)
    h, c = state if kind == "LSTM" else (state, None)
    ort.reset()
    T = ort.x.shape[0]
    diff = 0.0
    for start in range(0, len(x), T):
        ort.x[...] = x[start:start + T]
        ort.run()
        diff = max(diff, float(np.abs(ort.y - y[start:start + T]).max()))
    for l in range(model.num_layers):
        diff = max(diff, float(np.abs(ort.state(f"h_l{l}")[0] - h[l]).max()))
        if c is not None:
            diff = max(diff, float(np.abs(ort.state(f"c_l{l}")[0] - c[l]).max()))
    ort.reset()
    if not diff < TOLERANCE:
        raise RuntimeError(f"ONNX check failed for {label}: max abs difference {diff:.3g} from streamrnn "
                           f"(allowed {TOLERANCE:g}); the ONNX graph or the engine is wrong")
    return diff


# ---------------------------------------------------------------------------------------------
# 1. Streaming step latency, and 4. its GEMV floor (timed in the same rounds).


def step_case(kind: str, L: int, H: int, rng: np.random.Generator) -> dict:
    """One row's contenders, their ONNX check done: one step of a (1, H) input, state carried."""
    import torch

    model = ours(kind, H, H, L)
    layer, cells, ort = torch_layer(model, kind), torch_cells(model, kind), ort_stream(model, kind, T=1, B=1)
    diff = check_onnx(model, kind, ort, rng.standard_normal((8, 1, H)).astype(np.float32),
                      f"{kind} L={L} H={H} (1-step model)")
    stream = model.stream(1)
    x = rng.standard_normal((1, H)).astype(np.float32)
    out = np.empty((1, H), np.float32)
    x_cell, x_seq = torch.from_numpy(x), torch.from_numpy(x[None])
    ort.x[...] = x[None]
    carried = {"nn": None, "cells": [None] * L}

    def nn_step():
        _, carried["nn"] = layer(x_seq, carried["nn"])

    def cell_step():
        inp = x_cell
        for l, cell in enumerate(cells):
            carried["cells"][l] = cell(inp, carried["cells"][l])
            inp = carried["cells"][l][0] if kind == "LSTM" else carried["cells"][l]

    weights = model.state_dict()
    return {"kind": kind, "layers": L, "H": H, "diff": diff,
            "fused": [np.concatenate([weights[f"weight_ih_l{l}"], weights[f"weight_hh_l{l}"]], axis=1)
                      for l in range(L)],
            "runs": {"streamrnn": timed(lambda: stream.step(x, out=out)), "torch cell": timed(cell_step),
                     "torch nn": timed(nn_step), "ort": timed(ort.run)}}


def step_table(settings: dict, floor: GemvFloor) -> tuple:
    rng = np.random.default_rng(1)
    cases = [step_case(kind, L, H, rng) for kind in ("LSTM", "GRU", "RNN") for L in (1, 2) for H in (32, 128, 512)]
    diff = max(case["diff"] for case in cases)
    print(f"\n1. Streaming step latency: batch 1, I = H, one step per call, state carried, 1 thread; "
          f"median/p99 us per step.\n   ONNX check: {len(cases)} one-step models match streamrnn over 8 steps, "
          f"state included (max abs diff {diff:.2g}).")
    print(f"{'model':<6}{'L':>2}{'H':>5}{'streamrnn':>14}{'torch cell':>14}{'torch nn':>14}{'ORT':>14}"
          f"{'cell/ours':>11}{'nn/ours':>9}{'ort/ours':>10}{'ours/floor':>12}")
    step_rows, floor_rows = [], []
    for case in cases:
        kind, L, H = case["kind"], case["layers"], case["H"]
        floor.load(case["fused"])
        times = measure({**case["runs"], "floor": floor.run}, settings["rounds"], settings["chunk_s"])
        gemv = times.pop("floor")
        raw = [float(np.median(gemv[:, l])) for l in range(L)]
        empty = float(np.median(gemv[:, -1]))
        floor_us = sum(r - empty for r in raw)
        macs = L * GATES[kind] * H * 2 * H
        row = {"kind": kind, "layers": L, "H": H, "I": H, **{name: stats(t) for name, t in times.items()}}
        ours_us = row["streamrnn"]["median_us"]
        ratios = {f"{name}/ours": row[name]["median_us"] / ours_us for name in ("torch cell", "torch nn", "ort")}
        row.update(ratios=ratios, floor_us=floor_us, **{"ours/floor": ours_us / floor_us})
        step_rows.append(row)
        floor_rows.append({"kind": kind, "layers": L, "H": H, "I": H, "macs_per_step": macs,
                           "weight_bytes": 4 * L * GATES[kind] * H * (2 * H + 2),
                           "gemv_raw_us": sum(raw), "gemv_raw_us_per_layer": raw, "empty_call_us": empty,
                           "floor_us": floor_us, "gflops_raw": 2 * macs / sum(raw) / 1e3,
                           "gflops": 2 * macs / floor_us / 1e3, "ours_median_us": ours_us,
                           "ours/floor": ours_us / floor_us})
        cols = "".join(f"{fmt(row[n]['median_us']) + '/' + fmt(row[n]['p99_us']):>14}"
                       for n in ("streamrnn", "torch cell", "torch nn", "ort"))
        print(f"{kind:<6}{L:>2}{H:>5}{cols}{ratios['torch cell/ours']:>10.2f}x{ratios['torch nn/ours']:>8.2f}x"
              f"{ratios['ort/ours']:>9.2f}x{row['ours/floor']:>11.2f}x", flush=True)
    return step_rows, floor_rows, diff


def floor_table(rows: list) -> None:
    print("\n4. Floor: one float32 GEMV (G x (I+H)) per layer per step, NumPy on 1 thread in a subprocess, "
          "timed in the rounds of table 1; us per step")
    print(f"{'model':<6}{'L':>2}{'H':>5}{'MACs/step':>11}{'weights':>10}{'GEMV raw':>10}{'call':>7}"
          f"{'floor':>9}{'GF/s raw':>10}{'GF/s':>7}{'ours':>9}{'ours/floor':>12}")
    for r in rows:
        size = r["weight_bytes"]
        size_text = f"{size / 2**20:.1f}MiB" if size >= 2**20 else f"{size / 2**10:.0f}KiB"
        print(f"{r['kind']:<6}{r['layers']:>2}{r['H']:>5}{r['macs_per_step']:>11,}{size_text:>10}"
              f"{fmt(r['gemv_raw_us']):>10}{fmt(r['empty_call_us']):>7}{fmt(r['floor_us']):>9}"
              f"{r['gflops_raw']:>10.1f}{r['gflops']:>7.1f}{fmt(r['ours_median_us']):>9}{r['ours/floor']:>11.2f}x")
    print("GEMV raw: sum over layers of np.dot's median; call: an empty 1x1 np.dot (the Python call); "
          "floor = sum over layers of (GEMV raw - call).")


# ---------------------------------------------------------------------------------------------
# 2. Block streaming (audio): one feature per sample, chunks of 64 and 512 samples.


def block_case(kind: str, H: int, T: int, rng: np.random.Generator) -> dict:
    import torch

    model = ours(kind, 1, H, 1)
    layer, ort = torch_layer(model, kind), ort_stream(model, kind, T=T, B=1)
    diff = check_onnx(model, kind, ort, rng.standard_normal((2 * T, 1, 1)).astype(np.float32),
                      f"{kind} H={H} ({T}-step model)")
    stream = model.stream(1)
    chunk = rng.standard_normal((T, 1, 1)).astype(np.float32)
    chunk_t = torch.from_numpy(chunk)
    ort.x[...] = chunk
    carried = {"nn": None}

    def nn_block():
        _, carried["nn"] = layer(chunk_t, carried["nn"])

    return {"kind": kind, "H": H, "chunk": T, "diff": diff,
            "runs": {"streamrnn": timed(lambda: stream.process(chunk)), "torch nn": timed(nn_block),
                     "ort": timed(ort.run)}}


def block_table(settings: dict) -> tuple:
    rng = np.random.default_rng(2)
    cases = [block_case(kind, H, T, rng) for kind in ("LSTM", "GRU") for H in (16, 32, 64) for T in (64, 512)]
    diff = max(case["diff"] for case in cases)
    print(f"\n2. Block streaming: 1 feature per sample, 1 layer, one chunk per call, state carried, 1 thread; "
          f"ns per sample, and real-time factor at {SAMPLE_RATE // 1000} kHz (time per sample / sample period)."
          f"\n   ONNX check: {len(cases)} chunk models match streamrnn over 2 chunks, state included "
          f"(max abs diff {diff:.2g}).")
    print(f"{'model':<6}{'H':>4}{'chunk':>6}{'streamrnn':>11}{'torch nn':>10}{'ORT':>9}"
          f"{'RTF ours':>11}{'RTF torch':>11}{'RTF ORT':>10}{'torch/ours':>12}{'ort/ours':>10}")
    rows = []
    for case in cases:
        kind, H, T = case["kind"], case["H"], case["chunk"]
        times = measure(case["runs"], settings["rounds"], settings["chunk_s"])
        row = {"kind": kind, "H": H, "chunk": T}
        for name, t in times.items():
            ns = float(np.median(t)) * 1e3 / T
            row[name] = {**stats(t), "ns_per_sample": ns, "rtf": ns * 1e-9 * SAMPLE_RATE}
        ours_ns = row["streamrnn"]["ns_per_sample"]
        row["ratios"] = {f"{n}/ours": row[n]["ns_per_sample"] / ours_ns for n in ("torch nn", "ort")}
        rows.append(row)
        print(f"{kind:<6}{H:>4}{T:>6}{row['streamrnn']['ns_per_sample']:>11.0f}"
              f"{row['torch nn']['ns_per_sample']:>10.0f}{row['ort']['ns_per_sample']:>9.0f}"
              f"{row['streamrnn']['rtf']:>11.4f}{row['torch nn']['rtf']:>11.4f}{row['ort']['rtf']:>10.4f}"
              f"{row['ratios']['torch nn/ours']:>11.2f}x{row['ratios']['ort/ours']:>9.2f}x", flush=True)
    return rows, diff


# ---------------------------------------------------------------------------------------------
# 3. Whole sequences, 1 and 2 threads.


def with_threads(set_threads, threads: int, run: Run) -> Run:
    """Thread counts are process-wide (torch.set_num_threads, sr.set_num_threads): a contender
    sets its own before each of its rounds."""

    def run_with(n: int) -> np.ndarray:
        set_threads(threads)
        return run(n)

    return run_with


def sequence_case(kind: str, B: int, T: int, H: int, rng: np.random.Generator) -> dict:
    """Contenders for both thread counts: streamrnn m(x), torch nn.X, ORT, from a zero state."""
    import torch

    import streamrnn as sr

    model = ours(kind, H, H, 1)
    layer = torch_layer(model, kind)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    xt = torch.from_numpy(x)
    runs, diffs = {}, []
    for threads in (1, 2):
        ort = ort_stream(model, kind, T=T, B=B, threads=threads, carry=False)
        diffs.append(check_onnx(model, kind, ort, x, f"{kind} B={B} T={T} H={H} ({threads} threads)"))
        ort.x[...] = x
        runs[f"streamrnn@{threads}"] = with_threads(sr.set_num_threads, threads, timed(lambda: model(x)))
        runs[f"torch nn@{threads}"] = with_threads(torch.set_num_threads, threads, timed(lambda: layer(xt)))
        runs[f"ort@{threads}"] = timed(ort.run)
    return {"kind": kind, "B": B, "T": T, "H": H, "diff": max(diffs), "runs": runs}


def gemm_rate(M: int, K: int, N: int) -> tuple[float, str]:
    """This machine's single-thread float32 GEMM rate on [M, K] x [K, N]: GFLOP/s of the faster of
    PyTorch's torch.mm and streamrnn's Linear (no bias), one thread each, the best of 20 calls,
    and which one it was. (NumPy's BLAS sizes its threads at start-up, so it cannot be held to one
    here; in the GEMV worker, on one thread, it reaches half of the machine's peak, as torch.mm
    does here, while streamrnn's kernel reaches about 90%.)"""
    import torch

    import streamrnn as sr

    torch.set_num_threads(1)
    sr.set_num_threads(1)
    a = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    at, bt, ct = torch.from_numpy(a), torch.ones(K, N), torch.empty(M, N)
    linear = sr.Linear(K, N, bias=False)
    products = {"PyTorch": lambda: torch.mm(at, bt, out=ct), "streamrnn": lambda: linear(a)}
    rates = {}
    for name, product in products.items():
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter_ns()
            product()
            best = min(best, time.perf_counter_ns() - start)
        rates[name] = 2.0 * M * K * N / best
    fastest = max(rates, key=rates.get)
    return rates[fastest], fastest


def sequence_table(settings: dict) -> tuple:
    import torch

    import streamrnn as sr

    rng = np.random.default_rng(3)
    cases = [sequence_case(kind, B, T, H, rng) for B, T, H in ((1, 2000, 128), (32, 100, 256))
             for kind in ("LSTM", "GRU")]
    diff = max(case["diff"] for case in cases)
    print(f"\n3. Whole sequences: 1 layer, I = H, zero initial state; ms per call, and steps/s (B x T per second)."
          f"\n   ONNX check: {2 * len(cases)} sequence models (1 and 2 threads) match streamrnn "
          f"(max abs diff {diff:.2g}).")
    print(f"{'model':<6}{'B':>4}{'T':>6}{'H':>5}{'threads':>8}{'streamrnn':>11}{'torch nn':>10}{'ORT':>9}"
          f"{'steps/s ours':>14}{'torch':>10}{'ORT':>10}{'torch/ours':>12}{'ort/ours':>10}{'GEMM floor':>12}"
          f"{'ours/floor':>11}")
    rows = []
    for case in cases:
        kind, B, T, H = case["kind"], case["B"], case["T"], case["H"]
        times = measure(case["runs"], settings["seq_rounds"], settings["seq_chunk_s"])
        # The GEMM floor: the call's multiply-adds (input and recurrent products, gates not
        # counted) at one thread's rate on its input projection's shape, split over the threads.
        G = {"LSTM": 4, "GRU": 3}[kind] * H
        rate, rate_source = gemm_rate(T * B, H, G)
        floor_ms = 2.0 * T * B * G * (H + H) / rate / 1e6
        torch.set_num_threads(1)
        sr.set_num_threads(1)
        for threads in (1, 2):
            row = {"kind": kind, "B": B, "T": T, "H": H, "I": H, "threads": threads}
            for name in ("streamrnn", "torch nn", "ort"):
                t = times[f"{name}@{threads}"]
                ms = float(np.median(t)) / 1e3
                row[name] = {**stats(t), "ms": ms, "steps_per_s": B * T / ms * 1e3}
            row["ratios"] = {f"{n}/ours": row[n]["ms"] / row["streamrnn"]["ms"] for n in ("torch nn", "ort")}
            row["gemm_floor"] = {"gflops_per_thread": rate, "rate_of": rate_source, "ms": floor_ms / threads}
            row["ratios"]["ours/floor"] = row["streamrnn"]["ms"] / row["gemm_floor"]["ms"]
            rows.append(row)
            print(f"{kind:<6}{B:>4}{T:>6}{H:>5}{threads:>8}{row['streamrnn']['ms']:>11.2f}"
                  f"{row['torch nn']['ms']:>10.2f}{row['ort']['ms']:>9.2f}{row['streamrnn']['steps_per_s']:>14,.0f}"
                  f"{row['torch nn']['steps_per_s']:>10,.0f}{row['ort']['steps_per_s']:>10,.0f}"
                  f"{row['ratios']['torch nn/ours']:>11.2f}x{row['ratios']['ort/ours']:>9.2f}x"
                  f"{row['gemm_floor']['ms']:>12.2f}{row['ratios']['ours/floor']:>10.2f}x", flush=True)
    print("streamrnn splits the batch across threads (sr.set_num_threads); for a row of B = 1 the second thread "
          "projects the inputs a chunk of steps ahead of the scan, which runs on one thread.\n"
          "GEMM floor: 2 x T x B x G x (I + H) flops (input and recurrent products; gates not counted) at one "
          "thread's float32 GEMM rate (the faster of torch.mm and streamrnn's Linear on the T*B x I x G product), "
          "divided by the threads.")
    return rows, diff


# ---------------------------------------------------------------------------------------------
# 5. ONNX's cell options: what peepholes and clipping cost against the same LSTM without them.


def options_case(B: int, T: int, H: int, rng: np.random.Generator) -> dict:
    """An LSTM(H, H) with and without peepholes and clip (the same other weights), and ONNX
    Runtime running the one with them, checked against it. T = 1: a stream's step (B = 1, state
    carried, step(out=)); else a whole sequence m(x) from a zero state."""
    import streamrnn as sr

    plain = sr.LSTM(H, H, seed=0)
    options = sr.LSTM(H, H, seed=0, peepholes=True, clip=1.0)  # clips some pre-activations
    options.load_state_dict({**options.state_dict(), **plain.state_dict()})
    ort = ort_stream(options, "LSTM", T=T, B=B, carry=T == 1)
    # 8 steps carried through a stream's one-step graph; one call of a sequence's.
    diff = check_onnx(options, "LSTM", ort, rng.standard_normal((8 if T == 1 else T, B, H)).astype(np.float32),
                      f"LSTM B={B} T={T} H={H} with peepholes and clip")
    if T == 1:
        x, out = rng.standard_normal((B, H)).astype(np.float32), np.empty((B, H), np.float32)
        streams = {"plain": plain.stream(B), "options": options.stream(B)}
        runs = {name: timed(lambda s=s: s.step(x, out=out)) for name, s in streams.items()}
        ort.x[...] = x[None]
    else:
        x = rng.standard_normal((T, B, H)).astype(np.float32)
        runs = {"plain": timed(lambda: plain(x)), "options": timed(lambda: options(x))}
        ort.x[...] = x
    runs["ort"] = timed(ort.run)
    return {"B": B, "T": T, "H": H, "diff": diff, "runs": runs}


def options_table(settings: dict) -> tuple:
    import streamrnn as sr

    sr.set_num_threads(1)
    rng = np.random.default_rng(4)
    cases = [options_case(B, T, H, rng) for B, T, H in ((1, 1, 16), (1, 1, 64), (1, 1, 256), (32, 100, 256))]
    diff = max(case["diff"] for case in cases)
    print(f"\n5. ONNX's cell options: LSTM(H, H) with peepholes and clip=1 against the same LSTM without them, "
          f"1 thread; median us per call (T = 1: a stream's step, B = 1; else a whole sequence).\n   ONNX check: "
          f"ONNX Runtime's LSTM with the same P and clip matches streamrnn (max abs diff {diff:.2g}).")
    print(f"{'B':>4}{'T':>6}{'H':>5}{'plain':>11}{'options':>11}{'ORT options':>13}{'options/plain':>15}"
          f"{'ort/options':>13}")
    rows = []
    for case in cases:
        rounds, chunk = ((settings["rounds"], settings["chunk_s"]) if case["T"] == 1
                         else (settings["seq_rounds"], settings["seq_chunk_s"]))
        times = measure(case["runs"], rounds, chunk)
        row = {key: case[key] for key in ("B", "T", "H")}
        row.update({name: stats(t) for name, t in times.items()})
        us = {name: row[name]["median_us"] for name in ("plain", "options", "ort")}
        row["ratios"] = {"options/plain": us["options"] / us["plain"], "ort/options": us["ort"] / us["options"]}
        rows.append(row)
        print(f"{row['B']:>4}{row['T']:>6}{row['H']:>5}{fmt(us['plain']):>11}{fmt(us['options']):>11}"
              f"{fmt(us['ort']):>13}{row['ratios']['options/plain']:>14.2f}x{row['ratios']['ort/options']:>12.2f}x",
              flush=True)
    return rows, diff


# ---------------------------------------------------------------------------------------------


def cpu_and_revision() -> tuple[str | None, str | None]:
    """The CPU's model name and the source's git revision, for a run's description."""
    cpu_model = None
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    try:
        git = subprocess.run(["git", "describe", "--always", "--dirty"], check=False, capture_output=True,
                             text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except OSError:
        git = None
    return cpu_model, git


def machine() -> dict:
    import onnx
    import onnxruntime
    import streamrnn
    import torch

    cpu_model, git = cpu_and_revision()
    return {"processor": platform.processor(), "cpu_model": cpu_model, "machine": platform.machine(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "streamrnn": streamrnn.__version__,
            "streamrnn_engine": streamrnn._core.ENGINE, "STREAMRNN_KERNELS": os.environ.get("STREAMRNN_KERNELS"),
            "git": git, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (well under a minute), for CI")
    parser.add_argument("--json", help="also write every number here, with the machine's description")
    parser.add_argument("--gemv-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gemv_worker:
        gemv_worker()
        return

    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # onnx_models, from any working directory
    torch.set_num_threads(1)
    settings = SETTINGS["quick" if args.quick else "full"]
    info = machine()
    print(f"streamrnn {info['streamrnn']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
          f"numpy {info['numpy']}; {info['cpu_model'] or info['processor'] or info['machine']}, "
          f"{info['cpu_count']} CPUs; {'quick' if args.quick else 'full'} run, {settings['rounds']} rounds per row "
          f"({settings['seq_rounds']} in table 3). Ratios above 1: streamrnn is faster.")
    laps = [time.perf_counter()]
    seconds = {}

    def lap(name: str) -> None:
        laps.append(time.perf_counter())
        seconds[name] = laps[-1] - laps[-2]

    floor = GemvFloor()
    try:
        with torch.inference_mode():
            step_rows, floor_rows, step_diff = step_table(settings, floor)
            lap("step")
            block_rows, block_diff = block_table(settings)
            lap("block")
            sequence_rows, sequence_diff = sequence_table(settings)
            lap("sequence")
        floor_table(floor_rows)
        options_rows, options_diff = options_table(settings)
        lap("options")
    finally:
        floor.close()
    runtime = time.perf_counter() - laps[0]
    print(f"\nruntime {runtime:.0f} s (" + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + ")")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "settings": {"quick": args.quick, **settings}, "runtime_s": runtime,
                       "table_seconds": seconds,
                       "onnx_max_abs_diff": {"step": step_diff, "block": block_diff, "sequence": sequence_diff,
                                             "options": options_diff},
                       "step": step_rows, "block": block_rows, "sequence": sequence_rows, "floor": floor_rows,
                       "options": options_rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
