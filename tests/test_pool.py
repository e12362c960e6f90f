# tests/test_pool.py
# Pools of live streams (API.md, "Many streams: pools"): random interleavings of every pool call
# against one m.stream(1) per stream and against PyTorch, ids and refused calls, snapshots (also
# across processes), out=, the Batcher from threads and asyncio, pool calls from another thread.
# Part of streamrnn, MIT licence.
import asyncio
import contextlib
import math
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (assert_close, assert_float32, assert_identical, assert_message_names, make_sr,
                      make_torch, output_size, randn, random_state, rng_for, torch_forward, zero_state)

# (kind, constructor arguments, torch names)
VARIANTS = {
    "LSTM-proj-residual": ("LSTM", dict(input_size=4, hidden_size=7, num_layers=2, proj_size=4, residual=True)),
    "LSTM-peepholes-clip": ("LSTM", dict(input_size=3, hidden_size=6, num_layers=1, peepholes=True, clip=0.6)),
    "GRU-batch-first": ("GRU", dict(input_size=5, hidden_size=6, num_layers=1, batch_first=True)),
    "GRU-cho-batch-first": ("GRU", dict(input_size=5, hidden_size=6, num_layers=2, batch_first=True,
                                        reset_after=False)),
    "GRU-2-layers-residual": ("GRU", dict(input_size=6, hidden_size=6, num_layers=2, residual=True, bias=False)),
    "RNN-tanh-2-layers": ("RNN", dict(input_size=3, hidden_size=5, num_layers=2, nonlinearity="tanh")),
    "RNN-relu-2-layers": ("RNN", dict(input_size=3, hidden_size=5, num_layers=2, nonlinearity="relu",
                                      residual=True)),
}


def _make(variant, seed=0):
    kind, cfg = VARIANTS[variant]
    return kind, dict(cfg), make_sr(kind, cfg, seed=seed)


def _batched(kind, state):
    """A one-row state without its batch axis -> with it (B = 1)."""
    if state is None:
        return None
    if kind == "LSTM":
        return tuple(np.ascontiguousarray(v[:, None]) for v in state)
    return np.ascontiguousarray(state[:, None])


def _states(pool):
    return {i: pool.state(i) for i in pool.ids()}


@contextlib.contextmanager
def _refused(pool, exc, *, names_id=None, what="call"):
    """The call in the block raises `exc` and changes no stream, no id and len(pool)."""
    before, ids, n = _states(pool), pool.ids(), len(pool)
    try:
        with pytest.raises(exc) as info:
            yield info
    except pytest.fail.Exception as e:
        pytest.fail(f"{what}: {e}")
    if names_id is not None:
        assert re.search(rf"(?<![\d-]){re.escape(str(names_id))}(?!\d)", str(info.value)), \
            f"{what}: message does not name id {names_id}: {info.value}"
    assert len(pool) == n, f"{what}: len(pool) changed by a refused call"
    assert pool.ids() == ids, f"{what}: ids changed by a refused call"
    after = _states(pool)
    for i, st in before.items():
        assert_identical(after[i], st, f"{what}: state of stream {i} after a refused call")


# ------------------------------------------------------------------------------------------------
# Random interleavings against one m.stream(1) per stream


