# examples/train_classifier.py: trains sr.models.LSTMClassifier on generated token sequences.
# Part of streamrnn, MIT licence.
"""Sentiment-like classification on data this script generates: sequences of word ids in which
"good" words (ids 10-19) and "bad" words (ids 20-29) are scattered among neutral ones (ids 1-9);
the label is whether good words outnumber bad ones. Run: python examples/train_classifier.py"""

import numpy as np
from tqdm import trange

import streamrnn as sr


def batch(rng, size=64, max_len=20):
    lengths = rng.integers(5, max_len + 1, size)
    tokens = np.zeros((size, max_len), np.int64)
    labels = np.zeros(size, np.int64)
    for b, length in enumerate(lengths):
        good, bad = rng.integers(0, 4, 2)
        if good == bad:
            good += 1
        words = np.concatenate([rng.integers(10, 20, good), rng.integers(20, 30, bad),
                                rng.integers(1, 10, max(0, length - good - bad))])[:length]
        tokens[b, :len(words)] = rng.permutation(words)
        lengths[b] = len(words)
        labels[b] = int(good > bad)
    return tokens, labels, lengths


def main():
    rng = np.random.default_rng(0)
    model = sr.models.LSTMClassifier(30, 16, 32, 2, lr=5e-3, dropout=0.2, seed=0)
    bar = trange(400, desc="training")
    for _ in bar:
        bar.set_postfix_str(f"loss {model.train_step(batch(rng)):.4f}", refresh=False)
    tokens, labels, lengths = batch(np.random.default_rng(1), 2000)
    accuracy = (model.predict(tokens, lengths) == labels).mean()
    print(f"held-out accuracy: {accuracy:.3f} (chance 0.5)")
    model.save("classifier.safetensors")
    print("saved classifier.safetensors")


if __name__ == "__main__":
    main()
