# tests/test_layers.py
# Whole-sequence LSTM/GRU/RNN layers, every option, against PyTorch and a float64 NumPy GRU.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (KINDS, assert_close, assert_float32, assert_identical,
                      copy_state, directions, make_sr, make_torch, numpy_gru, output_size, randn,
                      random_config, random_input, random_state, rng_for, to_numpy,
                      single_layer_modules, torch_forward, zero_state)

SEEDS = range(24)


def _expected_shapes(kind, cfg, T, B):
    D, L, H_out = directions(cfg), cfg.get("num_layers", 1) * directions(cfg), output_size(kind, cfg)
    if B is None:
        y = (T, D * H_out)
        h, c = (L, H_out), (L, cfg["hidden_size"])
    else:
        y = (B, T, D * H_out) if cfg.get("batch_first") else (T, B, D * H_out)
        h, c = (L, B, H_out), (L, B, cfg["hidden_size"])
    return y, ((h, c) if kind == "LSTM" else h)


def _assert_shapes(kind, y, state, expected):
    y_shape, s_shape = expected
    assert_float32(y, state)
    assert y.shape == y_shape
    if kind == "LSTM":
        assert isinstance(state, tuple) and len(state) == 2
        assert (state[0].shape, state[1].shape) == s_shape
    else:
        assert isinstance(state, np.ndarray)
        assert state.shape == s_shape


def _build(kind, cfg, how, seed):
    module = make_torch(kind, cfg, seed)
    if how == "from_torch":
        m = sr.from_torch(module)
    else:
        m = make_sr(kind, cfg)
        m.load_state_dict(module.state_dict())
    return module, m


def _random_case(rng, cfg):
    T = int(rng.integers(1, 13))
    B = None if rng.random() < 0.15 else int(rng.integers(1, 5))
    with_state = bool(rng.random() < 0.5)
    lengths = None
    if B is not None and rng.random() < 0.5:
        lengths = rng.integers(0 if rng.random() < 0.3 else 1, T + 1, size=B)
        lengths[rng.integers(B)] = T  # torch pads to the longest; keep one full row as well
    return T, B, with_state, lengths


# ------------------------------------------------------------------------------------------------
# Parity with PyTorch over random configurations


