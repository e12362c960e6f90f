# python/streamrnn/_amp_demo.py: `python -m streamrnn demo amp`, a guitar amp model streamed at 48 kHz.
# Part of streamrnn, MIT licence.
"""The amp demo: a small Neural Amp Modeler-style LSTM (LSTM(1, 16) + Linear(16, 1), trained to
imitate an overdrive by tools/make_amp_model.py) that ships with the package processes three seconds
of a synthetic plucked guitar, sample by sample with Stream.step and block by block with
Stream.process at several block sizes. Every chunking must give the whole-sequence output m(x); the
demo prints how far apart they are and the real-time factor of each, then writes the processed
audio (amp_out.wav, 16-bit PCM) and, with matplotlib, a plot (amp_demo.png): the waveforms around a
note's attack and the spectra before and after the amp."""

from __future__ import annotations

import os
import time
import wave
from importlib import resources
from typing import Any, Iterable

import numpy as np

import streamrnn as sr

_TOLERANCE = 1e-5  # max abs difference allowed between any chunking and the whole-sequence call
_INT16 = 32767.0  # the shipped signal is int16, this many per unit


def _load() -> "tuple[Any, np.ndarray, np.ndarray]":
    """The shipped model, its input (float32, (T,)) and the target amp's output for reference."""
    data = resources.files("streamrnn") / "data"
    with resources.as_file(data / "amp_lstm.safetensors") as path:
        model = sr.load(path)
    with resources.as_file(data / "amp_signal.npy") as path:
        signal, target = np.load(path).astype(np.float32) / np.float32(_INT16)
    return model, np.ascontiguousarray(signal), np.ascontiguousarray(target)


def _stream_steps(stream: Any, x: np.ndarray) -> "tuple[np.ndarray, float]":
    """x through stream one sample at a time into preallocated buffers: (y, seconds)."""
    sample = np.empty(1, np.float32)
    out = np.empty(1, np.float32)
    y = np.empty_like(x)
    start = time.perf_counter()
    for t, value in enumerate(x):
        sample[0] = value
        stream.step(sample, out=out)
        y[t] = out[0]
    return y, time.perf_counter() - start


def _stream_blocks(stream: Any, x: np.ndarray, block: int) -> "tuple[np.ndarray, float]":
    """x through stream in blocks of `block` samples (the last one shorter): (y, seconds)."""
    column = x[:, None]  # (T, 1): one stream, unbatched
    y = np.empty_like(x)
    start = time.perf_counter()
    for begin in range(0, x.size, block):
        y[begin:begin + block] = stream.process(column[begin:begin + block])[:, 0]
    return y, time.perf_counter() - start


