# tools/make_amp_model.py: trains the small NAM-style LSTM amp model and writes the guitar signal
# that `python -m streamrnn demo amp` ships. Part of streamrnn, MIT licence.
"""Regenerates python/streamrnn/data/{amp_lstm.safetensors, amp_signal.npy}.

The signal: three seconds of a synthetic plucked guitar at 48 kHz: three single notes (the third with
vibrato) and a strummed open E major chord, each note a sum of decaying, slightly inharmonic partials
shaped by the pick position, with a short pick-noise attack.

The amp: an overdrive that the LSTM learns to imitate: pre-emphasis (x - 0.5 x[n-1]), gain, an
asymmetric soft clipper (tanh(g x + b) - tanh(b)), then a gentle low-pass (two one-poles at 6 kHz).

The model: sr.Sequential(sr.LSTM(1, 16), sr.Linear(16, 1)), as Neural Amp Modeler's LSTM, trained
in PyTorch on other, random guitar phrases (short segments, truncated back-propagation through time),
moved into streamrnn with load_state_dict, and scored by its error-to-signal ratio (ESR) on the
shipped signal, which it never saw. Needs torch; seeded; runs in about a minute on two CPU cores.

The shipped .npy holds int16 (2, N): row 0 the input, row 1 the target amp's output, both scaled by
1/32767 to get float32 in [-1, 1]; the target is computed from the quantized input.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import streamrnn as sr

DATA = Path(__file__).resolve().parent.parent / "python" / "streamrnn" / "data"
RATE = 48000
SECONDS = 3.0
PEAK = 0.8
SCALE = 32767.0  # int16 <-> float32

# Target amp.
PRE_EMPHASIS = 0.5
GAIN = 6.0
BIAS = 0.3
LOWPASS_HZ = 6000.0
LEVEL = 0.7

# Training.
HIDDEN = 16
SEGMENT = 4096  # samples per training segment (85 ms)
CHUNK = 1024  # truncated BPTT: gradient through this many steps, the state carried over (detached)
WARMUP = 256  # steps at the start of a segment left out of the loss, while the state fills
BATCH = 32
EPOCHS = 300  # passes of one batch of segments (SEGMENT / CHUNK optimizer steps each)
TRAIN_SECONDS = 60.0


def midi_hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def pluck(out: np.ndarray, f0: float, start: float, duration: float, amp: float,
          rng: np.random.Generator, vibrato: float = 0.0) -> None:
    """Adds one plucked-string note into out: decaying partials (pick position comb, higher
    partials dying faster, slight inharmonicity), a pick-noise burst, and optional vibrato
    (its depth as a fraction of f0, at about 5.5 Hz, fading in after 150 ms)."""
    begin = int(start * RATE)
    n = min(int(duration * RATE), out.size - begin)
    if n <= 0:
        return
    t = np.arange(n) / RATE
    if vibrato:
        ramp = np.clip((t - 0.15) / 0.2, 0.0, 1.0)
        rate = rng.uniform(5.0, 6.0)
        freq = f0 * (1.0 + vibrato * ramp * np.sin(2 * np.pi * rate * t))
        phase = 2 * np.pi * np.cumsum(freq) / RATE
    else:
        phase = 2 * np.pi * f0 * t
    position = rng.uniform(0.12, 0.25)  # where the pick hits the string, as a fraction of its length
    tau0 = rng.uniform(0.9, 1.6) * (110.0 / f0) ** 0.3  # the fundamental's decay time, seconds
    inharmonicity = 1e-4
    note = np.zeros(n)
    k = 1
    while k * f0 < 12000.0:
        stretch = k * np.sqrt(1.0 + inharmonicity * k * k)
        weight = abs(np.sin(np.pi * k * position)) / k ** 0.9
        tau = tau0 / (1.0 + k * f0 / 900.0)
        note += weight * np.exp(-t / tau) * np.sin(stretch * phase + rng.uniform(0, 2 * np.pi))
        k += 1
    note *= np.minimum(t / 0.0008, 1.0)  # under a millisecond of attack
    burst = rng.normal(size=min(n, int(0.02 * RATE)))
    burst = np.diff(burst, prepend=0.0) * np.exp(-np.arange(burst.size) / (0.003 * RATE))
    note[:burst.size] += 0.35 * burst
    release = min(n, int(0.03 * RATE))  # the note is damped at its end
    note[n - release:] *= np.linspace(1.0, 0.0, release)
    out[begin:begin + n] += amp * note / np.max(np.abs(note))


def guitar_test_signal() -> np.ndarray:
    """The shipped signal: E3, G3, A3 with vibrato, then a strummed open E major chord."""
    rng = np.random.default_rng(2024)
    x = np.zeros(int(SECONDS * RATE))
    pluck(x, midi_hz(52), 0.05, 0.45, 0.9, rng)  # E3
    pluck(x, midi_hz(55), 0.50, 0.45, 0.8, rng)  # G3
    pluck(x, midi_hz(57), 0.95, 0.85, 0.9, rng, vibrato=0.006)  # A3, held, with vibrato
    for i, note in enumerate([40, 47, 52, 56, 59, 64]):  # E2 B2 E3 G#3 B3 E4, strummed down
        pluck(x, midi_hz(note), 1.85 + 0.012 * i, 3.0, 0.55 - 0.03 * i, rng,
              vibrato=0.003 if note == 64 else 0.0)
    return (PEAK * x / np.max(np.abs(x))).astype(np.float32)


def guitar_phrase(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Random training audio: single notes and chords over the guitar's range, random levels."""
    x = np.zeros(int(seconds * RATE))
    at = rng.uniform(0.0, 0.1)
    while at < seconds:
        length = rng.uniform(0.15, 1.2)
        if rng.random() < 0.3:
            root = int(rng.integers(40, 60))
            for i, step in enumerate([0, 7, 12, 16, 19, 24][:int(rng.integers(3, 7))]):
                pluck(x, midi_hz(root + step), at + 0.012 * i, length + 0.3, rng.uniform(0.3, 0.6), rng)
        else:
            pluck(x, midi_hz(int(rng.integers(40, 77))), at, length, rng.uniform(0.4, 1.0), rng,
                  vibrato=rng.uniform(0.002, 0.008) if rng.random() < 0.4 else 0.0)
        at += length * rng.uniform(0.6, 1.0)
    return x * rng.uniform(0.2, 0.85) / np.max(np.abs(x))