class _World:
    """Two pools of one model, and for every live stream (pool index, id) its reference stream."""

    def __init__(self, kind, cfg, m, rng, capacity=6):
        self.kind, self.cfg, self.m, self.rng = kind, cfg, m, rng
        self.pools = [m.pool(capacity), m.pool(capacity)]
        self.refs = [{}, {}]  # id -> m.stream(1)
        self.issued = [set(), set()]
        self.I, self.H_out = cfg["input_size"], output_size(kind, cfg)
        self.bf = cfg.get("batch_first", False)

    def new_id(self, p, i):
        assert isinstance(i, int), f"id {i!r} is not an int"
        assert i not in self.issued[p], f"pool {p} reused id {i}"
        assert i >= 0
        self.issued[p].add(i)

    def room(self, p):
        return len(self.refs[p]) < self.pools[p].capacity

    def subset(self, p):
        ids = list(self.refs[p])
        n = int(self.rng.integers(1, len(ids) + 1))
        return [int(i) for i in self.rng.permutation(ids)[:n]]

    def any_id(self, p):
        return int(self.rng.choice(list(self.refs[p])))

    def random_state(self):
        unbatched = self.rng.random() < 0.5
        st = random_state(self.rng, self.kind, self.cfg, None if unbatched else 1)
        return st, (_batched(self.kind, st) if unbatched else st)

    def check_ids(self):
        for p in (0, 1):
            assert self.pools[p].ids() == sorted(self.refs[p]), f"pool {p}: ids()"
            assert len(self.pools[p]) == len(self.refs[p]), f"pool {p}: len()"
            for i in self.refs[p]:
                assert i in self.pools[p]
            for i in self.issued[p] - set(self.refs[p]):
                assert i not in self.pools[p], f"closed id {i} still in pool {p}"

    def check_states(self, atol_what):
        for p in (0, 1):
            for i, ref in self.refs[p].items():
                assert_close(self.pools[p].state(i), ref.state, what=f"{atol_what}: state of pool {p} id {i}")

    # actions

    def open(self, p):
        pool = self.pools[p]
        ref = self.m.stream(1)
        if self.rng.random() < 0.5:
            i = pool.open()
        else:
            st, batched = self.random_state()
            i = pool.open(state=st) if self.rng.random() < 0.5 else pool.open(st)
            ref.state = batched
        self.new_id(p, i)
        assert_identical(pool.state(i), ref.state, "state of a new stream")
        self.refs[p][i] = ref

    def step(self, p):
        pool, ids = self.pools[p], self.subset(p)
        if len(ids) == 1 and self.rng.random() < 0.4:
            x = randn(self.rng, self.I)
            y = pool.step(ids[0], x)
            assert_float32(y)
            assert y.shape == (self.H_out,)
            assert_close(y, self.refs[p][ids[0]].step(x[None])[0], what=f"step of id {ids[0]}")
            return
        x = randn(self.rng, len(ids), self.I)
        y = pool.step(ids, x)
        assert_float32(y)
        assert y.shape == (len(ids), self.H_out)
        for row, i in enumerate(ids):
            assert_close(y[row], self.refs[p][i].step(x[row:row + 1])[0], what=f"step of id {i} in {ids}")

    def process(self, p):
        pool, ids = self.pools[p], self.subset(p)
        T = int(self.rng.integers(1, 7))
        if len(ids) == 1 and self.rng.random() < 0.4:
            xs = randn(self.rng, T, self.I)
            y = pool.process(ids[0], xs)
            assert y.shape == (T, self.H_out)
            ref = self.refs[p][ids[0]].process(xs[:, None] if not self.bf else xs[None])
            assert_close(y, ref[:, 0] if not self.bf else ref[0], what=f"process of id {ids[0]}")
            return
        N = len(ids)
        xs = randn(self.rng, N, T, self.I) if self.bf else randn(self.rng, T, N, self.I)
        y = pool.process(ids, xs)
        assert_float32(y)
        assert y.shape == ((N, T, self.H_out) if self.bf else (T, N, self.H_out))
        for k, i in enumerate(ids):
            if self.bf:
                assert_close(y[k:k + 1], self.refs[p][i].process(xs[k:k + 1]), what=f"process of id {i} in {ids}")
            else:
                assert_close(y[:, k:k + 1], self.refs[p][i].process(xs[:, k:k + 1]),
                             what=f"process of id {i} in {ids}")

    def reset(self, p):
        ids = self.subset(p)
        self.pools[p].reset(ids if len(ids) > 1 or self.rng.random() < 0.5 else ids[0])
        for i in ids:
            self.refs[p][i].reset()
            assert_identical(self.pools[p].state(i), zero_state(self.kind, self.cfg, 1), f"state of {i} after reset")

    def close(self, p):
        i = self.any_id(p)
        self.pools[p].close(i)
        del self.refs[p][i]
        assert i not in self.pools[p]

    def fork(self, p):
        pool, i = self.pools[p], self.any_id(p)
        j = pool.fork(i)
        self.new_id(p, j)
        assert_identical(pool.state(j), pool.state(i), "state of a fork")
        ref = self.m.stream(1)
        ref.state = self.refs[p][i].state
        self.refs[p][j] = ref

    def migrate(self, p):
        q = 1 - p
        i = self.any_id(p)
        before = self.pools[p].state(i)
        blob = self.pools[p].snapshot(i)
        assert isinstance(blob, bytes)
        j = self.pools[q].restore(blob)
        self.new_id(q, j)
        assert_identical(self.pools[q].state(j), before, "state restored in the other pool")
        if self.rng.random() < 0.7:  # moved
            self.pools[p].close(i)
            self.refs[q][j] = self.refs[p].pop(i)
        else:  # copied
            ref = self.m.stream(1)
            ref.state = self.refs[p][i].state
            self.refs[q][j] = ref

    def set_state(self, p):
        i = self.any_id(p)
        if self.rng.random() < 0.2:
            self.pools[p].set_state(i, None)
            self.refs[p][i].reset()
        else:
            st, batched = self.random_state()
            self.pools[p].set_state(i, st)
            self.refs[p][i].state = batched
        assert_identical(self.pools[p].state(i), self.refs[p][i].state, "state after set_state")


ACTIONS = {"step": 0.3, "process": 0.15, "open": 0.12, "close": 0.08, "fork": 0.08, "migrate": 0.1,
           "reset": 0.07, "set_state": 0.1}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_random_interleavings_of_pool_calls_equal_one_stream_per_id(variant, seed):
    rng = rng_for("pool interleavings", variant, seed)
    kind, cfg, m = _make(variant, seed=3 + seed)
    w = _World(kind, cfg, m, rng)
    names, weights = list(ACTIONS), np.array(list(ACTIONS.values()))
    done = {name: 0 for name in names}
    for n in range(150):
        p = int(rng.integers(0, 2))
        name = str(rng.choice(names, p=weights / weights.sum()))
        if not w.refs[p] or (name in ("open", "fork") and w.room(p) and rng.random() < 0.3):
            name = "open"
        if name in ("open", "fork") and not w.room(p):
            name = "close"
        if name == "migrate" and not w.room(1 - p):
            name = "step"
        getattr(w, name)(p)
        done[name] += 1
        w.check_ids()
        if n % 30 == 29:
            w.check_states(f"after action {n}")
    w.check_states("at the end")
    assert all(done[name] > 0 for name in names), done


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_interleaved_pool_streams_equal_pytorch_on_each_whole_sequence(kind):
    rng = rng_for("pool vs torch", kind)
    cfg = {"LSTM": dict(input_size=4, hidden_size=6, num_layers=2, proj_size=3),
           "GRU": dict(input_size=5, hidden_size=6, num_layers=2, batch_first=True),
           "RNN": dict(input_size=3, hidden_size=7, num_layers=2, nonlinearity="relu")}[kind]
    module = make_torch(kind, cfg, seed=5)
    if kind == "GRU":  # the weights through state_dict rather than from_torch
        m = make_sr(kind, cfg, seed=99)
        m.load_state_dict(module.state_dict())
    else:
        m = sr.from_torch(module)
    I, bf = cfg["input_size"], cfg.get("batch_first", False)
    pool = m.pool(8)
    T = 20
    streams = []
    for k in range(7):
        st = random_state(rng, kind, cfg, None) if k % 2 else None
        streams.append(dict(id=pool.open(st), x=randn(rng, T, I), t=0, y=[], st=st))
    while any(s["t"] < T for s in streams):
        todo = [s for s in streams if s["t"] < T]
        chosen = [todo[j] for j in rng.permutation(len(todo))[:int(rng.integers(1, len(todo) + 1))]]
        k = int(min(rng.integers(1, 5), min(T - s["t"] for s in chosen)))
        ids = [s["id"] for s in chosen]
        if k == 1:
            y = pool.step(ids, np.stack([s["x"][s["t"]] for s in chosen]))
            for row, s in enumerate(chosen):
                s["y"].append(y[row:row + 1])
        else:
            xs = np.stack([s["x"][s["t"]:s["t"] + k] for s in chosen], axis=0 if bf else 1)
            y = pool.process(ids, xs)
            for row, s in enumerate(chosen):
                s["y"].append(y[row] if bf else y[:, row])
        for s in chosen:
            s["t"] += k
    for s in streams:
        x = s["x"][None] if bf else s["x"][:, None]
        y_ref, st_ref = torch_forward(module, x, _batched(kind, s["st"]))
        assert_close(np.concatenate(s["y"]), y_ref[0] if bf else y_ref[:, 0], what=f"{kind} stream {s['id']} y")
        assert_close(pool.state(s["id"]), st_ref, what=f"{kind} stream {s['id']} state")