@pytest.mark.parametrize("how", ["from_torch", "load_state_dict"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_torch_on_a_random_configuration(kind, seed, how):
    rng = rng_for("layers", kind, seed, how)
    cfg = random_config(kind, rng)
    module, m = _build(kind, cfg, how, seed)
    T, B, with_state, lengths = _random_case(rng, cfg)
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if with_state else None

    y_ref, s_ref = torch_forward(module, x, state, lengths)
    y, s = m(x, state, lengths=lengths)

    _assert_shapes(kind, y, s, _expected_shapes(kind, cfg, T, B))
    assert_close(y, y_ref, what=f"y for {cfg}")
    assert_close(s, s_ref, what=f"state for {cfg}")


NAMED_OPTIONS = {
    "one_layer": dict(num_layers=1),
    "three_layers": dict(num_layers=3),
    "bidirectional": dict(num_layers=1, bidirectional=True),
    "bidirectional_two_layers": dict(num_layers=2, bidirectional=True),
    "no_bias": dict(num_layers=2, bias=False),
    "batch_first": dict(num_layers=2, batch_first=True),
    "batch_first_bidirectional": dict(num_layers=2, batch_first=True, bidirectional=True),
    "dropout_is_inactive_in_inference": dict(num_layers=3, dropout=0.5),
}


def _named_cases():
    for kind in KINDS:
        for name, opts in NAMED_OPTIONS.items():
            yield pytest.param(kind, dict(opts), id=f"{kind}-{name}")
    for name, opts in {"proj": dict(num_layers=1, proj_size=3),
                       "proj_two_layers_bidirectional": dict(num_layers=2, proj_size=5, bidirectional=True),
                       "proj_batch_first_no_bias": dict(num_layers=2, proj_size=2, batch_first=True, bias=False)
                       }.items():
        yield pytest.param("LSTM", dict(opts), id=f"LSTM-{name}")
    for nl in ("tanh", "relu"):
        yield pytest.param("RNN", dict(num_layers=2, nonlinearity=nl), id=f"RNN-{nl}")
        yield pytest.param("RNN", dict(num_layers=2, nonlinearity=nl, bidirectional=True),
                           id=f"RNN-{nl}-bidirectional")


@pytest.mark.parametrize("initial", ["zero_state", "given_state"])
@pytest.mark.parametrize("kind,opts", list(_named_cases()))
def test_each_layer_option_matches_torch_with_and_without_lengths(kind, opts, initial):
    rng = rng_for("named", kind, repr(opts), initial)
    cfg = dict(input_size=5, hidden_size=7, **opts)
    module, m = _build(kind, cfg, "from_torch", 3)
    T, B = 9, 4
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if initial == "given_state" else None

    y, s = m(x, state)
    y_ref, s_ref = torch_forward(module, x, state)
    _assert_shapes(kind, y, s, _expected_shapes(kind, cfg, T, B))
    assert_close(y, y_ref, what="y")
    assert_close(s, s_ref, what="state")

    lengths = np.array([3, 9, 1, 6])
    y, s = m(x, state, lengths=lengths)
    y_ref, s_ref = torch_forward(module, x, state, lengths)
    assert_close(y, y_ref, what="y with lengths")
    assert_close(s, s_ref, what="state with lengths")

    xu = x[0] if cfg.get("batch_first") else x[:, 0]
    su = None if state is None else (tuple(v[:, 0] for v in state) if kind == "LSTM" else state[:, 0])
    y, s = m(xu, su)
    y_ref, s_ref = torch_forward(module, xu, su)
    _assert_shapes(kind, y, s, _expected_shapes(kind, cfg, T, None))
    assert_close(y, y_ref, what="unbatched y")
    assert_close(s, s_ref, what="unbatched state")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("unbatched", [False, True], ids=["batch-of-one", "unbatched"])
def test_one_long_row_matches_torch(kind, unbatched):
    """A single row of 100 steps takes the transposed-weights path of whole-sequence calls."""
    rng = rng_for("one long row", kind, unbatched)
    cfg = dict(input_size=12, hidden_size=20, num_layers=2, bidirectional=True)
    if kind == "LSTM":
        cfg["proj_size"] = 9
    module, m = _build(kind, cfg, "from_torch", 7)
    x = random_input(rng, cfg, 100, 1)
    state = random_state(rng, kind, cfg, 1)
    if unbatched:
        x = x[:, 0]
        state = tuple(s[:, 0] for s in state) if isinstance(state, tuple) else state[:, 0]
    y, s = m(x, state)
    y_ref, s_ref = torch_forward(module, x, state, None)
    assert_close(y, y_ref, what="y")
    assert_close(s, s_ref, what="state")


@pytest.mark.parametrize("kind", KINDS)
def test_sequences_longer_than_an_internal_block_match_torch(kind):
    rng = rng_for("long", kind)
    cfg = dict(input_size=40, hidden_size=33, num_layers=2, bidirectional=True)
    if kind == "LSTM":
        cfg["proj_size"] = 17
    module, m = _build(kind, cfg, "from_torch", 6)
    x = random_input(rng, cfg, 150, 3)
    state = random_state(rng, kind, cfg, 3)
    for lengths in (None, np.array([150, 65, 129])):
        y, s = m(x, state, lengths=lengths)
        y_ref, s_ref = torch_forward(module, x, state, lengths)
        assert_close(y, y_ref, what=f"y with lengths {lengths}")
        assert_close(s, s_ref, what=f"state with lengths {lengths}")


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_input_projections_made_a_chunk_of_steps_at_a_time_match_torch(kind, batch_first):
    # 64 rows of layers this wide keep a few steps' projections in cache at a time (4 steps of an
    # LSTM, 5 of a GRU, 16 of an RNN): every direction starts chunks at its own end, the last one
    # short; batch-first projects each row's steps apart.
    rng = rng_for("chunks", kind, batch_first)
    cfg = dict(input_size=48, hidden_size=128, num_layers=2, bidirectional=True, batch_first=batch_first)
    module, m = _build(kind, cfg, "from_torch", 5)
    x = random_input(rng, cfg, 23, 64)
    state = random_state(rng, kind, cfg, 64)
    for lengths in (None, rng.integers(0, 24, size=64)):
        y, s = m(x, state, lengths=lengths)
        y_ref, s_ref = torch_forward(module, x, state, lengths)
        assert_close(y, y_ref, what=f"y with lengths {lengths}")
        assert_close(s, s_ref, what=f"state with lengths {lengths}")


@pytest.mark.parametrize("rows", [4, 1], ids=["packed-copies", "transposed-copies"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_sees_weights_loaded_or_trained_after_an_earlier_call(kind, rows):
    # The model keeps copies of its weights made for whole-sequence calls (packed, or transposed
    # for one row) between calls: a change of the weights must reach the next call.
    rng = rng_for("weights after call", kind, rows)
    cfg = dict(input_size=6, hidden_size=16, num_layers=2)
    m = make_sr(kind, cfg, seed=2)
    x = random_input(rng, cfg, 40, rows)

    def assert_runs_its_weights(what):
        fresh = make_sr(kind, cfg)
        fresh.load_state_dict(m.state_dict())
        assert_identical(m(x)[0], fresh(x)[0], what=what)

    assert_runs_its_weights("first call")
    m.load_state_dict({k: v * 0.5 for k, v in m.state_dict().items()})
    assert_runs_its_weights("after load_state_dict")
    y, _ = m(x, train=True)
    m.backward(np.ones_like(y))
    sr.optim.SGD(m, lr=0.1).step()
    assert_runs_its_weights("after an optimizer step")


def test_calls_from_many_threads_at_once_give_the_result_of_one():
    # Calls release the GIL; the copies of the weights they share are made once, under a lock.
    import concurrent.futures
    rng = rng_for("concurrent calls")
    cfg = dict(input_size=32, hidden_size=64, num_layers=2)
    m = make_sr("LSTM", cfg, seed=3)
    xs = [random_input(rng, cfg, 30, 8) for _ in range(8)]
    fresh = make_sr("LSTM", cfg)
    fresh.load_state_dict(m.state_dict())
    expected = [fresh(x)[0] for x in xs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            m.load_state_dict(m.state_dict())  # a new version: the first calls make the copies again
            results = list(pool.map(lambda x: m(x)[0], xs))
            for y, y_ref in zip(results, expected):
                assert_identical(y, y_ref, what="y of a concurrent call")


def test_dropout_between_layers_does_nothing_in_inference():
    rng = rng_for("dropout")
    cfg = dict(input_size=4, hidden_size=6, num_layers=3, dropout=0.9)
    module, m = _build("LSTM", cfg, "from_torch", 0)
    x = random_input(rng, cfg, 8, 3)
    y1, s1 = m(x)
    y2, s2 = m(x)
    assert_identical(y1, y2, "repeated call")
    assert_identical(s1, s2, "repeated call state")
    y_ref, _ = torch_forward(module, x)
    assert_close(y1, y_ref)


# ------------------------------------------------------------------------------------------------
# lengths


@pytest.mark.parametrize("form", ["list", "int8", "uint16", "int32", "int64", "torch", "tuple"])
def test_lengths_of_any_integer_type_and_order_match_packed_sequences(form):
    rng = rng_for("lengths", form)
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    module, m = _build("GRU", cfg, "from_torch", 1)
    x = random_input(rng, cfg, 10, 4)
    state = random_state(rng, "GRU", cfg, 4)
    lengths = np.array([4, 10, 7, 2])  # unsorted
    as_form = {
        "list": lengths.tolist(), "tuple": tuple(lengths.tolist()),
        "int8": lengths.astype(np.int8), "uint16": lengths.astype(np.uint16),
        "int32": lengths.astype(np.int32), "int64": lengths.astype(np.int64),
        "torch": torch.from_numpy(lengths),
    }[form]
    y, s = m(x, state, lengths=as_form)
    y_ref, s_ref = torch_forward(module, x, state, lengths)
    assert_close(y, y_ref)
    assert_close(s, s_ref)


@pytest.mark.parametrize("kind", KINDS)
def test_a_zero_length_row_gives_zeros_and_returns_its_initial_state(kind):
    rng = rng_for("zero-length", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    module, m = _build(kind, cfg, "from_torch", 2)
    x = random_input(rng, cfg, 6, 3)
    state = random_state(rng, kind, cfg, 3)
    lengths = np.array([6, 0, 3])
    y, s = m(x, state, lengths=lengths)
    assert np.all(y[:, 1] == 0.0), "y of the zero-length row must be zeros"
    if kind == "LSTM":
        assert_identical(s[0][:, 1], state[0][:, 1], "h of the zero-length row")
        assert_identical(s[1][:, 1], state[1][:, 1], "c of the zero-length row")
    else:
        assert_identical(s[:, 1], state[:, 1], "h of the zero-length row")
    y_ref, s_ref = torch_forward(module, x, state, lengths)
    assert_close(y, y_ref)
    assert_close(s, s_ref)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_all_equal_to_T_give_the_same_result_as_no_lengths(kind):
    rng = rng_for("full-lengths", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True)
    m = make_sr(kind, cfg, seed=5)
    x = random_input(rng, cfg, 7, 3)
    y0, s0 = m(x)
    y1, s1 = m(x, lengths=[7, 7, 7])
    assert_close(y1, y0)
    assert_close(s1, s0)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_sequence_gives_an_empty_output_and_leaves_the_state_unchanged(kind):
    rng = rng_for("T=0", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    m = make_sr(kind, cfg, seed=1)
    x = np.zeros((0, 2, 3), np.float32)
    state = random_state(rng, kind, cfg, 2)
    y, s = m(x, state)
    assert y.shape == (0, 2, 8)
    assert_identical(s, copy_state(state), "state")
    y, s = m(x)
    assert y.shape == (0, 2, 8)
    assert_identical(s, zero_state(kind, cfg, 2), "state from None")


# ------------------------------------------------------------------------------------------------
# GRU with reset_after=False (Cho et al.) against the NumPy reference


def test_the_numpy_gru_reference_agrees_with_torch_when_reset_after():
    rng = rng_for("numpy-gru-check")
    cfg = dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=True)
    module = make_torch("GRU", cfg, 4)
    x = random_input(rng, cfg, 8, 3)
    h0 = random_state(rng, "GRU", cfg, 3)
    lengths = np.array([8, 2, 5])
    y_ref, h_ref = torch_forward(module, x, h0, lengths)
    w = {k: to_numpy(v) for k, v in module.state_dict().items()}
    y, h = numpy_gru(x, w, num_layers=2, bidirectional=True, bias=True, reset_after=True, h0=h0,
                     lengths=lengths)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


@pytest.mark.parametrize("seed", range(12))
def test_gru_without_reset_after_matches_the_cho_equations(seed):
    rng = rng_for("cho", seed)
    cfg = random_config("GRU", rng)
    cfg.pop("dropout", None)
    m = make_sr("GRU", cfg, reset_after=False, seed=seed)
    assert m.reset_after is False
    T, B, with_state, lengths = _random_case(rng, cfg)
    x = random_input(rng, cfg, T, B if B is not None else 1)
    h0 = random_state(rng, "GRU", cfg, B if B is not None else 1) if with_state else None
    w = m.state_dict()
    xt = x.transpose(1, 0, 2) if cfg["batch_first"] else x
    y_ref, h_ref = numpy_gru(xt, w, num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"],
                             bias=cfg["bias"], reset_after=False, h0=h0, lengths=lengths)
    if cfg["batch_first"]:
        y_ref = y_ref.transpose(1, 0, 2)
    if B is None:  # unbatched call
        y, h = m(x[0] if cfg["batch_first"] else x[:, 0], None if h0 is None else h0[:, 0])
        y_ref, h_ref = y_ref[0] if cfg["batch_first"] else y_ref[:, 0], h_ref[:, 0]
    else:
        y, h = m(x, h0, lengths=lengths)
    assert_float32(y, h)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


@pytest.mark.parametrize("hidden", [16, 20])
def test_gru_without_reset_after_matches_the_cho_equations_on_many_rows(hidden):
    """Enough rows for the packed weights (AVX2, AVX-512): with 2H at a panel's start (16) and
    not (20), the n block's product is or is not taken from the packed W_hh."""
    rng = rng_for("cho many rows", hidden)
    cfg = dict(input_size=24, hidden_size=hidden, num_layers=2, bias=True, batch_first=False, bidirectional=True)
    m = make_sr("GRU", cfg, reset_after=False, seed=hidden)
    x = random_input(rng, cfg, 40, 7)
    h0 = random_state(rng, "GRU", cfg, 7)
    y_ref, h_ref = numpy_gru(x, m.state_dict(), num_layers=2, bidirectional=True, bias=True, reset_after=False,
                             h0=h0, lengths=None)
    y, h = m(x, h0)
    assert_close(y, y_ref)
    assert_close(h, h_ref)
    stream = make_sr("GRU", dict(cfg, bidirectional=False), reset_after=False, seed=hidden).stream(batch=7)
    one_way = make_sr("GRU", dict(cfg, bidirectional=False), reset_after=False, seed=hidden)
    y_whole, _ = one_way(x)
    assert_close(np.concatenate([stream.step(x[t])[None] for t in range(40)]), y_whole, what="streamed y")


def test_reset_after_changes_the_result_on_the_same_weights():
    rng = rng_for("reset_after differs")
    a = sr.GRU(3, 5, seed=0)
    b = sr.GRU(3, 5, reset_after=False)
    b.load_state_dict(a.state_dict())
    x = randn(rng, 6, 2, 3)
    h0 = randn(rng, 1, 2, 5)
    ya, _ = a(x, h0)
    yb, _ = b(x, h0)
    assert np.max(np.abs(ya - yb)) > 1e-4


# ------------------------------------------------------------------------------------------------
# Residual stacks against single-layer torch modules


def _residual_pair(kind, cfg, seed):
    """A streamrnn residual model and the single-layer torch modules that make up its reference."""
    layers, weights = single_layer_modules(kind, cfg, seed)
    m = make_sr(kind, cfg, residual=True)
    m.load_state_dict(weights)
    return m, layers


def _residual_reference(kind, cfg, layers, x, state, lengths):
    bf, unbatched = cfg.get("batch_first", False), x.ndim == 2
    D = directions(cfg)
    if unbatched:
        x = x[:, None]
        state = None if state is None else (
            tuple(s[:, None] for s in state) if kind == "LSTM" else state[:, None])
    elif bf:
        x = x.transpose(1, 0, 2)
    T, B = x.shape[:2]
    valid = np.ones((T, B, 1), np.float32) if lengths is None else \
        (np.arange(T)[:, None] < np.asarray(lengths)[None, :])[..., None].astype(np.float32)
    inp, hs, cs = x, [], []
    for layer, mod in enumerate(layers):
        sl = slice(layer * D, (layer + 1) * D)
        st = None if state is None else (tuple(s[sl] for s in state) if kind == "LSTM" else state[sl])
        y, s = torch_forward(mod, inp, st, lengths)
        if y.shape[-1] == inp.shape[-1]:
            y = y + inp * valid
        hs.append(s[0] if kind == "LSTM" else s)
        if kind == "LSTM":
            cs.append(s[1])
        inp = y
    h = np.concatenate(hs, 0)
    s = (h, np.concatenate(cs, 0)) if kind == "LSTM" else h
    if unbatched:
        return inp[:, 0], (tuple(v[:, 0] for v in s) if kind == "LSTM" else s[:, 0])
    return (inp.transpose(1, 0, 2) if bf else inp), s


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", KINDS)
def test_residual_stack_matches_single_layer_torch_modules_with_skip_connections(kind, seed):
    rng = rng_for("residual", kind, seed)
    cfg = random_config(kind, rng)
    cfg.pop("dropout", None)
    cfg["num_layers"] = int(rng.integers(2, 4))
    if seed % 2 == 0:  # layer 0 residual too
        cfg["input_size"] = directions(cfg) * output_size(kind, cfg)
    m, layers = _residual_pair(kind, cfg, seed)
    assert m.residual is True
    T, B, with_state, lengths = _random_case(rng, cfg)
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if with_state else None
    y, s = m(x, state, lengths=lengths)
    y_ref, s_ref = _residual_reference(kind, cfg, layers, x, state, lengths)
    _assert_shapes(kind, y, s, _expected_shapes(kind, cfg, T, B))
    assert_close(y, y_ref, what=f"y for {cfg}")
    assert_close(s, s_ref, what=f"state for {cfg}")


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_residual_applies_to_layer_zero_only_when_its_sizes_match(kind, bidirectional):
    rng = rng_for("residual layer 0", kind, bidirectional)
    D = 2 if bidirectional else 1
    for input_size in (D * 4, D * 4 + 1):
        cfg = dict(input_size=input_size, hidden_size=4, num_layers=1, bidirectional=bidirectional)
        m, layers = _residual_pair(kind, cfg, 7)
        plain = make_sr(kind, cfg)
        plain.load_state_dict(m.state_dict())
        x = random_input(rng, cfg, 5, 2)
        y, _ = m(x)
        y_plain, _ = plain(x)
        if input_size == D * 4:
            assert_close(y, y_plain + x, what="residual layer 0")
        else:
            assert_close(y, y_plain, what="no residual when sizes differ")


@pytest.mark.parametrize("kind", KINDS)
def test_residual_padded_steps_are_zero(kind):
    rng = rng_for("residual padded", kind)
    cfg = dict(input_size=6, hidden_size=3, num_layers=2, bidirectional=True)
    m, layers = _residual_pair(kind, cfg, 2)
    x = random_input(rng, cfg, 7, 3)
    lengths = [2, 7, 0]
    y, s = m(x, lengths=lengths)
    assert np.all(y[2:, 0] == 0.0) and np.all(y[:, 2] == 0.0)
    y_ref, s_ref = _residual_reference(kind, cfg, layers, x, None, lengths)
    assert_close(y, y_ref)
    assert_close(s, s_ref)


@pytest.mark.parametrize("seed", range(4))
def test_residual_gru_without_reset_after_matches_the_numpy_reference(seed):
    rng = rng_for("residual cho", seed)
    cfg = dict(input_size=8 if seed % 2 == 0 else 3, hidden_size=4, num_layers=3,
               bidirectional=seed < 2, bias=seed != 1)
    if not cfg["bidirectional"]:
        cfg["input_size"] = 4 if seed % 2 == 0 else 3
    m = make_sr("GRU", cfg, residual=True, reset_after=False, seed=seed)
    x = random_input(rng, cfg, 9, 3)
    h0 = random_state(rng, "GRU", cfg, 3)
    lengths = np.array([9, 4, 1])
    y, h = m(x, h0, lengths=lengths)
    y_ref, h_ref = numpy_gru(x, m.state_dict(), num_layers=3, bidirectional=cfg["bidirectional"],
                             bias=cfg["bias"], reset_after=False, residual=True, h0=h0, lengths=lengths)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


# ------------------------------------------------------------------------------------------------
# Attributes


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_are_pytorchs(kind):
    m = getattr(sr, kind)(3, 4)
    assert (m.input_size, m.hidden_size, m.num_layers) == (3, 4, 1)
    assert m.bias is True and m.batch_first is False and m.bidirectional is False
    assert m.dropout == 0.0 and m.residual is False
    if kind == "LSTM":
        assert m.proj_size == 0
    if kind == "GRU":
        assert m.reset_after is True
    if kind == "RNN":
        assert m.nonlinearity == "tanh"


@pytest.mark.parametrize("kind", KINDS)
def test_constructor_arguments_are_exposed_as_attributes(kind):
    extra = {"LSTM": dict(proj_size=2), "GRU": dict(reset_after=False), "RNN": dict(nonlinearity="relu")}[kind]
    m = getattr(sr, kind)(5, 3, 2, bias=False, batch_first=True, dropout=0.25, bidirectional=True,
                          residual=True, seed=0, **extra)
    assert (m.input_size, m.hidden_size, m.num_layers) == (5, 3, 2)
    assert m.bias is False and m.batch_first is True and m.bidirectional is True and m.residual is True
    assert m.dropout == pytest.approx(0.25)
    for name, value in extra.items():
        assert getattr(m, name) == value


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers", "bias", "batch_first",
                                  "dropout", "bidirectional", "residual"])
@pytest.mark.parametrize("kind", KINDS)
def test_attributes_are_read_only(kind, name):
    m = getattr(sr, kind)(3, 4)
    before = getattr(m, name)
    with pytest.raises(AttributeError):
        setattr(m, name, before)
    assert getattr(m, name) == before


def test_from_torch_copies_the_architecture():
    cases = [
        torch.nn.LSTM(3, 6, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True, proj_size=4),
        torch.nn.GRU(4, 5, 3, batch_first=True, dropout=0.25),
        torch.nn.RNN(2, 3, 2, nonlinearity="relu", bidirectional=True),
        torch.nn.RNN(2, 3, nonlinearity="tanh", bias=False),
    ]
    for module in cases:
        m = sr.from_torch(module)
        assert type(m).__name__ == type(module).__name__
        for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional"):
            assert getattr(m, name) == getattr(module, name), name
        assert m.dropout == pytest.approx(module.dropout)
        assert m.residual is False
        if isinstance(module, torch.nn.LSTM):
            assert m.proj_size == module.proj_size
        if isinstance(module, torch.nn.GRU):
            assert m.reset_after is True
        if isinstance(module, torch.nn.RNN):
            assert m.nonlinearity == module.nonlinearity


# ------------------------------------------------------------------------------------------------
# Inputs in any form


def _model_and_data(kind, rng):
    cfg = dict(input_size=5, hidden_size=4, num_layers=2)
    m = make_sr(kind, cfg, seed=11)
    x = random_input(rng, cfg, 6, 3)
    state = random_state(rng, kind, cfg, 3)
    return m, x, state


def _as_form(a, form):
    if form == "list":
        return a.tolist()
    if form == "float64":
        return a.astype(np.float64)
    if form == "strided_view":  # every other element of a wider array
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        view = wide[..., ::2]
        assert not view.flags.c_contiguous
        return view
    if form == "batch_strided_view":
        wide = np.zeros((a.shape[0], 2 * a.shape[1]) + a.shape[2:], a.dtype)
        wide[:, ::2] = a
        return wide[:, ::2]
    if form == "fortran_order":
        f = np.asfortranarray(a)
        assert not f.flags.c_contiguous
        return f
    if form == "transposed":
        t = np.ascontiguousarray(np.swapaxes(a, 0, 1)).swapaxes(0, 1)
        assert not t.flags.c_contiguous
        return t
    if form == "torch":
        return torch.from_numpy(a.copy())
    if form == "torch_float64_noncontiguous":
        return torch.from_numpy(a.astype(np.float64)).transpose(0, 1).contiguous().transpose(0, 1)
    raise AssertionError(form)


FORMS = ["list", "float64", "strided_view", "batch_strided_view", "fortran_order", "transposed", "torch",
         "torch_float64_noncontiguous"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", KINDS)
def test_any_array_like_input_gives_the_same_result_as_its_float32_contiguous_copy(kind, form):
    rng = rng_for("forms", kind, form)
    m, x, state = _model_and_data(kind, rng)
    y_ref, s_ref = m(x, state)
    y, s = m(_as_form(x, form), state)
    assert_identical(y, y_ref, "y")
    assert_identical(s, s_ref, "state")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", KINDS)
def test_any_array_like_state_gives_the_same_result_as_its_float32_contiguous_copy(kind, form):
    rng = rng_for("state forms", kind, form)
    m, x, state = _model_and_data(kind, rng)
    y_ref, s_ref = m(x, state)
    st = tuple(_as_form(v, form) for v in state) if kind == "LSTM" else _as_form(state, form)
    y, s = m(x, st)
    assert_identical(y, y_ref, "y")
    assert_identical(s, s_ref, "state")


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_does_not_modify_its_inputs(kind):
    rng = rng_for("inputs untouched", kind)
    m, x, state = _model_and_data(kind, rng)
    x0, s0 = x.copy(), copy_state(state)
    m(x, state, lengths=np.array([6, 2, 4]))
    assert_identical(x, x0, "x")
    assert_identical(state, s0, "state")


@pytest.mark.parametrize("kind", KINDS)
def test_every_batch_row_equals_that_row_run_alone(kind):
    rng = rng_for("rows", kind)
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    m = make_sr(kind, cfg, seed=4)
    x = random_input(rng, cfg, 8, 4)
    y, _ = m(x)
    for b in range(4):
        yb, _ = m(x[:, b])
        assert_close(yb, y[:, b], what=f"row {b}")


# ------------------------------------------------------------------------------------------------
# Non-finite values


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_tanh"])
def test_nan_in_one_row_propagates_in_that_row_only_without_an_exception(kind):
    rng = rng_for("nan", kind)
    name = kind.split("_")[0]
    cfg = dict(input_size=3, hidden_size=4, num_layers=2)
    m = make_sr(name, cfg, seed=3)
    x = random_input(rng, cfg, 6, 3)
    clean_y, _ = m(x)
    x[2, 1, 0] = np.nan
    y, s = m(x)
    assert np.all(np.isnan(y[2:, 1])), "NaN must reach every later output of its row"
    assert np.all(np.isfinite(y[:2, 1])), "earlier steps stay finite"
    assert_close(y[:, [0, 2]], clean_y[:, [0, 2]], what="other rows")
    h = s[0] if name == "LSTM" else s
    assert np.all(np.isnan(h[:, 1]))
    assert np.all(np.isfinite(h[:, [0, 2]]))


@pytest.mark.parametrize("kind", KINDS)
def test_infinite_input_is_not_an_error(kind):
    m = getattr(sr, kind)(2, 3, seed=0)
    x = np.array([[[np.inf, -np.inf]], [[1.0, 2.0]]], np.float32)
    y, _ = m(x)
    assert y.shape == (2, 1, 3)
    assert y.dtype == np.float32


@pytest.mark.parametrize("threads", [2, 3, 8])
@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_split_across_threads_gives_the_single_thread_result(kind, threads):
    rng = rng_for("threads", kind, threads)
    cfg = dict(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, batch_first=True)
    m = make_sr(kind, cfg, seed=threads)
    x = random_input(rng, cfg, 9, 5)
    state = random_state(rng, kind, cfg, 5)
    lengths = np.array([9, 0, 4, 9, 1])
    expected = m(x, state, lengths=lengths)
    sr.set_num_threads(threads)
    try:
        assert sr.get_num_threads() == threads
        actual = m(x, state, lengths=lengths)
    finally:
        sr.set_num_threads(1)
    assert_close(actual[0], expected[0], what="y")
    assert_close(actual[1], expected[1], what="state")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_long_row_with_a_second_thread_projecting_ahead_gives_the_single_thread_result(kind, bidirectional):
    # T past two chunks of 192 steps, and not a multiple of them: the second thread projects the
    # inputs a chunk ahead of the scan (backwards for the reverse direction), identically.
    rng = rng_for("projecting-ahead", kind, bidirectional)
    cfg = dict(input_size=64, hidden_size=64, num_layers=2, bidirectional=bidirectional, batch_first=True)
    m = make_sr(kind, cfg, seed=3)
    x = random_input(rng, cfg, 450, 1)
    state = random_state(rng, kind, cfg, 1)
    expected = m(x, state)
    sr.set_num_threads(2)
    try:
        actual = m(x, state)
    finally:
        sr.set_num_threads(1)
    assert_identical(actual[0], expected[0], what="y")
    assert_identical(actual[1], expected[1], what="state")


def test_set_num_threads_refuses_fewer_than_one():
    with pytest.raises(ValueError, match="threads"):
        sr.set_num_threads(0)
    assert sr.get_num_threads() == 1
