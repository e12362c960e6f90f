# bench/gpu.py: streamrnn's CUDA backend against PyTorch (cuDNN) on the same GPU, in one command.
# Part of streamrnn, MIT licence.
"""streamrnn on an NVIDIA GPU against PyTorch (cuDNN) on the same GPU: streaming step latency,
whole sequences, and a training step, after a parity check of every timed model.

Run: python bench/gpu.py [--quick] [--json results.json]. It builds nothing and needs streamrnn
built with its CUDA backend (CMake found nvcc and cuBLAS; streamrnn.cuda.is_available()), a CUDA
build of torch (torch.cuda.is_available()) and an NVIDIA GPU; without them it prints one line
saying what is missing and exits with status 2. The full run is sized for about a minute on an
H100; --quick (fewer rounds, the small training size only) for about 30 s, most of it CUDA's and
cuDNN's start-up: a smoke run that checks everything runs and agrees, its numbers rough. Exit
status 1: a parity check failed (the tables are still printed, and written by --json).

As in bench/suite.py (whose timer and statistics this reuses), each row times its contenders in
alternating rounds within this process, the order rotating each round, so that drift of the GPU's
clocks and of the host hits them alike: read the ratios within a row, `torch/ours` above 1 meaning
streamrnn is faster. Each call is timed on its own with time.perf_counter_ns, until its output is
ready: streamrnn's calls return once their outputs are written (each synchronizes its own CUDA
stream), and every torch call is followed by torch.cuda.synchronize(). Medians and 99th
percentiles are over all calls of all rounds, after warm-up calls (streamrnn captures a stream's
CUDA graph on its first step; cuDNN sets up on first use); the garbage collector is off while a
contender runs. TF32 is off on both sides (torch.backends.cuda.matmul.allow_tf32,
torch.backends.cudnn.allow_tf32, streamrnn.cuda.set_allow_tf32), so outputs agree to float32
rounding: the parity check allows a max abs difference of 1e-4. torch runs cuDNN's RNNs
(torch.backends.cudnn.enabled, its default), under torch.inference_mode() but for training.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np

# bench/suite.py, the CPU suite, found next to this file: importing it loads NumPy alone.
from suite import Run, cpu_and_revision, fmt, rotate, stats, timed

DEVICE = "cuda"
TOLERANCE = 1e-4  # max abs difference allowed between streamrnn's GPU outputs and torch's
PARITY_STEPS = 10

# Table 1: (kind, H = I, B streams); table 2: (kind, B, T, H = I); table 3: LSTM (layers, H = I, B,
# T, also in --quick). The first training size is bench/bench_train.py's.
STEP_CASES = [(kind, H, B) for kind, H in (("LSTM", 256), ("LSTM", 512), ("GRU", 256)) for B in (1, 256)]
SEQUENCE_CASES = [(kind, 64, 1000, 512) for kind in ("LSTM", "GRU")]
TRAIN_CASES = [(2, 256, 32, 100, True), (1, 512, 64, 1000, False)]

# Per table: rounds, calls per contender per round, and warm-up calls per contender before them.
SETTINGS = {
    "full": {"step": (7, 300, 30), "sequence": (5, 3, 2), "train": (5, 2, 2)},
    "quick": {"step": (3, 100, 20), "sequence": (2, 2, 1), "train": (2, 1, 1)},
}


def alternate(runs: dict[str, Run], rounds: int, calls: int, warmup: int) -> dict[str, np.ndarray]:
    """Microseconds per call of every contender: `warmup` calls of each, then `rounds` rounds of
    `calls` calls of each, rotated as suite.rotate does (the collector off during each)."""
    for run in runs.values():
        run(warmup)
    return rotate(runs, rounds, {name: calls for name in runs})


def ms_stats(times: np.ndarray, steps: int) -> dict:
    """stats() of microsecond times, with the median and p99 in ms and steps/s at the median."""
    ms = float(np.median(times)) / 1e3
    return {**stats(times), "ms": ms, "p99_ms": float(np.percentile(times, 99)) / 1e3, "steps_per_s": steps / ms * 1e3}


# ---------------------------------------------------------------------------------------------
# Models, and the parity of streamrnn's GPU outputs with torch's.


def twin(model, kind: str):
    """PyTorch's nn.LSTM / nn.GRU with the streamrnn model's weights, on DEVICE, in eval mode
    (training-mode cuDNN forwards keep what backward needs)."""
    import torch

    layer = getattr(torch.nn, kind)(model.input_size, model.hidden_size, model.num_layers)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return layer.to(DEVICE).eval()


def max_diff(ours, reference) -> float:
    """Max abs difference of streamrnn's output (a DeviceArray, a torch tensor it wrote, or NumPy)
    from torch's tensor. It waits for the result, so `ours` may be overwritten afterwards."""
    import torch

    return float((torch.as_tensor(ours, device=DEVICE) - reference).abs().max())