# ------------------------------------------------------------------------------------------------
# Ids and refused calls


def _pool_with_streams(variant="LSTM-proj-residual", capacity=8, n=3, seed=1):
    kind, cfg, m = _make(variant, seed=seed)
    rng = rng_for("pool with streams", variant, capacity, n)
    pool = m.pool(capacity)
    ids = [pool.open() for _ in range(n)]
    if n:
        pool.process(ids, randn(rng, 3, n, cfg["input_size"]) if not cfg.get("batch_first") else
                     randn(rng, n, 3, cfg["input_size"]))
    return kind, cfg, m, pool, ids, rng


def test_bidirectional_models_and_bad_capacities_make_no_pool():
    with pytest.raises(ValueError):
        sr.LSTM(3, 4, bidirectional=True).pool(2)
    with pytest.raises(ValueError):
        sr.GRU(3, 4, num_layers=2, bidirectional=True).pool(2)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            sr.GRU(3, 4).pool(bad)
    with pytest.raises(TypeError):
        sr.GRU(3, 4).pool(2.0)


def test_ids_are_never_reused_after_close():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(capacity=3, n=0)
    seen = []
    for k in range(40):
        if len(pool) == pool.capacity or (len(pool) and rng.random() < 0.4):
            pool.close(int(rng.choice(pool.ids())))
        elif len(pool) and rng.random() < 0.3:
            seen.append(pool.fork(pool.ids()[0]))
        elif len(pool) and rng.random() < 0.3:
            seen.append(pool.restore(pool.snapshot(pool.ids()[-1])))
        else:
            seen.append(pool.open())
        assert pool.ids() == sorted(pool.ids())
    assert len(seen) == len(set(seen)) > 10, f"ids reused: {seen}"
    for i in set(seen) - set(pool.ids()):
        assert i not in pool


CALLS = ["step", "step-bad-first", "step-one", "step-out", "process", "process-one", "reset", "reset-one", "state",
         "set_state", "set_state-none", "snapshot", "fork", "close"]


def _call_naming(name, pool, bad, good, I, H_out):
    """The pool call `name` naming the id `bad` (with the open stream `good` alongside where ids are a list)."""
    x2, x1 = np.ones((2, I), np.float32), np.ones(I, np.float32)
    as_int64 = type(bad) is int and -2**63 <= bad < 2**63  # the allocation-free path of step(out=)
    return {
        "step": lambda: pool.step([good, bad], x2),
        "step-bad-first": lambda: pool.step([bad, good], x2),
        "step-one": lambda: pool.step(bad, x1),
        "step-out": lambda: pool.step(np.array([good, bad], np.int64) if as_int64 else [good, bad], x2,
                                      out=np.zeros((2, H_out), np.float32)),
        "process": lambda: pool.process([good, bad], np.ones((3, 2, I), np.float32)),
        "process-one": lambda: pool.process(bad, np.ones((3, I), np.float32)),
        "reset": lambda: pool.reset([good, bad]),
        "reset-one": lambda: pool.reset(bad),
        "state": lambda: pool.state(bad),
        "set_state": lambda: pool.set_state(bad, pool.state(good)),
        "set_state-none": lambda: pool.set_state(bad, None),
        "snapshot": lambda: pool.snapshot(bad),
        "fork": lambda: pool.fork(bad),
        "close": lambda: pool.close(bad),
    }[name]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("which", ["closed", "unknown", "negative", "huge"])
def test_a_closed_or_unknown_id_raises_key_error_naming_it_and_changes_nothing(which, call):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=4)  # capacity 8: free slots too
    closed = ids.pop()
    pool.close(closed)
    bad = {"closed": closed, "unknown": 1000, "negative": -1, "huge": 2**70}[which]
    with _refused(pool, KeyError, names_id=bad, what=f"{call} with id {bad}"):
        _call_naming(call, pool, bad, ids[0], cfg["input_size"], output_size(kind, cfg))()
    assert bad not in pool
    with _refused(pool, KeyError, names_id=closed, what="a second close"):
        pool.close(closed)


def test_an_id_named_twice_raises_value_error_and_changes_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=3)
    a, b, c = ids
    I, H = cfg["input_size"], output_size(kind, cfg)
    for dup in ([a, a], [a, b, a], [c, b, c]):
        N = len(dup)
        with _refused(pool, ValueError):
            pool.step(dup, np.ones((N, I), np.float32))
        with _refused(pool, ValueError):
            pool.step(np.array(dup, np.int64), np.ones((N, I), np.float32), out=np.zeros((N, H), np.float32))
        with _refused(pool, ValueError):
            pool.process(dup, np.ones((2, N, I), np.float32))
        with _refused(pool, ValueError):
            pool.reset(dup)


