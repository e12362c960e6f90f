# examples/bidirectional_tagger.py: a tagger that needs the future, trained and streamed in chunks with a look-ahead.
# Part of streamrnn, MIT licence.
"""Tags generated symbol sequences where each step's tag depends on a symbol two steps ahead:
symbols 1 to 3 (1 the most frequent), 0 standing for "no symbol" before the start and past the
end, and tag[t] = (sym[t-1] + sym[t+2]) mod 4. For each chunking (chunk Nc, look-ahead Nr) a
fresh 2-layer bidirectional LSTM and a linear head are trained the way they will stream
(m(x, chunk=Nc, lookahead=Nr, train=True)), and one without chunks on whole sequences. Held-out
sequences are then decoded live: fed to m.stream(1, chunk=Nc, lookahead=Nr) a few steps at a
time, then flushed; the script checks that each call returns the chunks completed so far, and
that the streamed outputs are those of m(x, chunk=Nc, lookahead=Nr). The table compares each
chunk-trained model with the whole-sequence model run with the same chunking. A look-ahead that
reaches t+2 gets the whole-sequence accuracy at a delay of at most Nc + Nr - 1 steps (and on this
short dependency the whole-sequence model runs as well chunked). With Nr = 0 the last two steps of
every chunk cannot see t+2: there the chunk-trained model guesses the likeliest symbol, while the
whole-sequence model takes the chunk's end for the sequence's (sym[t+2] = 0, never right there).
Run: python examples/bidirectional_tagger.py [--quick]"""

import argparse

import numpy as np
from tqdm import trange

import streamrnn as sr

FREQUENCIES = [0.5, 0.3, 0.2]  # of symbols 1, 2, 3; 0 is "no symbol", outside the sequence
TAGS = 4   # tags are sums mod TAGS
AHEAD = 2  # the tag reads the symbol this many steps ahead
HIDDEN = 32
CHUNKINGS = [None, (8, 4), (8, 0), (4, 2), (16, 2)]  # None: whole sequences


def batch(rng, size, length):
    """One-hot symbols x (length, size, 3) float32 and their tags (length, size)."""
    sym = rng.choice([1, 2, 3], (length, size), p=FREQUENCIES)
    padded = np.pad(sym, ((1, AHEAD), (0, 0)))  # padded[t] = sym[t-1]; 0 outside the sequence
    tags = (padded[:-AHEAD - 1] + padded[AHEAD + 1:]) % TAGS
    return np.eye(3, dtype=np.float32)[sym - 1], tags


def name(chunking):
    return "full" if chunking is None else f"Nc={chunking[0]}, Nr={chunking[1]}"


def train(chunking, steps):
    """A fresh LSTM and head trained `steps` steps with `chunking` (None: whole sequences). Every
    chunking gets the same initial weights and the same batches, so that only the chunking differs."""
    rng = np.random.default_rng(0)
    model = sr.LSTM(3, HIDDEN, num_layers=2, bidirectional=True, seed=0)
    head = sr.Linear(2 * HIDDEN, TAGS, seed=1)
    opt = sr.optim.Adam([model, head], lr=1e-2)
    chunked = {} if chunking is None else dict(chunk=chunking[0], lookahead=chunking[1])
    bar = trange(steps, desc=f"{name(chunking):>12}")
    for _ in bar:
        # Lengths vary so that no model can count steps to where sequences end (and take a chunk's
        # end for the sequence's there).
        x, tags = batch(rng, 32, int(rng.integers(24, 121)))
        y, _ = model(x, train=True, **chunked)
        loss, dlogits = sr.cross_entropy(head(y, train=True), tags)
        opt.zero_grad()
        model.backward(head.backward(dlogits))
        opt.step()
        bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
    return model, head


def completed(arrived, chunk, lookahead):
    """Steps whose outputs a stream has returned once `arrived` steps came in (before flush): those
    of every chunk whose `lookahead` steps after it have arrived."""
    return max(0, arrived - lookahead) // chunk * chunk