def state_diff(ours, reference) -> float:
    """max_diff over a state: h, or an LSTM's (h, c)."""
    pairs = zip(ours, reference, strict=True) if isinstance(reference, tuple) else [(ours, reference)]
    return max(max_diff(a, b) for a, b in pairs)


def step_case(kind: str, H: int, B: int) -> dict:
    """Table 1's row: B streams stepping a (B, H) input, state carried, after PARITY_STEPS steps of
    each streamrnn path compared with torch stepping the same inputs from a zero state."""
    import torch

    import streamrnn as sr

    model = getattr(sr, kind)(H, H, 1, seed=0).to(DEVICE)
    layer = twin(model, kind)
    sync = torch.cuda.synchronize
    xs = torch.randn(PARITY_STEPS, B, H, device=DEVICE)
    xs_host = xs.cpu().numpy()
    out, out_host = torch.empty(B, H, device=DEVICE), np.empty((B, H), np.float32)
    stream, stream_host = model.stream(B), model.stream(B)
    # streamrnn reads a torch tensor without waiting on torch's CUDA stream (torch's
    # __cuda_array_interface__ names none): inputs must be written before they are passed.
    sync()
    diffs = {"device arrays": 0.0, "NumPy": 0.0}
    with torch.inference_mode():
        state = None
        for t in range(PARITY_STEPS):
            reference, state = layer(xs[t:t + 1], state)
            stream.step(xs[t], out=out)
            stream_host.step(xs_host[t], out=out_host)
            diffs["device arrays"] = max(diffs["device arrays"], max_diff(out, reference[0]))
            diffs["NumPy"] = max(diffs["NumPy"], max_diff(out_host, reference[0]))

    x, x_host, x_seq = xs[0], xs_host[0], xs[:1]
    carried = {"state": None}

    def torch_step():
        _, carried["state"] = layer(x_seq, carried["state"])
        sync()

    return {"kind": kind, "H": H, "B": B, "label": f"{kind} H={H} B={B}, {PARITY_STEPS} streaming steps",
            "parity": diffs,
            "runs": {"streamrnn": timed(lambda: stream.step(x, out=out)),
                     "streamrnn numpy": timed(lambda: stream_host.step(x_host, out=out_host)),
                     "torch": timed(torch_step)}}


def sequence_case(kind: str, B: int, T: int, H: int) -> dict:
    """Table 2's row: one whole sequence per call from a zero state, x a torch CUDA tensor, after
    comparing one call's y and final state with torch's."""
    import torch

    import streamrnn as sr

    model = getattr(sr, kind)(H, H, 1, seed=0).to(DEVICE)
    layer = twin(model, kind)
    sync = torch.cuda.synchronize
    x = torch.randn(T, B, H, device=DEVICE)
    sync()  # as in step_case: x is written before streamrnn reads it
    with torch.inference_mode():
        y, state = model(x)
        reference, reference_state = layer(x)
        diffs = {"y": max_diff(y, reference), "final state": state_diff(state, reference_state)}

    def torch_call():
        layer(x)
        sync()

    # streamrnn's time includes freeing its outputs: the call's result is dropped inside the timer,
    # as torch's is.
    return {"kind": kind, "B": B, "T": T, "H": H, "label": f"{kind} B={B} T={T} H={H}, whole sequence",
            "parity": diffs, "runs": {"streamrnn": timed(lambda: model(x)), "torch": timed(torch_call)}}


def train_case(L: int, H: int, B: int, T: int) -> dict:
    """Table 3's row: an LSTM training step (forward keeping the state, backward from a fixed
    dL/dy, one Adam update). streamrnn's contender is there only if its GPU training is: the
    attempt (also its first warm-up step) raising NotImplementedError says it is not."""
    import torch

    import streamrnn as sr

    model = sr.LSTM(H, H, L, seed=0).to(DEVICE)
    layer = twin(model, "LSTM").train()
    sync = torch.cuda.synchronize
    x, dy = torch.randn(T, B, H, device=DEVICE), torch.randn(T, B, H, device=DEVICE)
    sync()
    torch_opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    opt = sr.optim.Adam([model], lr=1e-3)

    def torch_step():
        torch_opt.zero_grad()
        y, _ = layer(x)
        # The loss sum(y * dy): the same backward as streamrnn's backward(dy), and bench_train.py's.
        y.backward(dy)
        torch_opt.step()
        sync()

    def ours_step():
        opt.zero_grad()
        model(x, train=True)
        model.backward(dy)
        opt.step()

    runs = {"torch": timed(torch_step)}
    try:
        ours_step()
    except NotImplementedError as error:
        missing = str(error)
    else:
        missing = None
        runs = {"streamrnn": timed(ours_step), **runs}
    return {"layers": L, "H": H, "B": B, "T": T, "missing": missing, "runs": runs}


