# tools/make_demo_data.py: trains the small denoising LSTM and writes the signal that the demo ships.
# Part of streamrnn, MIT licence.
"""Regenerates python/streamrnn/data/{demo_lstm.safetensors, demo_signal.npy}.

A causal denoiser: an LSTM(1, 24, proj_size=1) reads a noisy sensor signal one sample at a time
and outputs its estimate of the clean signal. Trained with PyTorch (the reference), then moved to
streamrnn with from_torch, as users do. Needs torch; run once, commit the two small files.
"""

from pathlib import Path

import numpy as np
import torch

import streamrnn as sr

DATA = Path(__file__).resolve().parent.parent / "python" / "streamrnn" / "data"
RATE = 1000  # samples per second of the synthetic sensor


def signal(rng: np.random.Generator, seconds: float) -> "tuple[np.ndarray, np.ndarray]":
    """Sums of slowly drifting sines (the clean signal) plus white noise (what the sensor reads)."""
    t = np.arange(int(seconds * RATE)) / RATE
    clean = np.zeros_like(t)
    for _ in range(3):
        freq = rng.uniform(0.5, 4.0)
        clean += rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    noisy = clean + rng.normal(0.0, 0.25, size=t.shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = torch.nn.LSTM(1, 24, proj_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        batch = [signal(rng, 2.0) for _ in range(16)]
        noisy = torch.from_numpy(np.stack([b[0] for b in batch], axis=1))[..., None]
        clean = torch.from_numpy(np.stack([b[1] for b in batch], axis=1))[..., None]
        estimate, _ = model(noisy)
        loss = torch.nn.functional.mse_loss(estimate[200:], clean[200:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: mse {loss.item():.4f}")
    noisy, clean = signal(np.random.default_rng(1), 5.0)
    DATA.mkdir(parents=True, exist_ok=True)
    sr.from_torch(model).save(DATA / "demo_lstm.safetensors")
    np.save(DATA / "demo_signal.npy", np.stack([noisy, clean]))
    print("wrote", DATA)


if __name__ == "__main__":
    main()
