# bench/bench_train.py: one training step (forward, backward, Adam), streamrnn against PyTorch.
# Part of streamrnn, MIT licence.
"""Milliseconds per training step and the peak memory it adds, for an LSTM (2 layers, I = H = 256)
on a batch of B = 32 sequences of T = 100 steps: forward with the state kept, backward to every
weight, one Adam update. Each contender runs in its own process (so that peak RSS is its own),
alternating, with 1 and 2 threads. Run: python bench/bench_train.py [--steps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

T, B, I, H, LAYERS = 100, 32, 256, 256, 2


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(contender: str, threads: int, steps: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    if contender == "torch":
        import torch

        torch.set_num_threads(threads)
        model = torch.nn.LSTM(I, H, LAYERS)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

        def step():
            opt.zero_grad()
            y, _ = model(xt)
            y.backward(dyt)
            opt.step()
    else:
        import streamrnn as sr

        sr.set_num_threads(threads)  # the products over all steps, forward and backward
        model = sr.LSTM(I, H, LAYERS, seed=0)
        opt = sr.optim.Adam(model, lr=1e-3)

        def step():
            opt.zero_grad()
            model(x, train=True)
            model.backward(dy)
            opt.step()

    before = rss_mib()
    times = []
    for k in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        step()
        if k >= 2:
            times.append((time.perf_counter() - start) * 1e3)
    return {"contender": contender, "threads": threads, "ms": sorted(times)[len(times) // 2],
            "best_ms": min(times), "peak_added_mib": rss_mib() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json")
    parser.add_argument("--worker", nargs=2, metavar=("CONTENDER", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps)))
        return

    rows = []
    for threads in (1, 2):
        for contender in ("streamrnn", "torch"):
            out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--worker", contender,
                                  str(threads)], check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    # The floor: the step's multiply-adds (forward 1x, backward 2x the products) at this machine's
    # single-thread GEMM rate (bench/suite.py's: the faster of torch.mm and streamrnn's Linear) on
    # the step's product shape, divided by the threads. Measured after the workers ran: a child
    # process starts with its parent's peak memory (Linux keeps ru_maxrss across exec), so the
    # parent stays small while they run.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from suite import gemm_rate

    gflops, rate_of = gemm_rate(T * B, I + H, 4 * H)
    flops = 2.0 * T * B * (I + H) * 4 * H
    floor_ms = 3 * LAYERS * flops / (gflops * 1e9) * 1e3

    print(f"LSTM {LAYERS}x{H}, B={B}, T={T}, I={I}: training step (forward + backward + Adam)")
    print(f"GEMM floor: {floor_ms:.1f} ms on one thread, at {gflops:.1f} GFLOP/s ({rate_of}'s single-thread "
          f"product, this machine), divided by the threads")
    print(f"{'contender':<12}{'threads':>8}{'median ms':>11}{'best ms':>9}{'peak +MiB':>11}{'vs torch':>10}"
          f"{'vs floor':>10}")
    for row in rows:
        torch_ms = next(r["ms"] for r in rows if r["contender"] == "torch" and r["threads"] == row["threads"])
        row["floor_ratio"] = row["ms"] / (floor_ms / row["threads"])
        print(f"{row['contender']:<12}{row['threads']:>8}{row['ms']:>11.1f}{row['best_ms']:>9.1f}"
              f"{row['peak_added_mib']:>11.1f}{torch_ms / row['ms']:>9.2f}x{row['floor_ratio']:>9.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"floor_ms": floor_ms, "gflops_per_thread": gflops, "rate_of": rate_of, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
