# python/streamrnn/__main__.py: `python -m streamrnn demo`, the README's streaming demo, `python -m
# streamrnn demo amp`, a guitar amp model at 48 kHz, and `python -m streamrnn run`, which streams a
# file as the C and C++ examples do.
# Part of streamrnn, MIT licence.
"""demo: streams a noisy sensor signal, sample by sample, through a small denoising LSTM that ships
with the package, and reports the latency per step and how much noise it removed.
demo amp [--out DIR]: streams a guitar through a small LSTM amp model (48 kHz) sample by sample and
in blocks, prints the real-time factors, and writes amp_out.wav (and amp_demo.png) into DIR.
serve MODEL [--host H] [--port N] [--max-streams N] [--max-batch N] [--max-delay-ms X] [--idle-timeout S]
[--token T]: serves MODEL's streams over WebSockets, one connection per stream (pip install streamrnn[serve]).
run MODEL INPUT [--chunk N]: streams INPUT (raw float32, I values per step) through MODEL and
prints one line per step, the outputs as %.9g: what examples/embedded/stream.c prints."""

from __future__ import annotations

import argparse
import time
from importlib import resources

import numpy as np

import streamrnn as sr


def demo() -> int:
    data = resources.files("streamrnn") / "data"
    with resources.as_file(data / "demo_lstm.safetensors") as path:
        model = sr.load(path)
    with resources.as_file(data / "demo_signal.npy") as path:
        noisy, clean = np.load(path)
    print(f"model: {model}, trained in PyTorch and moved over with sr.from_torch")
    print(f"signal: {noisy.size} samples of a noisy sensor (1 kHz)")

    # A real-time loop: one sample in, one estimate out, into a preallocated buffer.
    stream = model.stream(batch=1)
    sample = np.empty(1, np.float32)
    estimate = np.empty(1, np.float32)
    denoised = np.empty_like(noisy)
    step_ns = np.empty(noisy.size, np.int64)
    for t, value in enumerate(noisy):
        sample[0] = value
        start = time.perf_counter_ns()
        stream.step(sample, out=estimate)
        step_ns[t] = time.perf_counter_ns() - start
        denoised[t] = estimate[0]

    whole, _ = model(noisy[:, None])
    mismatch = float(np.abs(whole[:, 0] - denoised).max())
    settle = 200  # the first steps, while the state fills, are left out of the error
    rms_in = float(np.sqrt(np.mean((noisy[settle:] - clean[settle:]) ** 2)))
    rms_out = float(np.sqrt(np.mean((denoised[settle:] - clean[settle:]) ** 2)))
    median_us = float(np.median(step_ns)) / 1e3
    p99_us = float(np.percentile(step_ns, 99)) / 1e3
    print(f"step latency (from Python, incl. the call): median {median_us:.2f} us, p99 {p99_us:.2f} us")
    print(f"real-time factor at 48 kHz: {median_us * 48e-3:.3f} (below 1: faster than real time)")
    print(f"noise (rms error vs the clean signal): {rms_in:.4f} in, {rms_out:.4f} out "
          f"({20 * np.log10(rms_in / rms_out):.1f} dB removed)")
    print(f"streamed output vs whole-sequence forward: max abs difference {mismatch:.2e}")
    return 0 if mismatch < 1e-5 and rms_out < rms_in else 1


def run(model_path: str, input_path: str, chunk: int) -> int:
    model = sr.load(model_path)
    values = np.fromfile(input_path, dtype="<f4")
    if values.size % model.input_size:
        print(f"{input_path}: expected float32 values, {model.input_size} per step; got {values.size}")
        return 1
    x = values.reshape(-1, model.input_size)  # (T, I): one stream, unbatched
    stream = model.stream(batch=1)
    lines = []
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        y = stream.step(block[0]) if block.shape[0] == 1 else stream.process(block)
        for row in np.asarray(y).reshape(block.shape[0], -1):
            lines.append(" ".join(f"{float(v):.9g}" for v in row))
    print("\n".join(lines))
    return 0


def serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        from streamrnn.serve import serve as serve_model
    except ImportError:
        print("python -m streamrnn serve needs websockets: pip install streamrnn[serve]")
        return 1
    try:
        serve_model(sr.load(args.model), host=args.host, port=args.port, max_streams=args.max_streams,
                    max_batch=args.max_batch, max_delay=args.max_delay_ms / 1000, max_frames=args.max_frames,
                    idle_timeout=args.idle_timeout or None, token=args.token)
    except (TypeError, ValueError) as error:  # a Sequential or bidirectional model, bad options
        parser.error(str(error))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m streamrnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="stream the shipped signal through the shipped model")
    demo_parser.add_argument("which", nargs="?", choices=["denoiser", "amp"], default="denoiser",
                             help="denoiser (the default): a noisy sensor; amp: a guitar amp model")
    demo_parser.add_argument("--out", metavar="DIR", help="demo amp: where amp_out.wav and amp_demo.png go "
                             "(default: the current directory)")
    run_parser = commands.add_parser("run", help="stream a file of float32 samples through a model file")
    run_parser.add_argument("model", help="a model file (model.save(path))")
    run_parser.add_argument("input", help="raw float32 values, input_size per step")
    run_parser.add_argument("--chunk", type=int, default=1, help="steps per call (1: step, more: process)")
    serve_parser = commands.add_parser("serve", help="serve a model's streams over WebSockets (streamrnn[serve])")
    serve_parser.add_argument("model", help="a model file (model.save(path)): an LSTM, GRU or RNN")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8765)
    serve_parser.add_argument("--max-streams", type=int, default=64)
    serve_parser.add_argument("--max-batch", type=int, default=None)
    serve_parser.add_argument("--max-delay-ms", type=float, default=2.0)
    serve_parser.add_argument("--max-frames", type=int, default=4096, help="steps one message may hold")
    serve_parser.add_argument("--idle-timeout", type=float, default=300.0, help="seconds; 0: never")
    serve_parser.add_argument("--token", help="a shared secret clients send at open (not authentication)")
    args = parser.parse_args()
    if args.command == "serve":
        return serve(parser, args)
    if args.command == "run":
        if args.chunk < 1:
            parser.error("--chunk must be a positive number of steps")
        return run(args.model, args.input, args.chunk)
    if args.which == "amp":
        from streamrnn._amp_demo import amp_demo  # numpy and the standard library; matplotlib if there
        return amp_demo(args.out or ".")
    if args.out is not None:
        parser.error("--out is for demo amp")
    return demo()


if __name__ == "__main__":
    raise SystemExit(main())
