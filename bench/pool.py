# bench/pool.py: many live streams of one model, stepped as the streams that are ready each tick:
# streamrnn's pool against PyTorch and ONNX Runtime serving loops, and the Batcher's latency.
# Part of streamrnn, MIT licence.
"""A service loop over N live streams: each tick a random 80% of them have a frame ready, and 1% of
them close and are replaced by new ones (their state back to zeros). Contenders, each written as
well as a user could write it:

- streamrnn: ``pool.step(ready_ids, x, out=y)``, ids in an int64 array; closing is pool.close and
  pool.open;
- PyTorch: every stream's state in one [L, capacity, H] tensor, gathered with index_select, one
  nn.LSTM / nn.GRU call on (1, N, I), scattered back with index_copy_, under inference_mode;
- ONNX Runtime: the same with NumPy gathers (np.take(..., out=)) into io-bound buffers, and
  scatters back.

Per row: frames per second per core, real-time streams per core at 100 frames/s, and the GEMM
floor (the tick's input and recurrent products at this machine's one-thread GEMM rate). On two
threads, streamrnn steps two pools of N/2 streams each on its own thread (what a service does
with a pool per core); PyTorch and ORT get two intra-op threads.

Then the Batcher: 256 streams whose frames 16 threads submit at 100 frames/s, submit-to-result
latency p50/p99 for a few max_delay, against max_delay + one batched step.

Run: python bench/pool.py [--quick] [--json out.json]. Needs the installed streamrnn, torch, onnx
and onnxruntime; it builds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # suite, onnx_models

from suite import gemm_rate, machine, measure, timed  # noqa: E402

SETTINGS = {
    "full": {"rounds": 5, "chunk_s": 0.25, "sizes": (1, 16, 64, 256, 1024), "batcher_s": 3.0,
             "delays": (0.001, 0.002, 0.005)},
    "quick": {"rounds": 1, "chunk_s": 0.02, "sizes": (1, 16, 64), "batcher_s": 0.5, "delays": (0.002,)},
}
MODELS = (("LSTM", 80, 512, 2), ("GRU", 80, 256, 2))
READY, TURNOVER, FPS = 0.8, 0.01, 100
TICKS = 64  # distinct ticks drawn per row; a run cycles through them
TOLERANCE = 1e-4  # the contenders agree on every tick's outputs (float32, 2 layers, many steps)


def draw_ticks(N: int, rng: np.random.Generator) -> list:
    """Each tick's ready slots (a random 80%, at least one) and the slots that close and reopen."""
    ready_count = max(1, round(READY * N))
    return [(np.sort(rng.choice(N, ready_count, replace=False)).astype(np.int64),
             np.flatnonzero(rng.random(N) < TURNOVER)) for _ in range(TICKS)]


class PoolLoop:
    """streamrnn: slots map to the pool's ids; a tick steps the ready ones."""

    def __init__(self, model, N: int, ticks: list, xs: list) -> None:
        self.pool = model.pool(N)
        self.ids = np.array([self.pool.open() for _ in range(N)], np.int64)
        self.ticks, self.xs, self.t = ticks, xs, 0
        most = max(len(ready) for ready, _ in ticks)
        self.ready_ids = np.empty(most, np.int64)
        self.y = np.empty((most, getattr(model, "proj_size", 0) or model.hidden_size), np.float32)

    def tick(self) -> np.ndarray:
        ready, turnover = self.ticks[self.t % TICKS]
        ids, y = self.ready_ids[: len(ready)], self.y[: len(ready)]
        np.take(self.ids, ready, out=ids)
        self.pool.step(ids, self.xs[self.t % TICKS], out=y)
        for slot in turnover:
            self.pool.close(int(self.ids[slot]))
            self.ids[slot] = self.pool.open()
        self.t += 1
        return y