def _write_wav(path: str, y: np.ndarray, rate: int) -> None:
    """Mono 16-bit PCM, clipped to full scale."""
    pcm = np.round(np.clip(y, -1.0, 1.0) * _INT16).astype("<i2")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def _spectrum_db(x: np.ndarray, rate: int, size: int = 4096) -> "tuple[np.ndarray, np.ndarray]":
    """Averaged magnitude spectrum (Hann windows, half overlapping) in dB re a full-scale sine."""
    window = np.hanning(size)
    starts = range(0, x.size - size + 1, size // 2)
    power = np.mean([np.abs(np.fft.rfft(x[s:s + size] * window)) ** 2 for s in starts], axis=0)
    db = 10.0 * np.log10(np.maximum(power / (window.sum() / 2.0) ** 2, 1e-14))
    return np.fft.rfftfreq(size, 1.0 / rate), db


def _plot(path: str, x: np.ndarray, y: np.ndarray, rate: int) -> bool:
    """Waveforms around the first note's attack and both spectra into path; False without matplotlib."""
    try:
        from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone
    except ImportError:
        return False
    onset = int(np.argmax(np.abs(x) > 0.05))
    begin = max(onset - rate // 500, 0)  # 2 ms before the attack ...
    end = min(begin + rate // 50, x.size)  # ... to 20 ms on
    ms = (np.arange(begin, end) - onset) * 1e3 / rate

    fig = Figure(figsize=(9, 7))
    wave_ax, spec_ax = fig.subplots(2, 1, gridspec_kw={"hspace": 0.45})
    wave_ax.plot(ms, x[begin:end], label="input (clean guitar)", linewidth=1.0)
    wave_ax.plot(ms, y[begin:end], label="output (LSTM amp model)", linewidth=1.0)
    wave_ax.set_title("Waveforms around the first note's attack")
    wave_ax.set_xlabel("time from the attack (ms)")
    wave_ax.set_ylabel("amplitude")
    wave_ax.grid(True, alpha=0.3)
    wave_ax.legend(loc="upper right")

    for signal, label in ((x, "input"), (y, "output")):
        freq, db = _spectrum_db(signal, rate)
        spec_ax.semilogx(freq[1:], db[1:], label=label, linewidth=0.8)
    spec_ax.set_xlim(20, rate / 2)
    spec_ax.set_title("Magnitude spectra of the whole signal")
    spec_ax.set_xlabel("frequency (Hz)")
    spec_ax.set_ylabel("magnitude (dB re full-scale sine)")
    spec_ax.grid(True, which="both", alpha=0.3)
    spec_ax.legend(loc="upper right")
    fig.suptitle("streamrnn amp demo: LSTM(1, 16) overdrive at 48 kHz")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return True


def amp_demo(out_dir: str = ".", block_sizes: Iterable[int] = (32, 64, 128, 256, 512)) -> int:
    """Streams the shipped guitar signal through the shipped amp model, sample by sample and in
    blocks of each of block_sizes; prints the real-time factors and the differences from the
    whole-sequence call; writes amp_out.wav (and amp_demo.png with matplotlib) into out_dir.
    Returns 0 when every chunking matched the whole-sequence output, 1 otherwise."""
    block_sizes = [int(block) for block in block_sizes]
    if any(block < 1 for block in block_sizes):
        raise ValueError(f"block_sizes must be positive numbers of samples, got {block_sizes}")
    model, x, target = _load()
    rate = int(model.metadata.get("sample_rate", "48000"))
    seconds = x.size / rate
    print(f"model: {model}")
    print(f"  {model.metadata.get('description', '')}")
    print(f"signal: {seconds:.2f} s of plucked guitar, {x.size} samples at {rate // 1000} kHz")

    whole, _ = model(x[:, None])
    whole = whole[:, 0]
    error = float(np.sum((whole - target) ** 2) / np.sum(target ** 2))
    print(f"vs the amp it imitates: ESR {error:.4f} ({10 * np.log10(error):.1f} dB)")

    stream = model.stream(batch=1)
    runs: "list[tuple[str, int, np.ndarray, float]]" = []
    y, spent = _stream_steps(stream, x)
    runs.append(("step", 1, y, spent))
    for block in block_sizes:
        stream.reset()
        y, spent = _stream_blocks(stream, x, block)
        runs.append(("process", block, y, spent))

    print(f"\n{'call':<8} {'block':>5} {'compute (s)':>11} {'ns/sample':>10} "
          f"{'RTF @ ' + str(rate // 1000) + ' kHz':>13} {'max |y - m(x)|':>15}")
    ok = True
    for call, block, y, spent in runs:
        diff = float(np.max(np.abs(y - whole)))
        ok = ok and diff < _TOLERANCE
        print(f"{call:<8} {block:>5} {spent:>11.4f} {spent * 1e9 / x.size:>10.0f} "
              f"{spent / seconds:>13.4f} {diff:>15.2e}")
    print("RTF: seconds of compute per second of audio (below 1: faster than real time); "
          "step is timed with its Python loop")
    print(f"every chunking matches the whole-sequence output (< {_TOLERANCE:g}): {'yes' if ok else 'NO'}")

    os.makedirs(out_dir, exist_ok=True)
    wav_path = os.path.join(out_dir, "amp_out.wav")
    _write_wav(wav_path, runs[0][2], rate)
    print(f"wrote {wav_path}")
    png_path = os.path.join(out_dir, "amp_demo.png")
    if _plot(png_path, x, runs[0][2], rate):
        print(f"wrote {png_path}")
    else:
        print("pip install matplotlib (or pip install streamrnn[demo]) to get the plot")
    return 0 if ok else 1
