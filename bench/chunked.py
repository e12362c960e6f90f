# bench/chunked.py: what latency-controlled chunks cost a bidirectional model: streamrnn's chunked
# stream and chunked forward against its full-sequence forward, and PyTorch running the same
# algorithm with its own modules. Part of streamrnn, MIT licence.
"""A 2-layer BLSTM (input 80, hidden 256) over T = 1000 steps, B = 1 and 16, for (chunk, lookahead)
= (10, 10), (30, 30), (64, 16): microseconds per input step of

- full: m(x), the whole-sequence bidirectional forward (no latency bound);
- chunked: m(x, chunk=, lookahead=), the same chunks on the whole sequence;
- stream: m.stream(B, chunk=, lookahead=) fed `chunk` steps per process call, then flush;
- torch: the same algorithm with PyTorch's one-direction nn.LSTM modules, chunk by chunk, as a
  user would write it (inference_mode, one thread);

and each one's cost over `full`; `steps` is the count of one-direction recurrent steps the chunks
run per input step, over the full forward's: what no exact implementation of the algorithm runs
fewer of on one thread. Every reverse direction runs over chunk and look-ahead in every window (it
starts from zeros at the window's end). A forward direction runs over the look-ahead only where
the next layer reads its outputs there, so not in the last layer (only the chunk's steps are
outputs, and the state carried is the chunk's); and layer 0's, whose inputs are the model's own
and the same in every window, runs once over each step (its look-ahead run is the next chunk's
run). The middle layers' look-ahead inputs differ from window to window. For L >= 2 layers:
(L (2C + R) + (L - 2) R) / (2 L C), 1.5 at C = R = 30 (one layer: (2C + R) / 2C).

Run: python bench/chunked.py [--quick]. Needs the installed streamrnn and torch.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # suite

from suite import machine, measure, timed  # noqa: E402

SETTINGS = {"full": {"rounds": 5, "chunk_s": 0.3, "T": 1000}, "quick": {"rounds": 1, "chunk_s": 0.02, "T": 200}}
I, H, L = 80, 256, 2
CHUNKINGS = ((10, 10), (30, 30), (64, 16))


def torch_lc(m):
    """The chunked forward with PyTorch's modules: per chunk and layer, the forward direction over
    the chunk with the carried state and over the look-ahead from a copy, the reverse from zeros."""
    import torch

    weights = m.state_dict()
    modules = []
    for layer in range(L):
        pair = []
        for suffix in ("", "_reverse"):
            lstm = torch.nn.LSTM(I if layer == 0 else 2 * H, H)
            lstm.load_state_dict({f"{n}_l0": torch.from_numpy(weights[f"{n}_l{layer}{suffix}"])
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
            pair.append(lstm.eval())
        modules.append(pair)

    def run(x, chunk, lookahead):
        T = x.shape[0]
        state, outputs = [None] * L, []
        for start in range(0, T, chunk):
            end, window_end = min(T, start + chunk), min(T, start + chunk + lookahead)
            inp = x[start:window_end]
            for layer, (forward, reverse) in enumerate(modules):
                C = end - start
                y_chunk, state[layer] = forward(inp[:C], state[layer])
                parts = [y_chunk] + ([forward(inp[C:], state[layer])[0]] if window_end > end else [])
                y_back = reverse(torch.flip(inp, [0]))[0]
                inp = torch.cat([torch.cat(parts), torch.flip(y_back, [0])], dim=-1)
            outputs.append(inp[: end - start])
        return torch.cat(outputs)

    return run


def work(chunk: int, lookahead: int) -> float:
    """One-direction recurrent steps per input step of the chunks, over the full forward's."""
    return (L * (2 * chunk + lookahead) + max(0, L - 2) * lookahead) / (2 * L * chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short sequence and one round: a smoke run")
    args = parser.parse_args()
    import torch

    import streamrnn as sr

    torch.set_num_threads(1)
    settings = SETTINGS["quick" if args.quick else "full"]
    T = settings["T"]
    info = machine()
    print(f"streamrnn {info['streamrnn']}, torch {info['torch']}; {info['cpu_model'] or info['machine']}, "
          f"{info['cpu_count']} CPUs; {'quick' if args.quick else 'full'} run. BLSTM {L}x{H}, input {I}, T = {T}, "
          f"one thread; us per input step, and over the full-sequence forward.")
    print(f"{'B':>3}{'chunk':>7}{'ahead':>7}{'full':>9}{'chunked':>9}{'stream':>9}{'torch':>9}"
          f"{'chunked/full':>14}{'stream/full':>13}{'steps':>7}{'torch/stream':>14}")
    m = sr.LSTM(I, H, L, bidirectional=True, seed=0)
    lc = torch_lc(m)
    rng = np.random.default_rng(0)
    for B in (1, 16):
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        xt = torch.from_numpy(x)
        for chunk, lookahead in CHUNKINGS:
            expected, _ = m(x, chunk=chunk, lookahead=lookahead)
            with torch.inference_mode():
                difference = float(np.abs(lc(xt, chunk, lookahead).numpy() - expected).max())
            if not difference <= 1e-4:
                raise SystemExit(f"bench/chunked.py: PyTorch's chunks and streamrnn's differ by {difference:.3g}")
            stream = m.stream(B, chunk=chunk, lookahead=lookahead)
            pieces = [x[t:t + chunk] for t in range(0, T, chunk)]

            def streamed() -> None:
                for piece in pieces:
                    stream.process(piece)
                stream.flush()

            def torch_run() -> None:
                with torch.inference_mode():
                    lc(xt, chunk, lookahead)

            runs = {"full": timed(lambda: m(x)), "chunked": timed(lambda: m(x, chunk=chunk, lookahead=lookahead)),
                    "stream": timed(streamed), "torch": timed(torch_run)}
            times = {name: float(np.median(t)) / T for name, t in
                     measure(runs, settings["rounds"], settings["chunk_s"]).items()}
            print(f"{B:>3}{chunk:>7}{lookahead:>7}{times['full']:>9.2f}{times['chunked']:>9.2f}{times['stream']:>9.2f}"
                  f"{times['torch']:>9.2f}{times['chunked'] / times['full']:>13.2f}x"
                  f"{times['stream'] / times['full']:>12.2f}x{work(chunk, lookahead):>6.2f}x"
                  f"{times['torch'] / times['stream']:>13.2f}x", flush=True)


if __name__ == "__main__":
    main()