class TorchLoop:
    """PyTorch: states in [L, capacity, H] tensors, index_select / one call / index_copy_."""

    def __init__(self, model, kind: str, N: int, ticks: list, xs: list) -> None:
        import torch

        self.torch = torch
        self.layer = getattr(torch.nn, kind)(model.input_size, model.hidden_size, model.num_layers)
        self.layer.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
        self.layer.eval()
        shape = (model.num_layers, N, model.hidden_size)
        self.h = torch.zeros(shape)
        self.c = torch.zeros(shape) if kind == "LSTM" else None
        self.ticks = [(torch.from_numpy(ready), torch.from_numpy(turnover)) for ready, turnover in ticks]
        self.xs = [torch.from_numpy(x).unsqueeze(0) for x in xs]
        self.t = 0

    def tick(self) -> np.ndarray:
        ready, turnover = self.ticks[self.t % TICKS]
        x = self.xs[self.t % TICKS]
        h0 = self.h.index_select(1, ready)
        if self.c is not None:
            y, (hn, cn) = self.layer(x, (h0, self.c.index_select(1, ready)))
            self.c.index_copy_(1, ready, cn)
        else:
            y, hn = self.layer(x, h0)
        self.h.index_copy_(1, ready, hn)
        if len(turnover):
            self.h[:, turnover] = 0.0
            if self.c is not None:
                self.c[:, turnover] = 0.0
        self.t += 1
        return y[0].numpy()


class OrtLoop:
    """ONNX Runtime: NumPy gathers into the io-bound initial states, one run, scatters back."""

    def __init__(self, model, kind: str, N: int, ticks: list, xs: list, threads: int) -> None:
        import onnx_models

        n = len(ticks[0][0])
        sess = onnx_models.session(onnx_models.to_onnx(model, T=1, B=n), threads)
        self.stream = onnx_models.OrtStream(sess, kind, model.num_layers, 1, n, model.input_size, model.hidden_size,
                                            carry=False)
        self.names = list(self.stream.states[0])
        self.all = {name: np.zeros((N, model.hidden_size), np.float32) for name in self.names}
        self.ticks, self.xs, self.t = ticks, xs, 0

    def tick(self) -> np.ndarray:
        ready, turnover = self.ticks[self.t % TICKS]
        s = self.stream
        s.x[0] = self.xs[self.t % TICKS]
        for name in self.names:
            np.take(self.all[name], ready, axis=0, out=s.states[0][name][0])
        s.run()
        for name in self.names:
            self.all[name][ready] = s.states[1][name][0]
            self.all[name][turnover] = 0.0
        self.t += 1
        return s.y[0]


class Sharded:
    """Two PoolLoops of N/2 streams each, ticked at once on two threads (this one and a worker)."""

    def __init__(self, halves: list) -> None:
        self.halves = halves
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.running = True
        self.worker.start()

    def _work(self) -> None:
        while True:
            self.go.acquire()
            if not self.running:
                return
            self.halves[1].tick()
            self.done.release()

    def tick(self) -> None:
        self.go.release()
        self.halves[0].tick()
        self.done.acquire()

    def close(self) -> None:
        self.running = False
        self.go.release()
        self.worker.join()


def check_agree(loops: dict, ticks: int = 2 * TICKS) -> float:
    """Runs every loop `ticks` ticks from fresh state; fails unless they all give the same outputs."""
    worst = 0.0
    for _ in range(ticks):
        outputs = {name: np.array(loop.tick()) for name, loop in loops.items()}
        reference = outputs.pop("streamrnn")
        for name, y in outputs.items():
            difference = float(np.max(np.abs(y - reference)))
            if not difference <= TOLERANCE:
                raise SystemExit(f"bench/pool.py: {name} and streamrnn disagree by {difference:.3g}")
            worst = max(worst, difference)
    return worst


def with_threads(threads: int, run):
    import torch

    def run_with(n: int) -> np.ndarray:
        torch.set_num_threads(threads)
        return run(n)
    return run_with


