# tests/test_streaming.py
# Streams in any chunking equal the whole-sequence call; state, reset, out= and NaN handling.
# Part of streamrnn, MIT licence.
import tracemalloc

import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (assert_close, assert_float32, assert_identical, copy_state, feed_stream, make_sr,
                      output_size, randn, random_input, random_state, rng_for, zero_state)

# (kind, extra constructor arguments)
VARIANTS = {
    "LSTM": ("LSTM", {}),
    "LSTM-proj": ("LSTM", {"proj_size": 3}),
    "GRU": ("GRU", {}),
    "GRU-cho": ("GRU", {"reset_after": False}),
    "RNN-tanh": ("RNN", {"nonlinearity": "tanh"}),
    "RNN-relu": ("RNN", {"nonlinearity": "relu"}),
}


def _make(variant, rng, seed, **over):
    kind, extra = VARIANTS[variant]
    cfg = dict(input_size=int(rng.integers(1, 9)), hidden_size=int(rng.integers(4, 17)),
               num_layers=int(rng.integers(1, 4)), bias=bool(rng.random() < 0.8),
               batch_first=bool(rng.random() < 0.5), residual=bool(rng.random() < 0.5), **extra)
    cfg.update(over)
    if cfg["residual"] and rng.random() < 0.5:
        cfg["input_size"] = output_size(kind, cfg)  # residual on layer 0 too
    return kind, cfg, make_sr(kind, cfg, seed=seed)


def _random_chunks(rng, T, max_chunk):
    sizes = []
    while sum(sizes) < T:
        sizes.append(int(min(rng.integers(1, max_chunk + 1), T - sum(sizes))))
    return sizes


