# examples/train_language_model.py: trains sr.models.LanguageModel on generated sentences.
# Part of streamrnn, MIT licence.
"""A character-level LSTM language model on sentences this script generates from a small grammar,
then temperature sampling, token by token on a stream. Run: python examples/train_language_model.py"""

import numpy as np
from tqdm import trange

import streamrnn as sr

SUBJECTS = ["the cat", "a dog", "the old fox", "my neighbour", "a small bird"]
VERBS = ["sees", "chases", "likes", "watches", "follows"]
OBJECTS = ["the moon", "a red ball", "the river", "an old boat", "the garden"]


def corpus(rng, sentences=2000):
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(sentences))


def train(rng, steps):
    """A LanguageModel trained `steps` steps on the corpus, and its characters (token i is chars[i])."""
    text = corpus(rng)
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    model = sr.models.LanguageModel(len(chars), 24, 128, lr=5e-3, seed=0)
    bar = trange(steps, desc="training")
    for _ in bar:
        starts = rng.integers(0, len(ids) - 65, 32)
        loss = model.train_step(np.stack([ids[s:s + 65] for s in starts]))
        bar.set_postfix_str(f"loss {loss:.3f} nats/char", refresh=False)
    return model, chars


def main():
    model, chars = train(np.random.default_rng(0), 600)
    held_out = np.array([chars.index(c) for c in corpus(np.random.default_rng(1), 200)])
    logits, _ = model.forward(held_out[None, :-1])
    test_loss, _ = sr.cross_entropy(logits, held_out[None, 1:])
    print(f"held-out loss: {test_loss:.3f} nats/char (uniform: {np.log(len(chars)):.3f})")
    for temperature in (0.5, 1.0):
        prompt = "the cat "
        sample = model.generate([chars.index(c) for c in prompt], 100, temperature=temperature)
        print(f"temperature {temperature}: {prompt}" + "".join(chars[i] for i in sample))


if __name__ == "__main__":
    main()
