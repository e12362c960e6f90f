# examples/many_streams.py: a LanguageModel writing for 64 users at once through a pool, against a stream each.
# Part of streamrnn, MIT licence.
"""Trains the character-level LanguageModel of train_language_model.py for a few seconds, then serves
users who arrive and leave at random, each with its own prompt, length, temperature and random
generator, up to 64 at once: every tick, the last token of every live user goes through the
embedding, one pool.step for all of them as one batch, the head and each user's own sampling.
The same users are then served one at a time, each on a stream of its own (model.lstm.stream(1)),
with the same seeds: the texts must come out the same, token for token (or part only where a draw
fell within float32 rounding of an edge between two tokens, which the script checks), and the
script prints both speeds. Run: python examples/many_streams.py [--quick]"""

import argparse
import time

import numpy as np

from train_language_model import SUBJECTS, train


def sample(logits, temperature, u):
    """One draw per row from softmax(logits / temperature) by inverse CDF: logits (N, V), temperature
    and u (N,) (u uniform in [0, 1)) -> token ids (N,). Both ways of serving use this one function."""
    z = (logits.astype(np.float64) - logits.max(axis=1, keepdims=True)) / temperature[:, None]
    cdf = np.cumsum(np.exp(z), axis=1)
    return (cdf < u[:, None] * cdf[:, -1:]).sum(axis=1)