def _batched_state(kind, state):
    """Add the B=1 axis to an unbatched state."""
    if kind == "LSTM":
        return tuple(v[:, None] for v in state)
    return state[:, None]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_streaming_in_random_chunks_equals_the_whole_sequence(variant, seed):
    rng = rng_for("chunks", variant, seed)
    kind, cfg, m = _make(variant, rng, seed)
    B = int(rng.integers(1, 5))
    unbatched = B == 1 and rng.random() < 0.5
    T = int(rng.integers(1, 40))
    x = random_input(rng, cfg, T, None if unbatched else B)
    y_ref, s_ref = m(x)

    s = m.stream(batch=B)
    y = feed_stream(s, x, _random_chunks(rng, T, T), rng, cfg["batch_first"], unbatched)
    assert y.shape == y_ref.shape
    assert_close(y, y_ref, what=f"stream y for {cfg}")
    assert_close(s.state, _batched_state(kind, s_ref) if unbatched else s_ref, what="stream state")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_streaming_in_chunks_longer_than_the_internal_block_equals_the_whole_sequence(variant):
    rng = rng_for("long chunks", variant)
    kind, cfg, m = _make(variant, rng, 1, num_layers=2, batch_first=False, input_size=3, hidden_size=6)
    B, T = 2, 400
    x = random_input(rng, cfg, T, B)
    y_ref, s_ref = m(x)
    for sizes in ([T], [63, 64, 65, 1, 128, 70] + [1] * 9,
                  [1, 200, 199], _random_chunks(rng, T, 150)):
        assert sum(sizes) == T
        s = m.stream(batch=B)
        y = feed_stream(s, x, sizes, rng, False, False)
        assert_close(y, y_ref, what=f"chunks {sizes}")
        assert_close(s.state, s_ref, what=f"state after chunks {sizes}")


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_steps_of_one_row_of_a_wide_model_equal_the_whole_sequence(variant, residual):
    # Weights past 32 KiB a layer: a stream of one row multiplies them packed rather than
    # transposed (where the CPU has the packed kernel).
    rng = rng_for("wide steps", variant, residual)
    kind, cfg, m = _make(variant, rng, 2, num_layers=2, batch_first=False, input_size=64, hidden_size=72,
                         bias=True, residual=residual)
    x = random_input(rng, cfg, 12, 1)
    y_ref, s_ref = m(x)
    s = m.stream()
    y = np.stack([s.step(x_t) for x_t in x])
    assert_close(y, y_ref, what=f"stepped y for {cfg}")
    assert_close(s.state, s_ref, what="stepped state")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_streaming_after_setting_the_state_equals_the_call_with_that_state(variant):
    rng = rng_for("set state", variant)
    kind, cfg, m = _make(variant, rng, 2)
    B, T = 3, 11
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B)
    y_ref, s_ref = m(x, state)
    s = m.stream(batch=B)
    s.state = state
    y = feed_stream(s, x, _random_chunks(rng, T, 5), rng, cfg["batch_first"], False)
    assert_close(y, y_ref)
    assert_close(s.state, s_ref)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unbatched_step_and_process_work_when_batch_is_one(variant):
    rng = rng_for("unbatched", variant)
    kind, cfg, m = _make(variant, rng, 3)
    H_out = output_size(kind, cfg)
    x = random_input(rng, cfg, 6, None)
    state = random_state(rng, kind, cfg, None)
    y_ref, s_ref = m(x, state)
    s = m.stream()  # batch=1 by default
    s.state = state  # unbatched state is accepted when batch == 1
    y0 = s.step(x[0])
    assert y0.shape == (H_out,)
    y1 = s.process(x[1:4])
    assert y1.shape == (3, H_out)
    y2 = s.step(x[4])
    y3 = s.process(x[5:])
    assert_close(np.concatenate([y0[None], y1, y2[None], y3]), y_ref)
    assert_close(s.state, _batched_state(kind, s_ref))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_new_stream_starts_from_zeros_with_batched_state_shapes(variant):
    rng = rng_for("new stream", variant)
    kind, cfg, m = _make(variant, rng, 4)
    for B in (1, 3):
        st = m.stream(batch=B).state
        assert_float32(st)
        assert_identical(st, zero_state(kind, cfg, B), f"state of a new stream of batch {B}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_streams_of_one_model_are_independent(variant):
    rng = rng_for("independent", variant)
    kind, cfg, m = _make(variant, rng, 5, batch_first=False)
    x1, x2 = random_input(rng, cfg, 5, 2), random_input(rng, cfg, 5, 2)
    a, b = m.stream(batch=2), m.stream(batch=2)
    ya = [a.step(x1[0])]
    yb = [b.step(x2[0])]
    ya.append(a.process(x1[1:]))
    yb.append(b.process(x2[1:]))
    assert_close(np.concatenate([ya[0][None], ya[1]]), m(x1)[0])
    assert_close(np.concatenate([yb[0][None], yb[1]]), m(x2)[0])


# ------------------------------------------------------------------------------------------------
# state, reset


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_state_get_and_set_round_trip_and_the_getter_returns_copies(variant):
    rng = rng_for("state rt", variant)
    kind, cfg, m = _make(variant, rng, 6)
    s = m.stream(batch=3)
    s.process(random_input(rng, cfg, 4, 3))
    st = s.state
    s2 = m.stream(batch=3)
    s2.state = st
    assert_identical(s2.state, st, "state after set")
    kept = copy_state(st)
    (st[0] if kind == "LSTM" else st)[...] = 99.0
    assert_identical(s.state, kept, "state after mutating the returned copy")
    assert_identical(s2.state, kept, "state after mutating the array it was set from")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reset_zeros_every_stream(variant):
    rng = rng_for("reset", variant)
    kind, cfg, m = _make(variant, rng, 7)
    s = m.stream(batch=3)
    x = random_input(rng, cfg, 5, 3)
    first = s.process(x)
    s.reset()
    assert_identical(s.state, zero_state(kind, cfg, 3), "state after reset")
    assert_close(s.process(x), first, what="output after reset equals the first pass")


@pytest.mark.parametrize("i", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("variant", ["LSTM-proj", "GRU", "GRU-cho", "RNN-relu"])
def test_reset_of_one_stream_zeros_that_stream_only(variant, i):
    rng = rng_for("reset i", variant, i)
    kind, cfg, m = _make(variant, rng, 8, batch_first=False)
    B = 3
    x = random_input(rng, cfg, 6, B)
    s = m.stream(batch=B)
    s.process(x[:3])
    before = s.state
    s.reset(i)
    after = s.state
    row = i % B
    others = [b for b in range(B) if b != row]
    for a, b_ in zip(after if kind == "LSTM" else (after,), before if kind == "LSTM" else (before,)):
        assert np.all(a[:, row] == 0.0), f"stream {row} must be zero"
        assert_identical(a[:, others], b_[:, others], "the other streams")
    # continuing: the reset row behaves like a fresh stream, the others as if nothing happened
    y = s.process(x[3:])
    fresh = m.stream(batch=1).process(x[3:, row:row + 1])
    assert_close(y[:, row:row + 1], fresh, what="reset stream")
    y_ref, _ = m(x)
    assert_close(y[:, others], y_ref[3:, others], what="untouched streams")


# ------------------------------------------------------------------------------------------------
# step(out=)


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_step_with_out_writes_into_out_and_returns_the_same_object(variant, unbatched):
    rng = rng_for("out", variant, unbatched)
    kind, cfg, m = _make(variant, rng, 9)
    B = 1 if unbatched else 3
    H_out = output_size(kind, cfg)
    out = np.full((H_out,) if unbatched else (B, H_out), 7.0, np.float32)
    a, b = m.stream(batch=B), m.stream(batch=B)
    for t in range(5):
        x_t = randn(rng, cfg["input_size"]) if unbatched else randn(rng, B, cfg["input_size"])
        r = a.step(x_t, out=out)
        assert r is out
        assert_close(out, b.step(x_t), what=f"step {t}")
    assert_close(a.state, b.state)


def test_step_with_out_allocates_nothing_over_a_thousand_steps():
    rng = rng_for("alloc")
    B, I, H = 8, 16, 128
    models = (sr.LSTM(I, H, 2, seed=0), sr.LSTM(I, H, 2, proj_size=H // 2, residual=True, seed=0),
              sr.GRU(I, H, 2, seed=0), sr.GRU(I, H, reset_after=False, seed=0), sr.RNN(I, H, 2, seed=0))
    for m in models:
        out = np.zeros((B, m.proj_size if getattr(m, "proj_size", 0) else H), np.float32)
        s = m.stream(batch=B)
        xs = [randn(rng, B, I) for _ in range(1000)]
        for x_t in xs[:10]:
            s.step(x_t, out=out)
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for x_t in xs:
                r = s.step(x_t, out=out)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r is out
        assert current - base < 1024, f"{type(m).__name__}: traced memory grew by {current - base} bytes"
        # A new output array shows up as >= 2 KiB of peak here (out is 4 KiB), a temporary view of
        # x or out (a Py_buffer and its shape) as ~400 bytes; a step that allocates nothing leaves
        # only tracemalloc's own bookkeeping (48 bytes measured), whatever the number of steps.
        assert peak - base < 256, \
            f"{type(m).__name__}: a step allocated (peak grew by {peak - base} bytes; out is {out.nbytes})"


# ------------------------------------------------------------------------------------------------
# Non-finite values


@pytest.mark.parametrize("variant", ["LSTM", "GRU", "GRU-cho", "RNN-tanh"])
def test_nan_reaching_a_stream_propagates_and_reset_clears_it(variant):
    rng = rng_for("nan stream", variant)
    kind, cfg, m = _make(variant, rng, 10, batch_first=False)
    B = 2
    x = random_input(rng, cfg, 6, B)
    s = m.stream(batch=B)
    clean = m.stream(batch=B).process(x)
    bad = x.copy()
    bad[1, 0, 0] = np.nan
    y = s.process(bad)  # no exception
    assert np.all(np.isnan(y[1:, 0])), "NaN reaches every later output of its stream"
    assert_close(y[:, 1], clean[:, 1], what="the other stream")
    h = s.state[0] if kind == "LSTM" else s.state
    assert np.all(np.isnan(h[:, 0]))
    s.reset()
    assert_identical(s.state, zero_state(kind, cfg, B), "state after reset")
    assert_close(s.process(x), clean, what="outputs after reset")


def test_nan_in_one_stream_is_cleared_by_resetting_that_stream():
    rng = rng_for("nan reset i")
    m = sr.LSTM(3, 5, 2, seed=0)
    s = m.stream(batch=2)
    x = randn(rng, 4, 2, 3)
    x[0, 1, 1] = np.inf * 0  # NaN
    s.process(x)
    assert np.all(np.isnan(s.state[0][:, 1]))
    s.reset(1)
    assert np.all(np.isfinite(s.state[0])) and np.all(np.isfinite(s.state[1]))
    y = s.step(randn(rng, 2, 3))
    assert np.all(np.isfinite(y))


# ------------------------------------------------------------------------------------------------
# Inputs in any form


def _forms(a):
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), np.float32)
    wide[..., ::2] = a
    return {
        "list": a.tolist(),
        "float64": a.astype(np.float64),
        "strided_view": wide[..., ::2],
        "fortran_order": np.asfortranarray(a),
        "torch": torch.from_numpy(a.copy()),
    }


@pytest.mark.parametrize("form", ["list", "float64", "strided_view", "fortran_order", "torch"])
@pytest.mark.parametrize("variant", ["LSTM-proj", "GRU", "RNN-tanh"])
def test_stream_inputs_in_any_array_like_form_give_identical_results(variant, form):
    rng = rng_for("stream forms", variant, form)
    kind, cfg, m = _make(variant, rng, 12, batch_first=False)
    x = random_input(rng, cfg, 5, 3)
    state = random_state(rng, kind, cfg, 3)
    a, b = m.stream(batch=3), m.stream(batch=3)
    a.state = state
    b.state = tuple(_forms(v)[form] for v in state) if kind == "LSTM" else _forms(state)[form]
    assert_identical(b.state, a.state, "state set from another form")
    assert_identical(b.step(_forms(x[0])[form]), a.step(x[0]), "step")
    assert_identical(b.process(_forms(x[1:])[form]), a.process(x[1:]), "process")
    assert_identical(b.state, a.state, "final state")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_stream_sees_weights_loaded_or_trained_after_it_was_made(variant):
    kind, extra = VARIANTS[variant]
    rng = rng_for("weights after stream", variant)
    m = make_sr(kind, dict(input_size=3, hidden_size=5, num_layers=2, **extra), seed=1)
    stream = m.stream()
    x = randn(rng, 3)
    stream.step(x)
    stream.reset()
    m.load_state_dict({k: v * 0.5 for k, v in m.state_dict().items()})
    assert_close(stream.step(x), m(x[None])[0][0], what="after load_state_dict")
    stream.reset()
    m(x[None, None], train=True)
    m.backward(np.ones((1, 1, output_size(kind, dict(hidden_size=5, **extra))), np.float32))
    sr.optim.SGD(m, lr=0.5).step()
    assert_close(stream.step(x), m(x[None])[0][0], what="after an optimizer step")