@pytest.mark.parametrize("variant", ["LSTM-proj-residual", "GRU-batch-first"])
def test_x_of_the_wrong_shape_raises_value_error_naming_x_and_changes_nothing(variant):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(variant, n=3)
    a, b, _ = ids
    I = cfg["input_size"]
    for shape in [(1, I), (3, I), (2, I + 1), (2,), (2 * I,), (2, I, 1), (1, 2, I)]:
        with _refused(pool, ValueError) as info:
            pool.step([a, b], np.ones(shape, np.float32))
        assert_message_names(info, "x", shape)
    for shape in [(I + 1,), (2, I), (1,)]:
        with _refused(pool, ValueError) as info:
            pool.step(a, np.ones(shape, np.float32))
        assert_message_names(info, "x", shape)
    good = (2, 3, I) if cfg.get("batch_first") else (3, 2, I)
    bad_shapes = [(3, 3, I), good[:2] + (I + 1,), (3, I), (2, I), good + (1,), (good[1], good[0], I)]
    for shape in bad_shapes:
        with _refused(pool, ValueError) as info:
            pool.process([a, b], np.ones(shape, np.float32))
        assert_message_names(info, "xs", shape)
    for shape in [(3, I + 1), (3, 1, I), (I,)]:
        with _refused(pool, ValueError) as info:
            pool.process(a, np.ones(shape, np.float32))
        assert_message_names(info, "xs", shape)


def test_a_full_pool_refuses_open_fork_and_restore_with_value_error():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(capacity=3, n=3)
    blob = pool.snapshot(ids[1])
    st = random_state(rng, kind, cfg, None)
    for call in (lambda: pool.open(), lambda: pool.open(st), lambda: pool.fork(ids[0]), lambda: pool.restore(blob)):
        with _refused(pool, ValueError):
            call()
    pool.close(ids[2])
    d = pool.restore(blob)
    assert_identical(pool.state(d), pool.state(ids[1]))
    with _refused(pool, ValueError):
        pool.fork(d)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad", [1.0, True, False, None, "0", np.float64(1.0), 1.5], ids=repr)
def test_a_non_integer_id_raises_type_error_and_changes_nothing(bad, call):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=3)  # ids 0, 1, 2: a bool taken as an int would be open
    assert ids == [0, 1, 2]
    good = ids[2] if bad is False else ids[0]
    with _refused(pool, TypeError, what=f"{call} with id {bad!r}"):
        _call_naming(call, pool, bad, good, cfg["input_size"], output_size(kind, cfg))()


def test_membership_is_true_only_for_open_ids():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=3)
    closed = ids.pop()
    pool.close(closed)
    for i in ids:
        assert i in pool and np.int64(i) in pool
    for other in (closed, 1000, -1, 2**64 - 1, 2**70, "0", None):
        assert (other in pool) is False, f"{other!r} in pool"


def test_a_bad_state_for_open_or_set_state_raises_value_error_and_changes_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    L, H_out, H = cfg["num_layers"], output_size(kind, cfg), cfg["hidden_size"]
    bad_states = [np.zeros((L, 1, H_out), np.float32),  # h alone for an LSTM
                  (np.zeros((L + 1, H_out), np.float32), np.zeros((L + 1, H), np.float32)),
                  (np.zeros((L, 2, H_out), np.float32), np.zeros((L, 2, H), np.float32)),
                  (np.zeros((L, H), np.float32), np.zeros((L, H), np.float32))]
    for st in bad_states:
        with _refused(pool, (ValueError, TypeError)):
            pool.open(st)
        with _refused(pool, (ValueError, TypeError)):
            pool.set_state(ids[0], st)


def test_an_empty_list_of_ids_steps_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    before = _states(pool)
    I, H_out = cfg["input_size"], output_size(kind, cfg)
    assert pool.step([], np.zeros((0, I), np.float32)).shape == (0, H_out)
    assert pool.process([], np.zeros((3, 0, I), np.float32)).shape == (3, 0, H_out)
    pool.reset([])
    for i, st in before.items():
        assert_identical(pool.state(i), st)


# ------------------------------------------------------------------------------------------------
# Snapshots


def _stepped(pool, i, rng, I, T=4):
    for _ in range(T):
        pool.step(i, randn(rng, I))


@pytest.mark.parametrize("variant", ["LSTM-proj-residual", "LSTM-peepholes-clip", "GRU-cho-batch-first",
                                     "RNN-relu-2-layers"])
def test_a_snapshot_restores_bit_for_bit_in_another_pool_of_the_same_model(variant, tmp_path):
    kind, cfg, m = _make(variant, seed=4)
    rng = rng_for("snapshot rt", variant)
    I = cfg["input_size"]
    pool = m.pool(4)
    a = pool.open(random_state(rng, kind, cfg, None))
    _stepped(pool, a, rng, I)
    st, blob = pool.state(a), pool.snapshot(a)
    assert isinstance(blob, bytes) and len(blob) > 0

    rebuilt = make_sr(kind, cfg, seed=77)
    rebuilt.load_state_dict(m.state_dict())
    m.save(tmp_path / "m.safetensors")
    loaded = sr.load(tmp_path / "m.safetensors")
    xs = randn(rng, 5, I)
    ref = m.stream(1)
    ref.state = st
    y_ref = np.stack([ref.step(x[None])[0] for x in xs])
    for what, model in (("same model", m), ("rebuilt from state_dict", rebuilt), ("sr.load of save", loaded)):
        other = model.pool(3)
        other.close(other.open())  # another id than in the first pool
        for k, data in enumerate((blob, bytearray(blob), memoryview(blob))):
            b = other.restore(data)
            assert_identical(other.state(b), st, f"restored state ({what}, {type(data).__name__})")
            if k == 0:
                assert_close(np.stack([other.step(b, x) for x in xs]), y_ref, what=f"steps after restore ({what})")
            other.close(b)
    assert_identical(pool.state(a), st, "the snapshotted stream is untouched")


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import streamrnn as sr
    blob_path, xs_path, out_path = sys.argv[1:]
    m = sr.LSTM(4, 7, 2, proj_size=4, residual=True, seed=21)
    pool = m.pool(5)
    for _ in range(3):
        pool.close(pool.open())
    i = pool.restore(open(blob_path, "rb").read())
    h, c = pool.state(i)
    xs = np.load(xs_path)
    ys = np.stack([pool.step(i, x) for x in xs])
    np.savez(out_path, h=h, c=c, ys=ys, blob=np.frombuffer(pool.snapshot(i), np.uint8))