def make_users(rng, count, chars, max_len):
    """Each user: a prompt (token ids), how many tokens it wants, its temperature and its seed."""
    users = []
    for seed in range(count):
        prompt = f"{rng.choice(SUBJECTS)} "
        users.append(dict(prompt=np.array([chars.index(c) for c in prompt]),
                          length=int(rng.integers(max_len // 4, max_len + 1)),
                          temperature=float(rng.choice([0.5, 0.8, 1.0])), seed=seed))
    return users


def serve_pooled(model, users, capacity, arrival, rng):
    """Serves `users` through one pool of `capacity` streams: each tick every free slot takes the
    next waiting user with probability `arrival`; a user leaves once it has all its tokens.
    Returns every user's tokens and the number of streams stepped at each tick."""
    pool = model.lstm.pool(capacity)
    out = np.empty((capacity, model.lstm.hidden_size), np.float32)
    # Slot j < n holds a live user: its pool id, last token, temperature, generator and index.
    ids = np.zeros(capacity, np.int64)
    last = np.zeros(capacity, np.int64)
    temperature = np.zeros(capacity)
    u = np.zeros(capacity)
    rngs = [None] * capacity
    who = [0] * capacity
    n = 0
    texts = [[] for _ in users]
    waiting = 0  # users arrive in order: users[waiting:] have not come yet
    batches = []
    while waiting < len(users) or n:
        for _ in range(min(rng.binomial(capacity - n, arrival), len(users) - waiting)):
            user = users[waiting]
            ids[n] = pool.open()
            pool.process(int(ids[n]), model.embedding(user["prompt"][:-1]))  # all but the last prompt token
            last[n], temperature[n] = user["prompt"][-1], user["temperature"]
            rngs[n], who[n] = np.random.default_rng(user["seed"]), waiting
            n, waiting = n + 1, waiting + 1
        if not n:
            continue
        y = pool.step(ids[:n], model.embedding(last[:n]), out=out[:n])
        logits = model.head(y)
        for j in range(n):
            u[j] = rngs[j].random()
        last[:n] = sample(logits, temperature[:n], u[:n])
        batches.append(n)
        for j in reversed(range(n)):  # record; a user with all its tokens leaves, the last slot fills its place
            text = texts[who[j]]
            text.append(int(last[j]))
            if len(text) == users[who[j]]["length"]:
                pool.close(int(ids[j]))
                n -= 1
                ids[j], last[j], temperature[j], rngs[j], who[j] = ids[n], last[n], temperature[n], rngs[n], who[n]
    assert len(pool) == 0
    return texts, batches


def serve_alone(model, user):
    """One user on a stream of its own: the same steps, one row at a time."""
    stream = model.lstm.stream(1)
    stream.process(model.embedding(user["prompt"][:-1]))
    out = np.empty((1, model.lstm.hidden_size), np.float32)
    last = user["prompt"][-1:]
    temperature, u = np.array([user["temperature"]]), np.zeros(1)
    rng = np.random.default_rng(user["seed"])
    text = []
    for _ in range(user["length"]):
        y = stream.step(model.embedding(last), out=out)
        u[0] = rng.random()
        last = sample(model.head(y), temperature, u)
        text.append(int(last[0]))
    return text


def draw_margin(model, user, text, t):
    """Replays `user` alone through its first t tokens of `text` and returns how near its draw for
    token t fell to an edge of the CDF interval that gives text[t] (as a fraction of the whole)."""
    stream = model.lstm.stream(1)
    stream.process(model.embedding(user["prompt"][:-1]))
    out = np.empty((1, model.lstm.hidden_size), np.float32)
    rng = np.random.default_rng(user["seed"])
    inputs = np.concatenate([user["prompt"][-1:], np.array(text[:t], np.int64)])
    for s in range(t + 1):
        y = stream.step(model.embedding(inputs[s:s + 1]), out=out)
        u = rng.random()
    logits = model.head(y).astype(np.float64)[0]
    cdf = np.cumsum(np.exp((logits - logits.max()) / user["temperature"]))
    edges = np.concatenate([[0.0], cdf / cdf[-1]])  # text[t] takes [edges[text[t]], edges[text[t] + 1])
    return min(abs(u - edges[text[t]]), abs(u - edges[text[t] + 1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: less training, fewer and shorter users")
    args = parser.parse_args()
    steps, count, max_len, capacity = (40, 192, 60, 64) if args.quick else (300, 512, 200, 64)

    rng = np.random.default_rng(0)
    model, chars = train(rng, steps)

    users = make_users(rng, count, chars, max_len)
    tokens = sum(user["length"] for user in users)
    start = time.perf_counter()
    pooled, batches = serve_pooled(model, users, capacity, arrival=0.25, rng=rng)
    pooled_s = time.perf_counter() - start
    start = time.perf_counter()
    alone = [serve_alone(model, user) for user in users]
    alone_s = time.perf_counter() - start

    print(f"{count} users, up to {capacity} at once, {tokens} tokens: {len(batches)} ticks, "
          f"{np.mean(batches):.1f} streams per step on average")
    same = [a == b for a, b in zip(pooled, alone)]
    print(f"pool and one stream per user wrote the same text for {sum(same)}/{count} users")
    # A pool steps each stream as stream(1) would to float32 rounding, not bit for bit: a draw that
    # falls within that rounding of an edge between two tokens may go either way, and the texts part.
    ties = True
    for i in [i for i, s in enumerate(same) if not s]:
        t = next(t for t, (a, b) in enumerate(zip(pooled[i], alone[i])) if a != b)
        margin = draw_margin(model, users[i], alone[i], t)
        ties = ties and margin < 1e-4
        print(f"  user {i} parts at token {t}: its draw fell {margin:.1e} from an edge between two tokens")
    print(f"pool:              {tokens / pooled_s:9.0f} tokens/s  ({pooled_s:.2f} s)")
    print(f"stream(1) per user:{tokens / alone_s:9.0f} tokens/s  ({alone_s:.2f} s)")
    print(f"speed-up: {alone_s / pooled_s:.1f}x")
    for i in (0, 1, 2):
        user = users[i]
        prompt = "".join(chars[c] for c in user["prompt"])
        print(f"user {i} (temperature {user['temperature']}): {prompt}" + "".join(chars[c] for c in pooled[i]))
    if not ties:
        raise SystemExit("the pool and stream(1) disagree by more than float32 rounding")


if __name__ == "__main__":
    main()