def stream_decode(model, head, x, chunk, lookahead, rng):
    """Predicted tags (T, B), each sequence of x fed alone to a stream in pieces of 1 to 5 steps and
    flushed, as live input would come. Asserts the stream's counts and its outputs."""
    expected, _ = model(x, chunk=chunk, lookahead=lookahead)
    outputs = []
    for b in range(x.shape[1]):
        s = model.stream(1, chunk=chunk, lookahead=lookahead)
        pieces, arrived = [], 0
        while arrived < len(x):
            step = min(int(rng.integers(1, 6)), len(x) - arrived)
            y = s.process(x[arrived:arrived + step, b:b + 1])
            due = completed(arrived + step, chunk, lookahead) - completed(arrived, chunk, lookahead)
            assert len(y) == due, (f"chunk={chunk}, lookahead={lookahead}: process() up to step {arrived + step} "
                                   f"returned {len(y)} steps, expected {due} (those of the chunks completed)")
            pieces.append(y)
            arrived += step
        pieces.append(s.flush())
        y = np.concatenate(pieces)
        assert y.shape == (len(x), 1, 2 * HIDDEN), f"chunk={chunk}, lookahead={lookahead}: stream gave {y.shape}"
        error = np.abs(y - expected[:, b:b + 1]).max()
        assert error <= 1e-5, (f"chunk={chunk}, lookahead={lookahead}: streamed outputs differ from "
                               f"m(x, chunk=, lookahead=) by {error:.2e}")
        outputs.append(y)
    return head(np.concatenate(outputs, axis=1)).argmax(-1)


def unseen(length, chunk, lookahead):
    """(length,) mask of the steps whose t+AHEAD is in the sequence but past their chunk's look-ahead."""
    t = np.arange(length)
    return (t % chunk + AHEAD >= chunk + lookahead) & (t + AHEAD < length)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 10 s: less training, fewer held-out sequences")
    args = parser.parse_args()
    steps, sequences = (300, 8) if args.quick else (800, 32)

    models = {chunking: train(chunking, steps) for chunking in CHUNKINGS}
    x, tags = batch(np.random.default_rng(1), sequences, 100)
    full_model, full_head = models[None]
    whole = (full_head(full_model(x)[0]).argmax(-1) == tags).mean()

    print(f"\nheld out: {sequences} sequences of {len(x)} steps, streamed 1 to 5 steps at a time")
    print(f"{'':30}{'trained with the chunking':>27}{'trained on whole sequences':>29}")
    print(f"{'chunking':>12}{'max delay':>18}{'all steps':>14}{'t+2 unseen':>13}{'all steps':>16}{'t+2 unseen':>13}")
    for chunking in CHUNKINGS:
        # Whole sequences stream as one chunk, returned at flush().
        chunk, lookahead = (len(x), 0) if chunking is None else chunking
        delay = f"{len(x) - 1} (whole seq)" if chunking is None else f"{chunk + lookahead - 1} steps"
        mask = unseen(len(x), chunk, lookahead)
        row = f"{name(chunking):>12}{delay:>18}"
        rng = np.random.default_rng(2)
        for model, head in (models[chunking], models[None]):
            right = stream_decode(model, head, x, chunk, lookahead, rng) == tags
            row += f"{right.mean():>14.3f}" + (f"{right[mask].mean():>13.3f}" if mask.any() else f"{'-':>13}")
        print(row)
    print("t+2 unseen: the steps whose t+2 lies past their chunk's look-ahead (the last two of a chunk when Nr = 0)")
    print(f"trained on whole sequences, run on whole sequences (m(x)): accuracy {whole:.3f}")
    assert whole >= 0.95, f"the model trained on whole sequences reached only {whole:.3f} (expected >= 0.95)"


if __name__ == "__main__":
    main()