""")


def test_a_snapshot_restores_in_another_process_and_back(tmp_path):
    m = sr.LSTM(4, 7, 2, proj_size=4, residual=True, seed=21)
    rng = rng_for("snapshot across processes")
    pool = m.pool(4)
    a = pool.open()
    _stepped(pool, a, rng, 4, T=6)
    st = pool.state(a)
    (tmp_path / "blob").write_bytes(pool.snapshot(a))
    xs = randn(rng, 8, 4)
    np.save(tmp_path / "xs.npy", xs)
    run = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "blob"), str(tmp_path / "xs.npy"),
                          str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = np.load(tmp_path / "out.npz")
    assert_identical((out["h"], out["c"]), st, "state restored in the other process")
    ys = np.stack([pool.step(a, x) for x in xs])
    assert_close(out["ys"], ys, what="steps in the other process")
    back = pool.restore(out["blob"].tobytes())
    assert_close(pool.state(back), pool.state(a), what="state after the other process's steps")


def test_corrupt_or_truncated_snapshots_raise_value_error_and_change_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    blob = pool.snapshot(ids[0])
    for n in sorted({0, 1, 4, 8, len(blob) // 2, len(blob) - 4, len(blob) - 1}):
        with _refused(pool, ValueError):
            pool.restore(blob[:n])
    with _refused(pool, ValueError):
        pool.restore(blob + b"\0")
    for pos in range(len(blob)):  # every byte
        for mask in ((1, 0x80) if pos % 7 else (1, 0x80, 0xFF)):
            bad = bytearray(blob)
            bad[pos] ^= mask
            with _refused(pool, ValueError):
                pool.restore(bytes(bad))
    with _refused(pool, ValueError):
        pool.restore(b"\0" * len(blob))
    assert_identical(pool.state(pool.restore(blob)), pool.state(ids[0]), "the intact blob still restores")


def test_a_snapshot_of_another_model_raises_value_error():
    cases = {
        "GRU into LSTM": (sr.GRU(4, 6, seed=1), sr.LSTM(4, 6, seed=1)),
        "LSTM into GRU": (sr.LSTM(4, 6, seed=1), sr.GRU(4, 6, seed=1)),
        "other hidden size": (sr.LSTM(4, 6, seed=1), sr.LSTM(4, 5, seed=1)),
        "other input size": (sr.LSTM(4, 6, seed=1), sr.LSTM(3, 6, seed=1)),
        "other layers": (sr.GRU(4, 6, 2, seed=1), sr.GRU(4, 6, 1, seed=1)),
        "proj": (sr.LSTM(4, 6, proj_size=3, seed=1), sr.LSTM(4, 6, seed=1)),
        "peepholes": (sr.LSTM(4, 6, peepholes=True, seed=1), sr.LSTM(4, 6, seed=1)),
        "reset_after": (sr.GRU(4, 6, seed=1), sr.GRU(4, 6, reset_after=False, seed=1)),
        "nonlinearity": (sr.RNN(4, 6, seed=1), sr.RNN(4, 6, nonlinearity="relu", seed=1)),
        "residual": (sr.GRU(6, 6, 2, seed=1), sr.GRU(6, 6, 2, residual=True, seed=1)),
        "same architecture, other weights": (sr.LSTM(4, 6, seed=1), sr.LSTM(4, 6, seed=2)),
        "same architecture, one weight changed": (sr.GRU(4, 6, seed=1), None),
    }
    for what, (src, dst) in cases.items():
        if dst is None:
            dst = sr.GRU(4, 6, seed=1)
            d = dst.state_dict()
            d["bias_hh_l0"][2] += 1e-3
            dst.load_state_dict(d)
        ps, pd = src.pool(2), dst.pool(2)
        blob = ps.snapshot(ps.open())
        pd.open()
        with _refused(pd, ValueError):
            pd.restore(blob)


def test_a_snapshot_is_refused_after_load_state_dict_changes_the_weights():
    m = sr.LSTM(4, 6, 2, seed=8)
    rng = rng_for("snapshot after load_state_dict")
    pool = m.pool(4)
    a = pool.open()
    _stepped(pool, a, rng, 4)
    blob = pool.snapshot(a)
    original = m.state_dict()
    changed = {k: v + np.float32(0.01) for k, v in original.items()}
    m.load_state_dict(changed)
    for p in (pool, m.pool(2)):
        with _refused(p, ValueError):
            p.restore(blob)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in original.items()})
    b = pool.restore(blob)
    assert_identical(pool.state(b), pool.state(a), "restored once the weights are back")


@pytest.mark.parametrize("bad", ["snapshot", 123, None, [1, 2, 3], 1.5])
def test_a_non_bytes_snapshot_raises_type_error(bad):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    with _refused(pool, TypeError):
        pool.restore(bad)


# ------------------------------------------------------------------------------------------------
# out=, id arrays, N = 0


@pytest.mark.parametrize("variant", ["LSTM-proj-residual", "GRU-batch-first", "RNN-tanh-2-layers"])
def test_step_with_out_writes_in_place_and_returns_out(variant):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(variant, n=3)
    I, H_out = cfg["input_size"], output_size(kind, cfg)
    twins = [pool.fork(i) for i in ids]
    for _ in range(5):
        order = [int(j) for j in rng.permutation(3)]
        x = randn(rng, 3, I)
        ids_arr = np.array([ids[j] for j in order], np.int64)
        out = np.full((3, H_out), np.nan, np.float32)
        r = pool.step(ids_arr, x, out=out)
        assert r is out
        assert_close(out, pool.step([twins[j] for j in order], x), what="out= against a twin without out=")
    one = np.full(H_out, np.nan, np.float32)
    x1 = randn(rng, I)
    assert pool.step(ids[0], x1, out=one) is one
    assert_close(one, pool.step(twins[0], x1), what="one id with out=")
    for i, j in zip(ids, twins):
        assert_close(pool.state(i), pool.state(j))


def test_step_with_a_bad_out_raises_and_changes_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    I, H_out = cfg["input_size"], output_size(kind, cfg)
    x = randn(rng, 2, I)
    ids_arr = np.array(ids, np.int64)
    for out in (np.zeros((2, H_out + 1), np.float32), np.zeros((3, H_out), np.float32),
                np.zeros((2 * H_out,), np.float32), np.zeros((2, H_out, 1), np.float32)):
        for id_arg in (ids, ids_arr):
            with _refused(pool, ValueError) as info:
                pool.step(id_arg, x, out=out)
            assert_message_names(info, "out")
    for out in (np.zeros((2, H_out), np.float64), np.zeros((2, H_out), np.int32),
                np.zeros((H_out, 2), np.float32).T, np.zeros((2, 2 * H_out), np.float32)[:, ::2], [[0.0] * H_out] * 2):
        for id_arg in (ids, ids_arr):
            with _refused(pool, TypeError) as info:
                pool.step(id_arg, x, out=out)
            assert_message_names(info, "out")
    ro = np.zeros((2, H_out), np.float32)
    ro.flags.writeable = False
    with _refused(pool, (TypeError, ValueError)):
        pool.step(ids_arr, x, out=ro)
    assert not ro.any()
    with _refused(pool, ValueError):
        pool.step(ids[0], x[0], out=np.zeros((1, H_out), np.float32))


def test_float64_lists_and_non_contiguous_inputs_give_the_same_steps():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    I = cfg["input_size"]
    twins = [pool.fork(i) for i in ids]
    wide = randn(rng, 2, 2 * I)
    x = np.ascontiguousarray(wide[:, ::2])
    for variant in (wide[:, ::2], x.astype(np.float64), x.tolist(), np.asfortranarray(x)):
        assert_close(pool.step(ids, variant), pool.step(twins, x), what=f"x as {type(variant).__name__}")
    xs = randn(rng, 2, 3, I).transpose(1, 0, 2)  # (T, N, I), not contiguous
    assert_close(pool.process(ids, xs), pool.process(twins, np.ascontiguousarray(xs)), what="non-contiguous xs")
    assert_close(pool.process(ids[0], xs[:, 0].astype(np.float64)), pool.process(twins[0], xs[:, 0]))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.intp, "strided-int64"])
def test_ids_as_numpy_integer_arrays(dtype):
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=3)
    I = cfg["input_size"]
    twins = [pool.fork(i) for i in ids]
    x = randn(rng, 2, I)
    if dtype == "strided-int64":
        arr = np.array([ids[2], -5, ids[0]], np.int64)[::2]
    else:
        arr = np.array([ids[2], ids[0]], dtype)
    assert_close(pool.step(arr, x), pool.step([twins[2], twins[0]], x), what=f"step with {dtype} ids")
    xs = randn(rng, 3, 2, I)
    assert_close(pool.process(arr, xs), pool.process([twins[2], twins[0]], xs), what=f"process with {dtype} ids")
    pool.reset(arr)
    assert_identical(pool.state(ids[0]), zero_state(kind, cfg, 1))
    assert_close(pool.state(ids[1]), pool.state(twins[1]))
    assert_close(pool.step(np.int64(ids[1]), x[0]), pool.step(np.int32(twins[1]), x[0]), what="numpy scalar ids")


def test_zero_ids_step_and_process_nothing():
    kind, cfg, m, pool, ids, rng = _pool_with_streams(n=2)
    I, H_out = cfg["input_size"], output_size(kind, cfg)
    before = _states(pool)
    empty = np.zeros(0, np.int64)
    y = pool.step(empty, np.zeros((0, I), np.float32))
    assert_float32(y)
    assert y.shape == (0, H_out)
    out = np.zeros((0, H_out), np.float32)
    assert pool.step(empty, np.zeros((0, I), np.float32), out=out) is out
    assert pool.process(empty, np.zeros((4, 0, I), np.float32)).shape == (4, 0, H_out)
    with pytest.raises(ValueError):
        pool.step(empty, np.zeros((1, I), np.float32))
    for i, st in before.items():
        assert_identical(pool.state(i), st)


# ------------------------------------------------------------------------------------------------
# Batcher


def _batcher_model():
    return sr.LSTM(8, 16, seed=12)


def _stream_from(m, state=None):
    """A stream of one row, from `state` (None: zeros)."""
    s = m.stream(1)
    if state is not None:
        s.state = state
    return s


def _reference_steps(m, xs, state=None):
    s = _stream_from(m, state)
    return np.stack([s.step(x[None])[0] for x in xs])


def test_batcher_from_sixteen_threads_equals_one_stream_per_id():
    m = _batcher_model()
    pool = m.pool(64)
    rng = rng_for("batcher threads")
    ids = [pool.open() for _ in range(64)]
    X = {i: randn(rng, 30, 8) for i in ids}
    futures = {i: [] for i in ids}
    barrier = threading.Barrier(16)
    errors = []

    def producer(mine):
        try:
            barrier.wait(timeout=30)
            for t in range(30):
                for i in mine:
                    futures[i].append(batcher.submit(i, X[i][t]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    with sr.Batcher(pool, max_batch=64, max_delay=0.002) as batcher:
        threads = [threading.Thread(target=producer, args=(ids[k::16],)) for k in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert not errors, errors
        results = {i: np.stack([f.result(timeout=30) for f in futures[i]]) for i in ids}
        stats = batcher.stats()
    assert stats["frames"] >= 64 * 30
    assert stats["batches"] < 64 * 30, "frames of different streams were never batched together"
    for i in ids:
        assert_float32(results[i])
        assert results[i].shape == (30, 16)
        assert_close(results[i], _reference_steps(m, X[i]), what=f"batched frames of stream {i}")
        assert_close(pool.state(i), _final_state(m, X[i]), what=f"state of {i}")


def _final_state(m, xs, state=None):
    s = _stream_from(m, state)
    s.process(xs[:, None])
    return s.state


def test_batcher_steps_the_frames_of_one_stream_in_submission_order():
    m = _batcher_model()
    pool = m.pool(8)
    rng = rng_for("batcher order")
    ids = [pool.open() for _ in range(4)]
    X = {i: randn(rng, 100, 8) for i in ids}
    with sr.Batcher(pool, max_batch=3, max_delay=0.0) as batcher:
        futs = {i: [] for i in ids}
        for t in range(100):  # one stream much faster than the others
            futs[ids[0]].append(batcher.submit(ids[0], X[ids[0]][t]))
            if t % 4 == 0:
                for i in ids[1:]:
                    futs[i].append(batcher.submit(i, X[i][t // 4]))
        for i in ids:
            y = np.stack([f.result(timeout=30) for f in futs[i]])
            assert_close(y, _reference_steps(m, X[i][:len(futs[i])]), what=f"stream {i} in order")


def test_a_bad_frame_fails_its_own_future_only_and_does_not_advance_the_stream():
    m = _batcher_model()
    pool = m.pool(8)
    rng = rng_for("batcher bad frame")
    a, b = pool.open(), pool.open()
    closed = pool.open()
    pool.close(closed)
    xs = randn(rng, 4, 8)
    xb = randn(rng, 4, 8)
    with sr.Batcher(pool, max_batch=8, max_delay=0.001) as batcher:
        good_a, good_b, bad = [], [], []
        good_a.append(batcher.submit(a, xs[0]))
        bad.append((ValueError, batcher.submit(a, np.ones(7, np.float32))))
        good_b.append(batcher.submit(b, xb[0]))
        bad.append((ValueError, batcher.submit(a, np.ones((2, 8), np.float32))))
        good_a.append(batcher.submit(a, xs[1]))
        bad.append((TypeError, batcher.submit(a, np.array(["a"] * 8))))
        bad.append((TypeError, batcher.submit(a, "frame")))
        bad.append((TypeError, batcher.submit(1.5, xs[2])))
        bad.append((TypeError, batcher.submit(None, xs[2])))
        good_b.append(batcher.submit(b, xb[1]))
        bad.append((KeyError, batcher.submit(closed, xs[2])))
        bad.append((KeyError, batcher.submit(12345, xs[2])))
        bad.append((KeyError, batcher.submit(-1, xs[2])))
        good_a.append(batcher.submit(a, xs[2]))
        good_a.append(batcher.submit(a, xs[3]))
        good_b.append(batcher.submit(b, xb[2]))
        good_b.append(batcher.submit(b, xb[3]))
        ya = np.stack([f.result(timeout=30) for f in good_a])
        yb = np.stack([f.result(timeout=30) for f in good_b])
        outcomes = [f.exception(timeout=30) for _, f in bad]
    assert_close(ya, _reference_steps(m, xs), what="stream a around bad frames")
    assert_close(yb, _reference_steps(m, xb), what="stream b beside bad frames")
    assert pool.ids() == [a, b]
    wrong = [(k, exc.__name__, e) for k, ((exc, _), e) in enumerate(zip(bad, outcomes)) if not isinstance(e, exc)]
    assert not wrong, f"bad frames (index, expected exception, got): {wrong}"


def test_batcher_from_asyncio_tasks_equals_one_stream_per_id():
    m = _batcher_model()
    pool = m.pool(32)
    rng = rng_for("batcher asyncio")
    ids = [pool.open() for _ in range(32)]
    X = {i: randn(rng, 12, 8) for i in ids}

    async def one_stream(batcher, i):
        return np.stack([await batcher.asubmit(i, x) for x in X[i]])

    async def main(batcher):
        return await asyncio.wait_for(asyncio.gather(*(one_stream(batcher, i) for i in ids)), timeout=60)

    with sr.Batcher(pool, max_batch=16, max_delay=0.002) as batcher:
        results = asyncio.run(main(batcher))
    for i, y in zip(ids, results):
        assert_close(y, _reference_steps(m, X[i]), what=f"asyncio frames of stream {i}")


def test_batcher_close_completes_pending_frames_then_refuses_submits():
    m = _batcher_model()
    pool = m.pool(16)
    rng = rng_for("batcher close")
    ids = [pool.open() for _ in range(5)]
    X = {i: randn(rng, 3, 8) for i in ids}
    batcher = sr.Batcher(pool, max_batch=16, max_delay=0.5)
    futs = {i: [batcher.submit(i, x) for x in X[i]] for i in ids}
    batcher.close()
    assert batcher.closed
    for i in ids:
        assert all(f.done() for f in futs[i]), "close() returned before its pending frames were done"
        assert_close(np.stack([f.result(timeout=0) for f in futs[i]]), _reference_steps(m, X[i]))
    with pytest.raises(RuntimeError):
        batcher.submit(ids[0], X[ids[0]][0])
    with pytest.raises(RuntimeError):
        asyncio.run(batcher.asubmit(ids[0], X[ids[0]][0]))
    batcher.close()  # a second close does nothing
    with sr.Batcher(pool, max_batch=16) as b2:
        f = b2.submit(ids[0], X[ids[0]][0])
    assert b2.closed and f.done()
    with pytest.raises(RuntimeError):
        b2.submit(ids[0], X[ids[0]][0])
    assert_close(pool.state(ids[0]), _final_state(m, np.concatenate([X[ids[0]], X[ids[0]][:1]])))


def test_batcher_constructor_arguments_are_checked():
    m = _batcher_model()
    pool = m.pool(8)
    for kwargs in (dict(max_batch=0), dict(max_batch=9), dict(max_batch=-1), dict(max_delay=-0.001),
                   dict(max_delay=math.nan), dict(max_delay=math.inf)):
        with pytest.raises(ValueError):
            sr.Batcher(pool, **kwargs)
    for kwargs in (dict(max_batch=2.5), dict(max_batch=True), dict(max_batch="8"), dict(max_batch=8, max_delay="0.1"),
                   dict(max_batch=8, max_delay=None), dict(max_batch=8, max_delay=True)):
        with pytest.raises(TypeError):
            sr.Batcher(pool, **kwargs)
    for not_a_pool in (m, m.stream(1), None, [pool]):
        with pytest.raises(TypeError):
            sr.Batcher(not_a_pool)
    with sr.Batcher(pool, max_batch=8, max_delay=0) as b:
        a = pool.open()
        assert b.submit(a, np.zeros(8, np.float32)).result(timeout=30).shape == (16,)


def test_batcher_default_max_batch_fits_a_small_pool():
    m = _batcher_model()
    pool = m.pool(8)
    with sr.Batcher(pool) as b:
        assert b.max_batch == 8
        a = pool.open()
        expected = m.stream(1).step(np.ones(8, np.float32))
        assert_close(b.submit(a, np.ones(8, np.float32)).result(timeout=30), expected)


def test_a_batcher_closed_or_dropped_in_a_futures_callback_neither_hangs_nor_crashes():
    m = _batcher_model()
    pool = m.pool(4)
    a = pool.open()
    x = np.ones(8, np.float32)
    closing = sr.Batcher(pool, max_batch=1, max_delay=0)
    first = closing.submit(a, x)
    first.add_done_callback(lambda _: closing.close())
    first.result(timeout=30)
    closing.close()
    assert closing.closed
    with pytest.raises(RuntimeError):
        closing.submit(a, x)
    # The last reference dropped on the batcher's own thread: what it had pending fails, nothing hangs.
    holder = {"batcher": sr.Batcher(pool, max_batch=1, max_delay=0)}
    futures = [holder["batcher"].submit(a, x)]
    futures[0].add_done_callback(lambda _: holder.pop("batcher", None))
    futures += [holder["batcher"].submit(a, x) for _ in range(3) if "batcher" in holder]
    for future in futures:
        with contextlib.suppress(RuntimeError):
            assert future.result(timeout=30).shape == (16,)
    assert "batcher" not in holder
    assert len(pool) == 1


# ------------------------------------------------------------------------------------------------
# Threads


def test_open_close_snapshot_from_another_thread_while_a_thread_steps():
    m = sr.LSTM(32, 64, seed=13)  # big enough that a step lets other threads run
    pool, other = m.pool(32), m.pool(8)
    rng = rng_for("pool threads")
    stepped = [pool.open() for _ in range(8)]
    X = randn(rng, 2000, 8, 32)
    states = [random_state(rng, "LSTM", dict(input_size=32, hidden_size=64, num_layers=1), None) for _ in range(16)]
    ys, errors, done, start = [], [], threading.Event(), threading.Barrier(2)

    def stepper():
        try:
            start.wait(timeout=30)
            for t in range(len(X)):  # until the other thread has done its rounds meanwhile (at least 50 steps)
                if t >= 50 and overlapped >= 20:
                    break
                ys.append(pool.step(stepped, X[t]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    seen, rounds, overlapped = set(stepped), 0, 0

    def churn():
        nonlocal rounds, overlapped
        try:
            start.wait(timeout=30)
            while not done.is_set() or rounds < 20:
                overlapped += not done.is_set()
                st = states[rounds % len(states)]
                a = pool.open(st)
                b = pool.fork(a)
                c = other.restore(pool.snapshot(b))
                d = pool.restore(other.snapshot(c))
                for i in (a, b, d):
                    assert i not in seen, f"id {i} reused"
                    seen.add(i)
                    assert_identical(pool.state(i), _batched("LSTM", st), f"state of {i} opened in a thread")
                pool.set_state(b, None)
                pool.reset([a])
                assert_identical(pool.state(b), pool.state(a))
                assert len(pool) >= 8 + 3
                for i in (a, b, d):
                    pool.close(i)
                other.close(c)
                rounds += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=stepper), threading.Thread(target=churn)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert rounds >= 20 and len(pool) == 8 and pool.ids() == stepped
    assert overlapped > 0, "no pool call ran while the other thread stepped"
    y = np.stack(ys)
    X = X[:len(ys)]
    for k, i in enumerate(stepped):
        assert_close(y[:, k], _reference_steps(m, X[:, k]), what=f"stream {i} stepped beside another thread")
        assert_close(pool.state(i), _final_state(m, X[:, k]), what=f"state of {i}")


def test_streams_open_and_close_while_a_batcher_steps_others():
    m = _batcher_model()
    pool = m.pool(24)
    rng = rng_for("batcher churn")
    ids = [pool.open() for _ in range(8)]
    X = {i: randn(rng, 40, 8) for i in ids}
    errors, opened = [], []
    with sr.Batcher(pool, max_batch=8, max_delay=0.001) as batcher:
        stop = threading.Event()

        def churn():
            try:
                while not stop.is_set():
                    a = pool.open()
                    opened.append(a)
                    blob = pool.snapshot(a)
                    b = pool.restore(blob)
                    opened.append(b)
                    pool.close(a)
                    pool.close(b)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        th = threading.Thread(target=churn)
        th.start()
        try:
            futs = {i: [] for i in ids}
            for t in range(40):
                for i in ids:
                    futs[i].append(batcher.submit(i, X[i][t]))
            results = {i: np.stack([f.result(timeout=30) for f in futs[i]]) for i in ids}
        finally:
            stop.set()
            th.join(timeout=30)
    assert not errors, errors
    assert len(opened) == len(set(opened)) > 0
    assert pool.ids() == ids
    for i in ids:
        assert_close(results[i], _reference_steps(m, X[i]), what=f"stream {i} beside opens and closes")