def pool_table(settings: dict) -> tuple[list, float]:
    import torch

    import streamrnn as sr

    print(f"\n1. A service loop over N live streams: each tick {READY:.0%} of the streams step, {TURNOVER:.0%} close and "
          f"are replaced.\n   Frames/s per core (frames stepped / tick time / threads), real-time streams per core at "
          f"{FPS} frames/s, and the tick's GEMM floor.")
    header = (f"{'model':<12}{'N':>6}{'thr':>4}{'streamrnn':>11}{'torch':>10}{'ORT':>10}{'vs best':>9}"
              f"{'RT streams':>11}{'floor':>10}{'ours/floor':>11}")
    print(header)
    rows, worst = [], 0.0
    rng = np.random.default_rng(0)
    for kind, I, H, L in MODELS:
        model = getattr(sr, kind)(I, H, L, seed=1)
        G = {"LSTM": 4, "GRU": 3}[kind] * H
        for N in settings["sizes"]:
            ticks = draw_ticks(N, rng)
            n = len(ticks[0][0])
            xs = [rng.standard_normal((n, I)).astype(np.float32) for _ in range(TICKS)]
            with torch.inference_mode():
                worst = max(worst, check_agree({"streamrnn": PoolLoop(model, N, ticks, xs),
                                                "torch": TorchLoop(model, kind, N, ticks, xs),
                                                "ort": OrtLoop(model, kind, N, ticks, xs, 1)}))
            rate, _ = gemm_rate(n, I + H, G)
            floor_us = sum(2.0 * n * G * ((I if l == 0 else H) + H) for l in range(L)) / rate / 1e3  # rate: flops per ns
            for threads in (1, 2):
                if threads == 2 and N < 16:
                    continue  # nothing to split
                runs, closers = {}, []
                if threads == 1:
                    ours = PoolLoop(model, N, ticks, xs)
                    runs["streamrnn"] = timed(ours.tick)
                else:
                    halves = []
                    for part in (0, 1):  # each thread's pool holds the streams of every other slot
                        mine = [ready % 2 == part for ready, _ in ticks]
                        part_ticks = [(ready[m] // 2, turnover[turnover % 2 == part] // 2)
                                      for (ready, turnover), m in zip(ticks, mine)]
                        halves.append(PoolLoop(model, (N + 1 - part) // 2, part_ticks,
                                               [np.ascontiguousarray(x[m]) for x, m in zip(xs, mine)]))
                    sharded = Sharded(halves)
                    closers.append(sharded.close)
                    runs["streamrnn"] = timed(sharded.tick)
                torch_loop = TorchLoop(model, kind, N, ticks, xs)
                runs["torch"] = with_threads(threads, timed(torch_loop.tick))
                runs["ort"] = timed(OrtLoop(model, kind, N, ticks, xs, threads).tick)
                with torch.inference_mode():
                    times = measure(runs, settings["rounds"], settings["chunk_s"])
                for close in closers:
                    close()
                torch.set_num_threads(1)
                row = {"kind": kind, "I": I, "H": H, "L": L, "N": N, "ready": n, "threads": threads}
                for name, t in times.items():
                    us = float(np.median(t))
                    row[name] = {"tick_us": us, "p99_us": float(np.percentile(t, 99)),
                                 "frames_per_s_per_core": n / us * 1e6 / threads}
                fps = {name: row[name]["frames_per_s_per_core"] for name in ("streamrnn", "torch", "ort")}
                row["vs_best_peer"] = fps["streamrnn"] / max(fps["torch"], fps["ort"])
                row["realtime_streams_per_core"] = fps["streamrnn"] / FPS
                row["gemm_floor"] = {"tick_us": floor_us / threads, "frames_per_s_per_core": n / floor_us * 1e6,
                                     "gflops_per_thread": rate}
                row["ours_over_floor"] = row["gemm_floor"]["frames_per_s_per_core"] / fps["streamrnn"]
                rows.append(row)
                print(f"{kind} {L}x{H:<6}{N:>6}{threads:>4}{fps['streamrnn']:>11,.0f}{fps['torch']:>10,.0f}"
                      f"{fps['ort']:>10,.0f}{row['vs_best_peer']:>8.2f}x{row['realtime_streams_per_core']:>11,.0f}"
                      f"{row['gemm_floor']['frames_per_s_per_core']:>10,.0f}{row['ours_over_floor']:>10.2f}x", flush=True)
    print(f"Frames/s are per core; 'vs best': streamrnn over the faster of PyTorch and ORT; 'RT streams': streams a "
          f"core keeps at {FPS} frames/s. Floor: 2 x n x G x (I_l + H) flops per layer at the faster one-thread GEMM "
          f"(torch.mm or streamrnn's Linear) on the tick's shape. The contenders agree on every output "
          f"(max abs diff {worst:.2g}).")
    return rows, worst


def batcher_table(settings: dict) -> list:
    import streamrnn as sr

    kind, I, H, L = "GRU", 80, 256, 2
    streams, producers = 256, 16
    model = getattr(sr, kind)(I, H, L, seed=2)
    print(f"\n2. The Batcher: {streams} streams of a {kind} {L}x{H} (input {I}), their frames submitted by {producers} "
          f"threads at {FPS} frames/s each; submit-to-result latency.")
    print(f"{'max_delay ms':>13}{'max_batch':>10}{'p50 ms':>9}{'p99 ms':>9}{'step ms':>9}{'bound ms':>10}"
          f"{'frames/batch':>13}")
    rows = []
    rng = np.random.default_rng(4)
    frames = rng.standard_normal((64, I)).astype(np.float32)
    for delay in settings["delays"]:
        pool = model.pool(streams)
        ids = [pool.open() for _ in range(streams)]
        max_batch = 64
        # One batched step of max_batch streams, as the bound's second term.
        batch_ids = np.array(ids[:max_batch], np.int64)
        step_times = []
        for _ in range(20):
            start = time.perf_counter()
            pool.step(batch_ids, frames[:max_batch])
            step_times.append(time.perf_counter() - start)
        step_s = float(np.median(step_times))
        latencies, lock = [], threading.Lock()
        with sr.Batcher(pool, max_batch=max_batch, max_delay=delay) as batcher:
            stop = time.perf_counter() + settings["batcher_s"]

            def produce(p: int) -> None:
                mine = ids[p::producers]
                period = 1.0 / FPS
                phase = [rng.random() * period for _ in mine]  # each stream's frames at its own phase
                next_due = [time.perf_counter() + ph for ph in phase]
                k = 0
                while True:
                    i = int(np.argmin(next_due))
                    now = time.perf_counter()
                    if next_due[i] > now:
                        time.sleep(next_due[i] - now)
                    if next_due[i] > stop:
                        return
                    submitted = time.perf_counter()
                    future = batcher.submit(mine[i], frames[k % 64])
                    future.add_done_callback(
                        lambda f, s=submitted: (lock.acquire(), latencies.append(time.perf_counter() - s), lock.release()))
                    next_due[i] += period
                    k += 1

            threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stats = batcher.stats()
        lat = np.array(latencies) * 1e3
        row = {"kind": kind, "H": H, "L": L, "streams": streams, "producers": producers, "max_delay_ms": delay * 1e3,
               "max_batch": max_batch, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
               "step_ms": step_s * 1e3, "bound_ms": (delay + step_s) * 1e3, "frames": len(lat),
               "frames_per_batch": stats["frames"] / max(stats["batches"], 1)}
        rows.append(row)
        print(f"{row['max_delay_ms']:>13.1f}{max_batch:>10}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['step_ms']:>9.2f}{row['bound_ms']:>10.2f}{row['frames_per_batch']:>13.1f}", flush=True)
    print("bound: max_delay + one batched step of max_batch streams (the target for p99). Latency: from submit to the "
          "future's completion, which the next submit on any thread (or the batcher's delivery thread) does under the GIL.")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N, one round: a smoke run for CI")
    parser.add_argument("--json", help="also write every number here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    settings = SETTINGS["quick" if args.quick else "full"]
    info = machine()
    print(f"streamrnn {info['streamrnn']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}; "
          f"{info['cpu_model'] or info['machine']}, {info['cpu_count']} CPUs; {'quick' if args.quick else 'full'} run. "
          f"Ratios above 1: streamrnn is faster.")
    start = time.perf_counter()
    pool_rows, worst = pool_table(settings)
    batcher_rows = batcher_table(settings)
    print(f"\nruntime {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "settings": {"quick": args.quick}, "pool": pool_rows,
                       "onnx_max_abs_diff": worst, "batcher": batcher_rows}, f, indent=1)


if __name__ == "__main__":
    main()