def one_pole(x: np.ndarray, hz: float) -> np.ndarray:
    """A one-pole low-pass along the last axis."""
    a = 1.0 - np.exp(-2 * np.pi * hz / RATE)
    y = np.empty_like(x)
    state = np.zeros(x.shape[:-1])
    for n in range(x.shape[-1]):
        state += a * (x[..., n] - state)
        y[..., n] = state
    return y


def amp(x: np.ndarray) -> np.ndarray:
    """The target overdrive, along the last axis, from silence."""
    x = np.asarray(x, np.float64)
    emphasized = x.copy()
    emphasized[..., 1:] -= PRE_EMPHASIS * x[..., :-1]
    clipped = np.tanh(GAIN * emphasized + BIAS) - np.tanh(BIAS)
    return (LEVEL * one_pole(one_pole(clipped, LOWPASS_HZ), LOWPASS_HZ)).astype(np.float32)


def esr(y: np.ndarray, target: np.ndarray) -> float:
    """Error-to-signal ratio: the energy of the error over the energy of the target."""
    y, target = np.asarray(y, np.float64), np.asarray(target, np.float64)
    return float(np.sum((y - target) ** 2) / np.sum(target ** 2))


class AmpLSTM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(1, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor, state=None):
        h, state = self.lstm(x, state)
        return self.head(h), state


def train(model: AmpLSTM, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS * (SEGMENT // CHUNK),
                                                          eta_min=4e-4)
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        offsets = rng.integers(0, x.size - SEGMENT, size=BATCH)
        xs = torch.from_numpy(np.stack([x[o:o + SEGMENT] for o in offsets], axis=1))[..., None]
        ys = torch.from_numpy(np.stack([y[o:o + SEGMENT] for o in offsets], axis=1))[..., None]
        state = None
        losses = []
        for c in range(0, SEGMENT, CHUNK):
            out, state = model(xs[c:c + CHUNK], state)
            state = tuple(s.detach() for s in state)
            skip = WARMUP if c == 0 else 0
            target = ys[c + skip:c + CHUNK]
            loss = torch.mean((out[skip:] - target) ** 2) / (torch.mean(target ** 2) + 1e-5)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        if epoch % 25 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:3d}: ESR {np.mean(losses):.4f} ({time.perf_counter() - start:.0f} s)")


def to_streamrnn(model: AmpLSTM, description: str) -> sr.Sequential:
    m = sr.Sequential(sr.LSTM(1, HIDDEN), sr.Linear(HIDDEN, 1),
                      metadata={"sample_rate": str(RATE), "description": description})
    weights = {"0." + k: v for k, v in model.lstm.state_dict().items()}
    weights.update({"1." + k: v for k, v in model.head.state_dict().items()})
    m.load_state_dict({k: v.detach().numpy().astype(np.float32) for k, v in weights.items()})
    return m


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: threads only add waiting (and stall on a busy machine)
    torch.set_flush_denormal(True)  # the decaying notes' tails otherwise make the LSTM crawl
    rng = np.random.default_rng(0)
    began = time.perf_counter()

    phrases = np.stack([guitar_phrase(rng, 3.0) for _ in range(int(TRAIN_SECONDS / 3.0))])
    train_x = phrases.astype(np.float32)
    train_y = amp(train_x)
    train_x, train_y = train_x.reshape(-1), train_y.reshape(-1)
    print(f"training audio: {train_x.size / RATE:.0f} s of random phrases "
          f"({time.perf_counter() - began:.0f} s to make)")

    model = AmpLSTM()
    train(model, train_x, train_y, rng)

    signal = np.round(guitar_test_signal() * SCALE) / SCALE  # what the int16 file will give back
    target = amp(signal)
    assert np.max(np.abs(target)) < 1.0
    description = ("NAM-style LSTM(1, 16) + Linear(16, 1) guitar overdrive: imitates pre-emphasis "
                   f"(x - {PRE_EMPHASIS} x[n-1]), gain {GAIN}, tanh soft clipping with bias {BIAS}, "
                   f"a two-pole {LOWPASS_HZ / 1000:.0f} kHz low-pass; trained by tools/make_amp_model.py")
    m = to_streamrnn(model, description)
    with torch.no_grad():
        y_torch, _ = model(torch.from_numpy(signal.astype(np.float32))[:, None, None])
    y, _ = m(signal.astype(np.float32)[:, None])
    print(f"streamrnn vs PyTorch on the shipped signal: max abs difference "
          f"{np.abs(y[:, 0] - y_torch[:, 0, 0].numpy()).max():.2e}")
    print(f"held-out ESR (the shipped signal, never trained on): {esr(y[:, 0], target):.4f} "
          f"({10 * np.log10(esr(y[:, 0], target)):.1f} dB)")

    DATA.mkdir(parents=True, exist_ok=True)
    m.save(DATA / "amp_lstm.safetensors")
    np.save(DATA / "amp_signal.npy", np.round(np.stack([signal, target]) * SCALE).astype(np.int16))
    print(f"wrote {DATA} in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