def print_parity(cases: list) -> list:
    print(f"\nParity with torch on the GPU: max abs difference, allowed {TOLERANCE:g} (TF32 off on both sides).")
    rows = []
    for case in cases:
        ok = all(d < TOLERANCE for d in case["parity"].values())
        rows.append({"check": case["label"], "max_abs_diff": case["parity"], "ok": ok})
        diffs = ", ".join(f"{name} {d:.2g}" for name, d in case["parity"].items())
        print(f"  {case['label']:<44}{diffs:<44}{'ok' if ok else 'FAIL'}")
    return rows


# ---------------------------------------------------------------------------------------------
# The tables.


def step_table(cases: list, settings: dict) -> list:
    print("\n1. Streaming step latency: 1 layer, I = H, B independent streams, one step per call, state carried; "
          "median/p99 us per step,\n   each until its output is ready: streamrnn `stream.step(x, out=out)` on "
          "torch CUDA tensors (device) or NumPy arrays (NumPy, copied in and out);\n   torch nn.X on a (1, B, I) "
          "CUDA tensor with the carried state, then torch.cuda.synchronize().")
    print(f"{'model':<6}{'H':>5}{'B':>5}{'ours (device)':>17}{'ours (NumPy)':>17}{'torch':>17}{'torch/ours':>12}")
    rows = []
    for case in cases:
        times = alternate(case["runs"], *settings["step"])
        row = {"kind": case["kind"], "layers": 1, "H": case["H"], "I": case["H"], "B": case["B"],
               **{name: stats(t) for name, t in times.items()}}
        row["ratios"] = {"torch/ours": row["torch"]["median_us"] / row["streamrnn"]["median_us"]}
        rows.append(row)
        cols = "".join(f"{fmt(row[n]['median_us']) + '/' + fmt(row[n]['p99_us']):>17}"
                       for n in ("streamrnn", "streamrnn numpy", "torch"))
        print(f"{row['kind']:<6}{row['H']:>5}{row['B']:>5}{cols}{row['ratios']['torch/ours']:>11.2f}x", flush=True)
    return rows


def sequence_table(cases: list, settings: dict) -> list:
    print("\n2. Whole sequences: 1 layer, I = H, zero initial state, x a torch CUDA tensor (T, B, I); median/p99 ms "
          "per call, each until y is ready,\n   and steps/s = B x T per second at the median. streamrnn `m(x)`; "
          "torch nn.X(x), then torch.cuda.synchronize().")
    print(f"{'model':<6}{'B':>4}{'T':>6}{'H':>5}{'ours ms':>17}{'torch ms':>17}{'steps/s ours':>15}"
          f"{'torch':>13}{'torch/ours':>12}")
    rows = []
    for case in cases:
        B, T = case["B"], case["T"]
        times = alternate(case["runs"], *settings["sequence"])
        row = {"kind": case["kind"], "layers": 1, "B": B, "T": T, "H": case["H"], "I": case["H"],
               **{name: ms_stats(t, B * T) for name, t in times.items()}}
        row["ratios"] = {"torch/ours": row["torch"]["ms"] / row["streamrnn"]["ms"]}
        rows.append(row)
        ms = "".join(f"{row[n]['ms']:.2f}/{row[n]['p99_ms']:.2f}".rjust(17) for n in ("streamrnn", "torch"))
        print(f"{row['kind']:<6}{B:>4}{T:>6}{row['H']:>5}{ms}{row['streamrnn']['steps_per_s']:>15,.0f}"
              f"{row['torch']['steps_per_s']:>13,.0f}{row['ratios']['torch/ours']:>11.2f}x", flush=True)
    return rows


