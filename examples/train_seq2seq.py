# examples/train_seq2seq.py: trains sr.models.Seq2Seq to reverse sequences of digits.
# Part of streamrnn, MIT licence.
"""A GRU encoder-decoder learns to reverse digit strings (generated here), with teacher forcing
at ratio 0.5, then decodes greedily. Run: python examples/train_seq2seq.py"""

import numpy as np
from tqdm import trange

import streamrnn as sr

PAD, SOS, EOS = 0, 1, 2
DIGITS = 10  # digit d is token d + 3


def batch(rng, size=64, max_len=7):
    lengths = rng.integers(3, max_len + 1, size)
    src = np.full((size, max_len), PAD, np.int64)
    tgt = np.full((size, max_len + 1), PAD, np.int64)
    for b, length in enumerate(lengths):
        digits = rng.integers(0, DIGITS, length) + 3
        src[b, :length] = digits
        tgt[b, :length] = digits[::-1]
        tgt[b, length] = EOS
    return src, tgt, lengths


def text(tokens):
    return "".join(str(t - 3) for t in tokens)


def main():
    rng = np.random.default_rng(0)
    model = sr.models.Seq2Seq(DIGITS + 3, DIGITS + 3, 16, 96, lr=5e-3, teacher_forcing=0.5, seed=0)
    bar = trange(800, desc="training")
    for _ in bar:
        bar.set_postfix_str(f"loss {model.train_step(batch(rng)):.4f}", refresh=False)
    src, _, lengths = batch(np.random.default_rng(1), 1000)
    decoded = model.translate(src, lengths=lengths)
    exact = np.mean([out == list(src[b, :lengths[b]][::-1]) for b, out in enumerate(decoded)])
    for b in range(3):
        print(f"{text(src[b, :lengths[b]])} -> {text(decoded[b])}")
    print(f"held-out exact-match accuracy: {exact:.3f}")


if __name__ == "__main__":
    main()