def train_table(cases: list, settings: dict) -> list:
    print("\n3. Training step: LSTM, I = H, forward keeping the state, backward from a fixed dL/dy to every weight, "
          "one Adam update (lr 1e-3);\n   median/p99 ms per step, each until done (torch: then "
          "torch.cuda.synchronize()). streamrnn: m(x, train=True), m.backward(dy), sr.optim.Adam.")
    print(f"{'model':<6}{'L':>2}{'H':>5}{'B':>4}{'T':>6}{'ours ms':>30}{'torch ms':>15}{'torch/ours':>12}")
    rows = []
    for case in cases:
        times = alternate(case["runs"], *settings["train"])
        row = {"kind": "LSTM", **{k: case[k] for k in ("layers", "H", "B", "T")}, "I": case["H"],
               "streamrnn": None, "streamrnn_missing": case["missing"],
               **{name: ms_stats(t, case["B"] * case["T"]) for name, t in times.items()}}
        torch_ms = row["torch"]["ms"]
        if row["streamrnn"] is None:
            ours, ratio, ratio_text = "n/a (not implemented on GPU)", None, "-"
        else:
            ours = f"{row['streamrnn']['ms']:.2f}/{row['streamrnn']['p99_ms']:.2f}"
            ratio = torch_ms / row["streamrnn"]["ms"]
            ratio_text = f"{ratio:.2f}x"
        row["ratios"] = {"torch/ours": ratio}
        rows.append(row)
        theirs = f"{torch_ms:.2f}/{row['torch']['p99_ms']:.2f}"
        print(f"{'LSTM':<6}{case['layers']:>2}{case['H']:>5}{case['B']:>4}{case['T']:>6}{ours:>30}{theirs:>15}"
              f"{ratio_text:>12}", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------


def missing_gpu() -> str | None:
    """Why this machine cannot run the benchmark, in one line; None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (a CUDA build of torch is needed)"
    import streamrnn as sr

    problems = []
    if not sr.cuda.is_available():
        try:
            sr.cuda.backend(0)  # raises RuntimeError saying why: no backend module, no driver, no GPU
        except RuntimeError as error:
            problems.append(f"streamrnn.cuda.is_available() is False ({error})")
        else:
            problems.append("streamrnn.cuda.is_available() is False")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        problems.append(f"torch.cuda.is_available() is False (torch {torch.__version__}, {build})")
    return "; ".join(problems) or None


def driver_version() -> str | None:
    """The NVIDIA driver's version from nvidia-smi (torch does not report it); None without it."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], check=False,
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.split("\n")[0].strip() or None


def machine() -> dict:
    import torch

    import streamrnn

    gpu = torch.cuda.get_device_properties(0)
    cpu_model, git = cpu_and_revision()
    return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{gpu.major}.{gpu.minor}",
            "sm_count": gpu.multi_processor_count, "gpu_memory_gib": gpu.total_memory / 2**30,
            "gpus_seen": torch.cuda.device_count(), "driver": driver_version(), "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "torch": torch.__version__, "streamrnn": streamrnn.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "cpu_model": cpu_model,
            "platform": platform.platform(), "git": git, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, the small training size only (~30 s)")
    parser.add_argument("--json", help="also write every number here, with the machine's description")
    args = parser.parse_args()
    problem = missing_gpu()
    if problem:
        print(f"bench/gpu.py: no GPU benchmark on this machine: {problem}", file=sys.stderr)
        return 2

    import torch

    import streamrnn as sr

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sr.cuda.set_allow_tf32(False)
    torch.manual_seed(0)
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    info = machine()
    print(f"{info['gpu']} (compute {info['compute_capability']}, {info['sm_count']} SMs, "
          f"{info['gpu_memory_gib']:.0f} GiB), driver {info['driver']}, CUDA {info['torch_cuda']} (torch's), "
          f"cuDNN {info['cudnn']}; torch {info['torch']}, streamrnn {info['streamrnn']}; host {info['cpu_model']}."
          f"\n{mode} run: rounds x calls per contender: {' / '.join(f'{r} x {c}' for r, c, _ in settings.values())} "
          f"in tables 1 / 2 / 3. TF32 off. Ratios above 1: streamrnn is faster.", flush=True)
    laps = [time.perf_counter()]
    seconds = {}

    def lap(name: str) -> None:
        laps.append(time.perf_counter())
        seconds[name] = laps[-1] - laps[-2]

    step_cases = [step_case(*case) for case in STEP_CASES]
    sequence_cases = [sequence_case(*case) for case in SEQUENCE_CASES]
    train_cases = [train_case(*case[:4]) for case in TRAIN_CASES if case[4] or not args.quick]
    parity = print_parity(step_cases + sequence_cases)
    lap("set-up and parity")
    with torch.inference_mode():
        step_rows = step_table(step_cases, settings)
        lap("step")
        sequence_rows = sequence_table(sequence_cases, settings)
        lap("sequence")
    train_rows = train_table(train_cases, settings)
    lap("train")
    runtime = time.perf_counter() - laps[0]
    failed = [row["check"] for row in parity if not row["ok"]]
    print(f"\nruntime {runtime:.0f} s (" + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + ")")
    if failed:
        print(f"FAIL: {len(failed)} parity check(s) above {TOLERANCE:g}: " + "; ".join(failed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info,
                       "settings": {"quick": args.quick, **settings, "tolerance": TOLERANCE,
                                    "torch_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                                    "torch_cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                                    "streamrnn_allow_tf32": sr.cuda.allow_tf32(),
                                    "cudnn_enabled": torch.backends.cudnn.enabled,
                                    "cudnn_benchmark": torch.backends.cudnn.benchmark},
                       "runtime_s": runtime, "table_seconds": seconds, "parity": parity, "parity_ok": not failed,
                       "step": step_rows, "sequence": sequence_rows, "train": train_rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
