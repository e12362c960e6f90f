# tests/test_training.py
# Training (BPTT): gradients against PyTorch autograd and references; dropout, accumulation, TBPTT, seq2seq, errors.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import streamrnn as sr
from conftest import (ATOL, GRAD_ATOL, KINDS, TORCH_CELL, assert_close, assert_float32, assert_identical,
                      assert_message_names, copy_state, directions, make_sr, make_torch, numpy_gru, output_size,
                      randn, random_state, rng_for, single_layer_modules, sr_gradients, to_numpy, zero_state)

CELL = {"LSTM": "LSTMCell", "GRU": "GRUCell", "RNN": "RNNCell"}


# ------------------------------------------------------------------------------------------------
# Running both sides: loss = sum(y * dy) + sum(h_n * dh) (+ sum(c_n * dc))


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _like(state, parts):
    """`parts` in the structure of `state`: a tuple for an LSTM, one array otherwise."""
    return tuple(parts) if isinstance(state, tuple) else parts[0]


def _leaf(a, dtype=torch.float32):
    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=True)


def _leaf_state(state, dtype=torch.float32):
    return _like(state, [_leaf(s, dtype) for s in _as_tuple(state)])


def _torch_run(module, x, state, lengths):
    """module(x, state) on tensors, through pack_padded_sequence / pad_packed_sequence when lengths."""
    if lengths is None:
        return module(x, state)
    bf = module.batch_first
    T = x.shape[1 if bf else 0]
    packed = pack_padded_sequence(x, torch.as_tensor(np.asarray(lengths), dtype=torch.int64), batch_first=bf,
                                  enforce_sorted=False)
    y_packed, s = module(packed, state)
    y, _ = pad_packed_sequence(y_packed, batch_first=bf, total_length=T)
    return y, s


def _torch_loss(y, state, dy, dstate):
    loss = (y * torch.as_tensor(dy, dtype=y.dtype)).sum()
    if dstate is not None:
        for s, d in zip(_as_tuple(state), _as_tuple(dstate)):
            loss = loss + (s * torch.as_tensor(d, dtype=s.dtype)).sum()
    return loss


def _grad(t):
    return np.zeros(tuple(t.shape), np.float64) if t.grad is None else to_numpy(t.grad).copy()


def _autograd(run, params: dict, x, state, dy, dstate, dtype=torch.float32):
    """y, state, dx, dstate0 and {name: gradient} of `run(x, state) -> (y, state)` by torch autograd.

    `params` maps our (state_dict) names to leaf tensors that `run` uses; `state` must be given
    (zeros for None: the gradient w.r.t. a zero initial state is still defined and returned).
    """
    for p in params.values():
        p.grad = None
    xt, st = _leaf(x, dtype), _leaf_state(state, dtype)
    y, s = run(xt, st)
    _torch_loss(y, s, dy, dstate).backward()
    return dict(y=to_numpy(y).copy(), state=copy_state(to_numpy(s)), dx=_grad(xt),
                dstate0=_like(state, [_grad(v) for v in _as_tuple(st)]),
                grads={k: _grad(p) for k, p in params.items()})


def _torch_gradients(module, x, state, dy, dstate=None, lengths=None):
    """Autograd through a torch RNN module (or cell) with `lengths` as packed sequences."""
    params = dict(module.named_parameters())
    if isinstance(module, torch.nn.RNNCellBase):
        return _autograd(lambda xt, st: (torch.zeros(()), module(xt, st)), params, x, state, 0.0, dstate)
    return _autograd(lambda xt, st: _torch_run(module, xt, st, lengths), params, x, state, dy, dstate)


def _assert_grads_close(grads, expected: dict, atol=GRAD_ATOL, what="grads"):
    assert sorted(grads) == sorted(expected), f"{what}: keys {sorted(grads)} != {sorted(expected)}"
    for k in expected:
        assert_close(grads[k], expected[k], atol, f"{what}[{k}]")


def _assert_same_gradients(ours, ref, what="", atol=GRAD_ATOL, values_atol=ATOL):
    """Forward values with the forward tolerance, every gradient with the gradient tolerance."""
    assert_close(ours["y"], ref["y"], values_atol, f"y {what}")
    assert_close(ours["state"], ref["state"], values_atol, f"state {what}")
    assert_close(ours["dx"], ref["dx"], atol, f"dx {what}")
    assert_close(ours["dstate0"], ref["dstate0"], atol, f"dstate0 {what}")
    _assert_grads_close(ours["grads"], ref["grads"], atol, f"grads {what}")


def _assert_identical_backward(m, dx, dstate0, expected):
    """dx, dstate0 and m's gradients are bit for bit those of `expected` (see sr_gradients)."""
    assert_identical(dx, expected["dx"], "dx")
    assert_identical(dstate0, expected["dstate0"], "dstate0")
    for k, g in m.grads().items():
        assert_identical(g, expected["grads"][k], f"grads[{k}]")


def _random_dstate(rng, kind, cfg, B):
    return random_state(rng, kind, cfg, B, scale=1.0)


def _time_major(a, cfg):
    return a.transpose(1, 0, 2) if cfg.get("batch_first", False) else a


# ------------------------------------------------------------------------------------------------
# Gradient parity with PyTorch autograd over random configurations


def _small_config(kind, rng) -> dict:
    hidden = int(rng.integers(1, 13))
    cfg = dict(input_size=int(rng.integers(1, 9)), hidden_size=hidden, num_layers=int(rng.integers(1, 4)),
               bias=bool(rng.random() < 0.75), batch_first=bool(rng.random() < 0.5),
               bidirectional=bool(rng.random() < 0.5))
    if kind == "LSTM" and hidden > 1 and rng.random() < 0.5:
        cfg["proj_size"] = int(rng.integers(1, hidden))
    if kind == "RNN":
        cfg["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    return cfg


def _small_case(rng):
    """T, B (None: unbatched), whether a state is given, lengths (>= 1, one row full), whether dstate."""
    T = int(rng.integers(1, 11))
    B = None if rng.random() < 0.15 else int(rng.integers(1, 5))
    lengths = None
    if B is not None and rng.random() < 0.5:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
    return T, B, bool(rng.random() < 0.5), lengths, bool(rng.random() < 0.7)


def _input(rng, cfg, T, B):
    I = cfg["input_size"]
    if B is None:
        return randn(rng, T, I)
    return randn(rng, B, T, I) if cfg.get("batch_first", False) else randn(rng, T, B, I)


def _output_shape(kind, cfg, T, B):
    Y = directions(cfg) * output_size(kind, cfg)
    if B is None:
        return (T, Y)
    return (B, T, Y) if cfg.get("batch_first", False) else (T, B, Y)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("kind", KINDS)
def test_layer_gradients_match_torch_autograd_on_a_random_configuration(kind, seed):
    rng = rng_for("bptt", kind, seed)
    cfg = _small_config(kind, rng)
    module = make_torch(kind, cfg, seed)
    m = sr.from_torch(module)
    T, B, with_state, lengths, with_dstate = _small_case(rng)
    x = _input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if with_state else None
    dy = randn(rng, *_output_shape(kind, cfg, T, B))
    dstate = _random_dstate(rng, kind, cfg, B) if with_dstate else None

    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    ref = _torch_gradients(module, x, state if with_state else zero_state(kind, cfg, B), dy, dstate, lengths)

    assert ours["dx"].shape == x.shape
    _assert_same_gradients(ours, ref, f"for {cfg}, T={T}, B={B}, lengths={lengths}, state={with_state}, "
                                      f"dstate={with_dstate}")


@pytest.mark.parametrize("kind", KINDS)
def test_longer_sequences_and_wider_layers_keep_gradients_within_tolerance(kind):
    # the tolerance is argued for T <= 12 and widths <= 12; check its largest case, bidirectional
    rng = rng_for("bptt long", kind)
    cfg = dict(input_size=8, hidden_size=12, num_layers=3, bidirectional=True, bias=True)
    if kind == "RNN":
        cfg["nonlinearity"] = "relu"
    module = make_torch(kind, cfg, 3)
    m = sr.from_torch(module)
    x, state = _input(rng, cfg, 12, 4), random_state(rng, kind, cfg, 4)
    dy, dstate = randn(rng, 12, 4, 24), _random_dstate(rng, kind, cfg, 4)
    lengths = np.array([12, 5, 9, 1])
    _assert_same_gradients(sr_gradients(m, x, state, dy, dstate, lengths),
                           _torch_gradients(module, x, state, dy, dstate, lengths))


@pytest.mark.parametrize("batch", [24, 40], ids=["products-split", "batch-split"])
@pytest.mark.parametrize("kind", KINDS)
def test_two_threads_give_the_training_forward_and_gradients_of_one(kind, batch):
    """24 rows: too few to split, so threads share the products over all steps (their columns),
    while one thread projects the inputs a chunk of steps at a time (layers this wide: 10 steps
    of an LSTM, 14 of a GRU); neither may change a bit. 40 rows: two parts of the batch, each on
    its own thread; the rows' outputs and input gradients are the same bits, and the weight
    gradients, summed over the parts, agree to rounding."""
    rng = rng_for("threads", kind, batch)
    hidden = 128 if batch == 24 else 40
    cfg = dict(input_size=33, hidden_size=hidden, num_layers=2, bidirectional=True, bias=True, batch_first=True)
    m = make_sr(kind, cfg, seed=4)
    x, dy = _input(rng, cfg, 30, batch), randn(rng, batch, 30, 2 * hidden)
    state = random_state(rng, kind, cfg, batch)
    dstate = _random_dstate(rng, kind, cfg, batch)
    lengths = rng.integers(0, 31, size=batch)
    results = []
    try:
        for threads in (1, 2):
            sr.set_num_threads(threads)
            m.zero_grad()
            y, s = m(x, copy_state(state), lengths=lengths, train=True)
            dx, ds = m.backward(dy, dstate)
            results.append((y, s, dx, ds, m.grads()))
    finally:
        sr.set_num_threads(1)
    (y1, s1, dx1, ds1, g1), (y2, s2, dx2, ds2, g2) = results
    assert_identical(y2, y1, what="y")
    assert_identical(s2, s1, what="state")
    assert_identical(dx2, dx1, what="dx")
    assert_identical(ds2, ds1, what="dstate")
    for name in g1:
        if batch == 24:
            assert_identical(g2[name], g1[name], what=name)
        else:
            # Summed in another order over 40 x 30 rows of gradients of order 10: float32 rounding
            # relative to the gradient's size (measured: at most 1.5e-6 of it).
            scale = max(1.0, float(np.abs(g1[name]).max()))
            assert_close(g2[name], g1[name], atol=1e-5 * scale, what=name)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_length_rows_pass_their_state_gradient_through_and_get_no_input_gradient(kind):
    rng = rng_for("bptt zero length", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    module = make_torch(kind, cfg, 5)
    m = sr.from_torch(module)
    x, state = _input(rng, cfg, 6, 4), random_state(rng, kind, cfg, 4)
    dy, dstate = randn(rng, 6, 4, 8), _random_dstate(rng, kind, cfg, 4)
    lengths = np.array([6, 0, 3, 0])
    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    assert np.all(ours["dx"][:, [1, 3]] == 0.0), "dx of a zero-length row must be zero"
    for got, given in zip(_as_tuple(ours["dstate0"]), _as_tuple(dstate)):
        assert_identical(got[:, [1, 3]], given[:, [1, 3]], "dstate0 of a zero-length row is its dstate")

    keep = [0, 2]  # the other rows: as torch computes them alone
    sub = lambda s: _like(s, [v[:, keep] for v in _as_tuple(s)])  # noqa: E731
    ref = _torch_gradients(module, x[:, keep], sub(state), dy[:, keep], sub(dstate), lengths[keep])
    assert_close(ours["dx"][:, keep], ref["dx"], GRAD_ATOL, "dx of the other rows")
    assert_close(sub(ours["dstate0"]), ref["dstate0"], GRAD_ATOL, "dstate0 of the other rows")
    _assert_grads_close(ours["grads"], ref["grads"])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_padded_steps_get_no_input_gradient_and_their_dy_is_ignored(kind, batch_first):
    rng = rng_for("bptt padding", kind, batch_first)
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=batch_first)
    m = make_sr(kind, cfg, seed=2)
    x = _input(rng, cfg, 7, 3)
    lengths = np.array([7, 2, 4])
    dy = randn(rng, *_output_shape(kind, cfg, 7, 3))
    a = sr_gradients(m, x, None, dy, None, lengths)
    padded = np.arange(7)[:, None] >= lengths[None, :]  # (T, B)
    if batch_first:
        padded = padded.T
    assert np.all(a["dx"][padded] == 0.0), "dx at padded steps must be zero"
    dy_changed = dy.copy()
    dy_changed[padded] = 1e3
    b = sr_gradients(m, x, None, dy_changed, None, lengths)
    assert_identical(b["dx"], a["dx"], "dx with other dy on padded steps")
    assert_identical(b["dstate0"], a["dstate0"], "dstate0 with other dy on padded steps")
    for k in a["grads"]:
        assert_identical(b["grads"][k], a["grads"][k], f"grads[{k}] with other dy on padded steps")


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_sequence_passes_the_state_gradient_through(kind):
    rng = rng_for("bptt T=0", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    m = make_sr(kind, cfg, seed=1)
    state, dstate = random_state(rng, kind, cfg, 2), _random_dstate(rng, kind, cfg, 2)
    m(np.zeros((0, 2, 3), np.float32), state, train=True)
    dx, dstate0 = m.backward(np.zeros((0, 2, 8), np.float32), dstate)
    assert dx.shape == (0, 2, 3) and dx.dtype == np.float32
    assert_identical(dstate0, copy_state(dstate), "dstate0")
    for k, g in m.grads().items():
        assert np.all(g == 0.0), k


# ------------------------------------------------------------------------------------------------
# Cells


def _torch_cell(kind, I, H, bias=True, nonlinearity="tanh", seed=0):
    torch.manual_seed(seed)
    if kind == "RNN":
        return torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity)
    return TORCH_CELL[kind](I, H, bias=bias)


def _cell_state(kind, rng, batch, H, scale=0.5):
    if kind == "LSTM":
        return (randn(rng, *batch, H, scale=scale), randn(rng, *batch, H, scale=scale))
    return randn(rng, *batch, H, scale=scale)


CELL_CASES = [
    pytest.param(kind, bias, nl, id=f"{kind}-{'bias' if bias else 'nobias'}" + (f"-{nl}" if kind == "RNN" else ""))
    for kind in KINDS for bias in (True, False) for nl in (("tanh", "relu") if kind == "RNN" else ("tanh",))
]


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("initial", ["state_none", "state_given"])
@pytest.mark.parametrize("kind,bias,nonlinearity", CELL_CASES)
def test_cell_gradients_match_torch_autograd(kind, bias, nonlinearity, initial, batched):
    rng = rng_for("cell bptt", kind, bias, nonlinearity, initial, batched)
    I, H = 5, 7
    tcell = _torch_cell(kind, I, H, bias, nonlinearity, seed=2)
    cell = sr.from_torch(tcell)
    batch = (3,) if batched else ()
    x = randn(rng, *batch, I)
    state = _cell_state(kind, rng, batch, H) if initial == "state_given" else None
    dstate = _cell_state(kind, rng, batch, H, scale=1.0)

    out = cell(x, state, train=True)
    dx, dstate0 = cell.backward(dstate)
    ref = _torch_gradients(tcell, x, state if state is not None else _cell_state(kind, rng, batch, H, 0.0),
                           None, dstate)
    assert_float32(out, dx, dstate0)
    assert_close(out, ref["state"], what="new state")
    assert dx.shape == x.shape
    assert_close(dx, ref["dx"], GRAD_ATOL, "dx")
    assert_close(dstate0, ref["dstate0"], GRAD_ATOL, "dstate0")
    _assert_grads_close(cell.grads(), ref["grads"])


@pytest.mark.parametrize("kind", KINDS)
def test_cell_gradients_add_up_over_steps_as_torch_with_the_state_detached(kind):
    rng = rng_for("cell steps", kind)
    tcell = _torch_cell(kind, 4, 6, seed=3)
    cell = sr.from_torch(tcell)
    state, ref_state = None, _cell_state(kind, rng, (2,), 6, 0.0)
    ref_grads = None
    for step in range(4):
        x, dstate = randn(rng, 2, 4), _cell_state(kind, rng, (2,), 6, scale=1.0)
        state = cell(x, state, train=True)
        dx, _ = cell.backward(dstate)
        ref = _torch_gradients(tcell, x, ref_state, None, dstate)
        ref_grads = ref["grads"] if ref_grads is None else {k: v + ref["grads"][k] for k, v in ref_grads.items()}
        ref_state = ref["state"]
        assert_close(state, ref_state, what=f"state at step {step}")
        assert_close(dx, ref["dx"], GRAD_ATOL, f"dx at step {step}")
    _assert_grads_close(cell.grads(), ref_grads)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_backward_with_dstate_none_gives_zero_gradients(kind):
    rng = rng_for("cell dstate none", kind)
    cell = getattr(sr, CELL[kind])(3, 4, seed=1)
    x = randn(rng, 2, 3)
    cell(x, _cell_state(kind, rng, (2,), 4), train=True)
    dx, dstate0 = cell.backward(None)
    assert dx.shape == (2, 3) and np.all(dx == 0.0)
    for v in _as_tuple(dstate0):
        assert v.shape == (2, 4) and np.all(v == 0.0)
    for k, g in cell.grads().items():
        assert np.all(g == 0.0), k


# ------------------------------------------------------------------------------------------------
# GRU with reset_after=False (Cho et al.): a float64 torch reference, checked, then the engine


def _torch_gru(x, w: dict, *, num_layers, bidirectional, bias, reset_after, residual=False, h0=None, lengths=None):
    """A GRU from torch operations (autograd, any dtype): time-major x (T, B, I) -> (y, h_n).

    reset_after=False is Cho et al. (2014): n = tanh(W_in x + b_in + W_hn (r * h) + b_hn);
    reset_after=True is PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). Gate order r, z, n
    and weight names are PyTorch's. Steps at or past a row's length leave its state alone and give
    zeros, as packed sequences; residual adds a layer's input (valid steps) when the widths match.
    """
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = w["weight_hh_l0"].shape[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    valid = torch.tensor((np.arange(T)[:, None] < lengths[None, :])[..., None], dtype=x.dtype)
    h_n, inp = [], x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = w["weight_ih" + sfx], w["weight_hh" + sfx]
            zero = torch.zeros(3 * H, dtype=x.dtype)
            b_ih, b_hh = (w["bias_ih" + sfx], w["bias_hh" + sfx]) if bias else (zero, zero)
            h = torch.zeros(B, H, dtype=x.dtype) if h0 is None else h0[layer * D + d]
            ys = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                gi = inp[t] @ w_ih.T + b_ih
                r = torch.sigmoid(gi[:, :H] + h @ w_hh[:H].T + b_hh[:H])
                z = torch.sigmoid(gi[:, H:2 * H] + h @ w_hh[H:2 * H].T + b_hh[H:2 * H])
                if reset_after:
                    n = torch.tanh(gi[:, 2 * H:] + r * (h @ w_hh[2 * H:].T + b_hh[2 * H:]))
                else:
                    n = torch.tanh(gi[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
                h_new = (1 - z) * n + z * h
                h = valid[t] * h_new + (1 - valid[t]) * h
                ys[t] = valid[t] * h_new
            h_n.append(h)
            outs.append(torch.stack(ys))
        out = torch.cat(outs, -1)
        if residual and out.shape[-1] == inp.shape[-1]:
            out = out + valid * inp
        inp = out
    return inp, torch.stack(h_n)


def _gru_reference_gradients(cfg, weights, x, h0, dy, dstate, lengths, reset_after, residual=False,
                             dtype=torch.float64):
    """Autograd through _torch_gru; x, dy in the model's layout (batched), h0 never None."""
    params = {k: _leaf(v, dtype) for k, v in weights.items()}
    bf = cfg.get("batch_first", False)

    def run(xt, st):
        y, h = _torch_gru(xt.transpose(0, 1) if bf else xt, params, num_layers=cfg["num_layers"],
                          bidirectional=cfg.get("bidirectional", False), bias=cfg.get("bias", True),
                          reset_after=reset_after, residual=residual, h0=st, lengths=lengths)
        return (y.transpose(0, 1) if bf else y), h

    return _autograd(run, params, x, h0, dy, dstate, dtype)


@pytest.mark.parametrize("seed", range(3))
def test_the_torch_gru_reference_has_torchs_values_and_gradients_when_reset_after(seed):
    rng = rng_for("gru reference", seed)
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=seed != 1, bias=seed != 2,
               batch_first=seed == 2)
    module = make_torch("GRU", cfg, seed).double()
    x, h0 = _input(rng, cfg, 6, 3), random_state(rng, "GRU", cfg, 3)
    dy, dh = randn(rng, *_output_shape("GRU", cfg, 6, 3)), _random_dstate(rng, "GRU", cfg, 3)
    lengths = np.array([6, 2, 4])
    weights = {k: to_numpy(v) for k, v in module.state_dict().items()}
    ours = _gru_reference_gradients(cfg, weights, x, h0, dy, dh, lengths, reset_after=True)
    ref = _autograd(lambda xt, st: _torch_run(module, xt, st, lengths), dict(module.named_parameters()),
                    x, h0, dy, dh, torch.float64)
    # both float64: they agree to float64 rounding, so 1e-10 is already loose
    _assert_same_gradients(ours, ref, "reference vs torch.nn.GRU", atol=1e-10, values_atol=1e-10)


def test_the_cho_gru_reference_agrees_with_the_numpy_reference_and_with_finite_differences():
    rng = rng_for("cho reference check")
    cfg = dict(input_size=2, hidden_size=2, num_layers=2, bidirectional=True)
    weights = {k: v.astype(np.float64) for k, v in make_sr("GRU", cfg, seed=3, reset_after=False).state_dict().items()}
    x = rng.standard_normal((3, 2, 2))
    h0 = 0.5 * rng.standard_normal((4, 2, 2))
    lengths = np.array([3, 1])
    kw = dict(num_layers=2, bidirectional=True, bias=True, reset_after=False, residual=True, lengths=lengths)

    with torch.no_grad():
        y, h = _torch_gru(torch.tensor(x), {k: torch.tensor(v) for k, v in weights.items()}, h0=torch.tensor(h0), **kw)
    y_np, h_np = numpy_gru(x, weights, h0=h0, **kw)
    assert_close(y, y_np, 1e-12, "y vs the NumPy GRU")
    assert_close(h, h_np, 1e-12, "h_n vs the NumPy GRU")

    names = list(weights)

    def f(xt, ht, *ws):
        return _torch_gru(xt, dict(zip(names, ws)), h0=ht, **kw)

    inputs = [torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)] + \
             [torch.tensor(weights[k], requires_grad=True) for k in names]
    # float64 central differences against the reference's autograd Jacobian, every entry
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("seed", range(10))
def test_gru_without_reset_after_has_the_cho_equations_gradients(seed):
    rng = rng_for("cho bptt", seed)
    cfg = _small_config("GRU", rng)
    residual = seed % 3 == 0
    if residual and seed % 2 == 0:  # layer 0 residual as well
        cfg["input_size"] = directions(cfg) * cfg["hidden_size"]
    m = make_sr("GRU", cfg, reset_after=False, residual=residual, seed=seed)
    T, B, with_state, lengths, with_dstate = _small_case(rng)
    B = B or 2  # the reference is batched
    x = _input(rng, cfg, T, B)
    h0 = random_state(rng, "GRU", cfg, B) if with_state else None
    dy = randn(rng, *_output_shape("GRU", cfg, T, B))
    dh = _random_dstate(rng, "GRU", cfg, B) if with_dstate else None

    ours = sr_gradients(m, x, h0, dy, dh, lengths)
    ref = _gru_reference_gradients(cfg, m.state_dict(), x, h0 if with_state else zero_state("GRU", cfg, B), dy, dh,
                                   lengths, reset_after=False, residual=residual)
    _assert_same_gradients(ours, ref, f"for {cfg}, residual={residual}, T={T}, lengths={lengths}")


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_without_reset_after_has_the_cho_equations_gradients(bias, batched):
    rng = rng_for("cho cell bptt", bias, batched)
    cell = sr.GRUCell(4, 5, bias, reset_after=False, seed=4)
    batch = (3,) if batched else ()
    x, h, dh = randn(rng, *batch, 4), randn(rng, *batch, 5, scale=0.5), randn(rng, *batch, 5)
    h_new = cell(x, h, train=True)
    dx, dh0 = cell.backward(dh)
    w = {k + "_l0": v for k, v in cell.state_dict().items()}
    cfg = dict(num_layers=1, bias=bias)
    ref = _gru_reference_gradients(cfg, w, np.atleast_2d(x)[None], np.atleast_2d(h)[None], 0.0,
                                   np.atleast_2d(dh)[None], None, reset_after=False)
    assert_close(h_new, ref["state"][0] if batched else ref["state"][0, 0], what="new state")
    assert_close(dx, ref["dx"][0] if batched else ref["dx"][0, 0], GRAD_ATOL, "dx")
    assert_close(dh0, ref["dstate0"][0] if batched else ref["dstate0"][0, 0], GRAD_ATOL, "dstate0")
    _assert_grads_close({k + "_l0": v for k, v in cell.grads().items()}, ref["grads"])


# ------------------------------------------------------------------------------------------------
# Stacks composed from single-layer torch modules: residual connections and dropout masks




def _stack_gradients(kind, cfg, layers, x, state, dy, dstate, lengths, residual=False, masks=None):
    """Autograd through the stack: layer l's output, plus its input where residual and the widths
    match (valid steps only), times masks[l] (the dropout mask, scale included) below the top."""
    D = directions(cfg)
    bf = cfg.get("batch_first", False)
    T, B = (x.shape[1], x.shape[0]) if bf else x.shape[:2]
    valid = torch.ones(T, B, 1) if lengths is None else \
        torch.tensor((np.arange(T)[:, None] < np.asarray(lengths)[None, :])[..., None], dtype=torch.float32)
    params = {}
    for layer, mod in enumerate(layers):
        for name, p in mod.named_parameters():
            params[name.replace("_l0", f"_l{layer}")] = p

    def run(xt, st):
        inp = xt.transpose(0, 1) if bf else xt
        hs, cs = [], []
        for layer, mod in enumerate(layers):
            sl = slice(layer * D, (layer + 1) * D)
            s_in = tuple(s[sl] for s in st) if kind == "LSTM" else st[sl]
            y, s = _torch_run(mod, inp, s_in, lengths)
            if residual and y.shape[-1] == inp.shape[-1]:
                y = y + valid * inp
            if masks is not None and layer + 1 < len(layers):
                y = y * torch.as_tensor(masks[layer])
            hs.append(s[0] if kind == "LSTM" else s)
            if kind == "LSTM":
                cs.append(s[1])
            inp = y
        h = torch.cat(hs)
        return (inp.transpose(0, 1) if bf else inp), ((h, torch.cat(cs)) if kind == "LSTM" else h)

    return _autograd(run, params, x, state, dy, dstate)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", KINDS)
def test_residual_stack_gradients_match_single_layer_torch_modules_with_skip_connections(kind, seed):
    rng = rng_for("residual bptt", kind, seed)
    cfg = _small_config(kind, rng)
    cfg["num_layers"] = int(rng.integers(2, 4))
    cfg["bidirectional"] = cfg["bidirectional"] or seed < 2
    if seed % 2 == 0:  # layer 0 residual too
        cfg["input_size"] = directions(cfg) * output_size(kind, cfg)
    layers, weights = single_layer_modules(kind, cfg, seed)
    m = make_sr(kind, cfg, residual=True)
    m.load_state_dict(weights)
    T, B = int(rng.integers(2, 9)), int(rng.integers(2, 5))
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    x = _input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if seed % 3 else None
    dy = randn(rng, *_output_shape(kind, cfg, T, B))
    dstate = _random_dstate(rng, kind, cfg, B)

    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    ref = _stack_gradients(kind, cfg, layers, x, state if state is not None else zero_state(kind, cfg, B), dy,
                           dstate, lengths, residual=True)
    _assert_same_gradients(ours, ref, f"for {cfg}, lengths={lengths}")
    y, dx = _time_major(ours["y"], cfg), _time_major(ours["dx"], cfg)
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0.0), "padded outputs stay zero"
        assert np.all(dx[n:, b] == 0.0), "padded inputs get no gradient"


def _mask_probe_weights(kind, cfg):
    """Weights with which a two-layer model's output shows its dropout mask.

    Layer 0 has zero weights and biases that make its output a nonzero constant. Layer 1 copies
    input column k = d * H_out + j to output column k through the candidate unit j of direction d
    (LSTM g, GRU n, RNN h), with every gate saturated open or shut by a bias of +-30 and no
    recurrence, so y[..., k] is zero (up to sigmoid(-30) ~ 1e-13) exactly where column k was
    dropped and about 0.5 or more where it was kept.
    """
    D, H, P = directions(cfg), cfg["hidden_size"], output_size(kind, cfg)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind] * H
    cand = {"LSTM": 2 * H, "GRU": 2 * H, "RNN": 0}[kind]
    w = {}
    for layer in (0, 1):
        I = cfg["input_size"] if layer == 0 else D * P
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, b_ih = np.zeros((G, I), np.float32), np.zeros(G, np.float32)
            if kind == "LSTM":
                b_ih[:H], b_ih[H:2 * H], b_ih[3 * H:] = 30.0, -30.0, 30.0  # i open, f shut, o open
            if kind == "GRU":
                b_ih[H:2 * H] = -30.0  # z shut: h = n
            if layer == 0:
                b_ih[cand:cand + H] = 1.0
            else:
                for j in range(P):
                    w_ih[cand + j, d * P + j] = 1.0
            w["weight_ih" + sfx] = w_ih
            w["weight_hh" + sfx] = np.zeros((G, P), np.float32)
            w["bias_ih" + sfx] = b_ih
            w["bias_hh" + sfx] = np.zeros(G, np.float32)
            if P != H:
                w["weight_hr" + sfx] = np.eye(P, H, dtype=np.float32)
    return w


def _read_mask(kind, cfg, seed, x, lengths, p):
    """The dropout mask (time-major, scale 1/(1-p) included) that a fresh model built with `seed`
    draws on its first training forward of x's shape: read from a same-seed twin's output."""
    probe = make_sr(kind, cfg, seed=seed)
    probe.load_state_dict(_mask_probe_weights(kind, cfg))
    y, _ = probe(x, lengths=lengths, train=True)
    y = _time_major(y, cfg)
    kept = np.abs(y) > 1e-3
    assert np.all((np.abs(y) < 1e-9) | (np.abs(y) > 0.3)), "the probe's output is not two-valued"
    return (kept / np.float32(1.0 - p)).astype(np.float32)


DROPOUT_CASES = [
    pytest.param("LSTM", dict(), id="LSTM"),
    pytest.param("LSTM", dict(proj_size=3, bidirectional=True), id="LSTM-proj-bidirectional"),
    pytest.param("GRU", dict(), id="GRU"),
    pytest.param("GRU", dict(bidirectional=True, batch_first=True), id="GRU-bidirectional-batch_first"),
    pytest.param("RNN", dict(nonlinearity="tanh", bidirectional=True), id="RNN-tanh-bidirectional"),
    pytest.param("RNN", dict(nonlinearity="relu", residual=True), id="RNN-relu-residual"),
    pytest.param("GRU", dict(residual=True, bidirectional=True), id="GRU-residual-bidirectional"),
]


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("kind,opts", DROPOUT_CASES)
def test_dropout_gradients_match_torch_applying_the_same_masks(kind, opts, with_lengths):
    rng = rng_for("dropout bptt", kind, repr(opts), with_lengths)
    p, seed = 0.4, 17
    opts = dict(opts)
    residual = opts.pop("residual", False)
    cfg = dict(input_size=4, hidden_size=5, num_layers=2, dropout=p, **opts)
    T, B = 8, 4
    x = _input(rng, cfg, T, B)
    lengths = np.array([8, 3, 6, 1]) if with_lengths else None
    mask = _read_mask(kind, dict(cfg, residual=residual), seed, x, lengths, p)
    dropped = 1.0 - np.count_nonzero(mask) / mask.size
    if not with_lengths:
        assert abs(dropped - p) < 0.1, f"fraction dropped {dropped:.3f}, expected about {p}"

    layers, weights = single_layer_modules(kind, dict(cfg, batch_first=False), 5)
    m = make_sr(kind, cfg, residual=residual, seed=seed)
    m.load_state_dict(weights)
    state = random_state(rng, kind, cfg, B)
    dy, dstate = randn(rng, *_output_shape(kind, cfg, T, B)), _random_dstate(rng, kind, cfg, B)
    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    ref = _stack_gradients(kind, cfg, layers, x, state, dy, dstate, lengths, residual=residual, masks=[mask])
    _assert_same_gradients(ours, ref, f"with dropout {p}")


def test_the_dropout_mask_reader_sees_no_mask_without_dropout():
    rng = rng_for("mask reader")
    for kind, opts in [("LSTM", dict(proj_size=2, bidirectional=True)), ("GRU", {}), ("RNN", {})]:
        cfg = dict(input_size=3, hidden_size=4, num_layers=2, dropout=0.0, **opts)
        mask = _read_mask(kind, cfg, 1, _input(rng, cfg, 5, 2), None, 0.0)
        assert np.all(mask == 1.0), f"{kind}: the probe must see every column when nothing is dropped"


def _loss_value(m, x, state, dy, dstate):
    y, s = m(x, state, train=True)
    total = float(np.sum(y.astype(np.float64) * dy))
    for v, d in zip(_as_tuple(s), _as_tuple(dstate)):
        total += float(np.sum(v.astype(np.float64) * d))
    return total


@pytest.mark.parametrize("kind", KINDS)
def test_three_layer_dropout_gradients_agree_with_central_differences_of_same_seed_twins(kind):
    # Every fresh model built with the same seed draws the same masks on its first training
    # forward, so such twins evaluate one fixed function of (x, state, weights): its derivatives
    # along unit directions, by central differences, must equal those that the gradients give.
    rng = rng_for("dropout fd", kind)
    p, seed = 0.3, 23
    cfg = dict(input_size=3, hidden_size=5, num_layers=3, dropout=p, bidirectional=kind == "GRU")
    weights = make_sr(kind, cfg, seed=0).state_dict()
    x, state = _input(rng, cfg, 6, 2), random_state(rng, kind, cfg, 2)
    dy, dstate = randn(rng, *_output_shape(kind, cfg, 6, 2)), _random_dstate(rng, kind, cfg, 2)

    def twin(w, twin_seed=seed):
        m = make_sr(kind, cfg, seed=twin_seed)
        m.load_state_dict(w)
        return m

    def gradients(twin_seed):
        m = twin(weights, twin_seed)
        m(x, state, train=True)
        dx, dstate0 = m.backward(dy, dstate)
        return [dx, *_as_tuple(dstate0)], m.grads()

    ours, other = gradients(seed), gradients(seed + 1)  # other: another seed, other masks
    eps, worst_other = 0.03, 0.0
    for trial in range(4):
        v = [randn(rng, *a.shape) for a in (x, *_as_tuple(state))]
        vw = {k: randn(rng, *w.shape) for k, w in weights.items()}
        norm = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in [*v, *vw.values()]))
        v, vw = [a / norm for a in v], {k: a / norm for k, a in vw.items()}

        def loss(sign):
            xs = [a + sign * eps * d for a, d in zip((x, *_as_tuple(state)), v)]
            return _loss_value(twin({k: weights[k] + sign * eps * vw[k] for k in weights}), xs[0],
                               _like(state, xs[1:]), dy, dstate)

        fd = (loss(1) - loss(-1)) / (2 * eps)
        along = lambda g: (sum(float(np.sum(a.astype(np.float64) * d)) for a, d in zip(g[0], v)) +  # noqa: E731
                           sum(float(np.sum(g[1][k].astype(np.float64) * vw[k])) for k in weights))
        analytic = along(ours)
        # measured: |fd - analytic| <= 2e-5 + 1e-4 |analytic| (float32 loss rounding over 2 eps,
        # and the eps^2 term); gradients with another seed's masks are off by 3e-3 to 2
        tol = 1e-4 + 3e-4 * abs(analytic)
        assert abs(fd - analytic) <= tol, f"direction {trial}: central difference {fd:.6g} != gradient {analytic:.6g}"
        worst_other = max(worst_other, abs(fd - along(other)) / tol)
    assert worst_other > 10, "the check cannot tell one seed's masks from another's"


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_zero_in_training_gives_torchs_gradients(kind):
    rng = rng_for("dropout zero", kind)
    cfg = dict(input_size=3, hidden_size=5, num_layers=3, dropout=0.0)
    module = make_torch(kind, cfg, 1)
    m = sr.from_torch(module)
    x, state = _input(rng, cfg, 7, 3), random_state(rng, kind, cfg, 3)
    dy, dstate = randn(rng, 7, 3, 5), _random_dstate(rng, kind, cfg, 3)
    _assert_same_gradients(sr_gradients(m, x, state, dy, dstate), _torch_gradients(module, x, state, dy, dstate))


@pytest.mark.parametrize("kind", KINDS)
def test_two_backward_calls_on_one_dropout_record_reuse_its_masks(kind):
    rng = rng_for("dropout twice", kind)
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, dropout=0.5)
    m = make_sr(kind, cfg, seed=8)
    x, dy = _input(rng, cfg, 6, 3), randn(rng, 6, 3, 5)
    dstate = _random_dstate(rng, kind, cfg, 3)
    m(x, train=True)
    dx1, ds1 = m.backward(dy, dstate)
    g1 = m.grads()
    dx2, ds2 = m.backward(dy, dstate)
    assert_identical(dx2, dx1, "dx of the second backward")
    assert_identical(ds2, ds1, "dstate0 of the second backward")
    for k, g in m.grads().items():
        assert_close(g, 2 * g1[k], GRAD_ATOL, f"grads[{k}] after two backward calls")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_acts_in_training_only(kind):
    rng = rng_for("dropout inference", kind)
    cfg = dict(input_size=3, hidden_size=6, num_layers=3, dropout=0.5)
    module = make_torch(kind, cfg, 2)
    m = sr.from_torch(module)
    x = _input(rng, cfg, 6, 3)
    y_ref, _ = _torch_forward_eval(module, x)
    y_train, _ = m(x, train=True)
    y_eval, _ = m(x)
    assert_close(y_eval, y_ref, what="inference after a training forward")
    assert np.max(np.abs(y_train - y_eval)) > 1e-3, "dropout must change a training forward"


def _torch_forward_eval(module, x):
    with torch.no_grad():
        y, s = module(torch.from_numpy(x))
    return to_numpy(y), to_numpy(s)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_one_passes_nothing_to_upper_layers(kind):
    rng = rng_for("dropout one", kind)
    cfg = dict(input_size=3, hidden_size=4, num_layers=3, dropout=1.0)
    m = make_sr(kind, cfg, seed=9)
    x, state = _input(rng, cfg, 5, 2), random_state(rng, kind, cfg, 2)
    dy = randn(rng, 5, 2, 4)
    ours = sr_gradients(m, x, state, dy, None)

    # the top layer alone, on zero input, from its initial state
    top = make_sr(kind, dict(cfg, num_layers=1, input_size=4, dropout=0.0))
    top.load_state_dict({k.replace("_l2", "_l0"): v for k, v in m.state_dict().items() if "_l2" in k})
    top_state = _like(state, [s[2:] for s in _as_tuple(state)])
    alone = sr_gradients(top, np.zeros((5, 2, 4), np.float32), top_state, dy, None)
    assert_close(ours["y"], alone["y"], what="y")
    assert np.all(ours["dx"] == 0.0), "nothing reaches x through dropped outputs"
    for k, g in ours["grads"].items():
        if "_l2" in k:
            assert_close(g, alone["grads"][k.replace("_l2", "_l0")], GRAD_ATOL, f"grads[{k}]")
        else:
            assert np.all(g == 0.0), f"grads[{k}] of a layer whose output is dropped must be zero"
    for got, want in zip(_as_tuple(ours["dstate0"]), _as_tuple(alone["dstate0"])):
        assert np.all(got[:2] == 0.0), "dstate0 of the lower layers must be zero"
        assert_close(got[2:], want, GRAD_ATOL, "dstate0 of the top layer")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_is_reproducible_from_the_seed_and_differs_between_seeds(kind):
    rng = rng_for("dropout seeds", kind)
    cfg = dict(input_size=3, hidden_size=6, num_layers=3, dropout=0.3)
    x = _input(rng, cfg, 6, 3)
    a, b, c = make_sr(kind, cfg, seed=5), make_sr(kind, cfg, seed=5), make_sr(kind, cfg, seed=6)
    c.load_state_dict(a.state_dict())
    ya, _ = a(x, train=True)
    yb, _ = b(x, train=True)
    yc, _ = c(x, train=True)
    assert_identical(yb, ya, "y of a same-seed model")
    assert np.max(np.abs(yc - ya)) > 1e-3, "another seed must draw other masks"
    ya2, _ = a(x, train=True)
    assert np.max(np.abs(ya2 - ya)) > 1e-3, "each training forward must draw new masks"


# ------------------------------------------------------------------------------------------------
# Accumulation and the record


def _trained(kind, rng, cfg=None):
    cfg = cfg or dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    m = make_sr(kind, cfg, seed=12)
    x, state = _input(rng, cfg, 6, 3), random_state(rng, kind, cfg, 3)
    dy, dstate = randn(rng, *_output_shape(kind, cfg, 6, 3)), _random_dstate(rng, kind, cfg, 3)
    return m, cfg, x, state, dy, dstate


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_are_zero_before_the_first_backward_and_shaped_like_the_weights(kind):
    m = make_sr(kind, dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                           **({"proj_size": 2} if kind == "LSTM" else {})), seed=0)
    weights, grads = m.state_dict(), m.grads()
    assert list(grads) == list(weights)
    for k in weights:
        assert grads[k].shape == weights[k].shape and grads[k].dtype == np.float32, k
        assert np.all(grads[k] == 0.0), k


@pytest.mark.parametrize("kind", KINDS)
def test_backward_twice_doubles_the_gradients_and_zero_grad_zeroes_them(kind):
    rng = rng_for("accumulate", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    m(x, state, train=True)
    dx1, ds1 = m.backward(dy, dstate)
    once = m.grads()
    assert any(np.any(g != 0.0) for g in once.values())
    dx2, ds2 = m.backward(dy, dstate)
    assert_identical(dx2, dx1, "dx of the second backward")
    assert_identical(ds2, ds1, "dstate0 of the second backward")
    for k, g in m.grads().items():
        assert_close(g, 2 * once[k], GRAD_ATOL, f"grads[{k}] after two backward calls")
    m.zero_grad()
    for k, g in m.grads().items():
        assert np.all(g == 0.0), f"grads[{k}] after zero_grad"
    m.backward(dy, dstate)  # the record survives zero_grad
    for k, g in m.grads().items():
        assert_identical(g, once[k], f"grads[{k}] after zero_grad and one backward")


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_of_two_batches_add_up(kind):
    rng = rng_for("two batches", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    x2, dy2 = randn(rng, *x.shape), randn(rng, *dy.shape)
    g1 = sr_gradients(m, x, state, dy, dstate)["grads"]
    g2 = sr_gradients(m, x2, None, dy2, None)["grads"]
    m.zero_grad()
    m(x, state, train=True)
    m.backward(dy, dstate)
    m(x2, train=True)
    m.backward(dy2)
    for k, g in m.grads().items():
        assert_close(g, g1[k] + g2[k], GRAD_ATOL, f"grads[{k}]")


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_training_forward_replaces_the_record(kind):
    rng = rng_for("record replaced", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    x2 = _input(rng, cfg, 4, 2)  # another shape
    dy2 = randn(rng, *_output_shape(kind, cfg, 4, 2))
    expected = sr_gradients(make_sr(kind, cfg, seed=12), x2, None, dy2)
    m(x, state, train=True)
    m(x2, train=True)
    with pytest.raises(ValueError):
        m.backward(dy)  # the first forward's shape no longer fits
    dx, ds0 = m.backward(dy2)
    _assert_identical_backward(m, dx, ds0, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_an_inference_call_keeps_the_training_record(kind):
    rng = rng_for("record kept", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    expected = sr_gradients(m, x, state, dy, dstate)
    m.zero_grad()
    m(x, state, train=True)
    m(_input(rng, cfg, 3, 1))  # inference in between, another shape
    dx, ds0 = m.backward(dy, dstate)
    _assert_identical_backward(m, dx, ds0, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_accepts_any_array_like_and_leaves_its_arguments_alone(kind):
    rng = rng_for("backward forms", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    ref = sr_gradients(m, x, state, dy, dstate)
    dy0, dstate_copy = dy.copy(), copy_state(dstate)
    for form, (dy_form, ds_form) in {
        "float64": (dy.astype(np.float64), _like(dstate, [v.astype(np.float64) for v in _as_tuple(dstate)])),
        "fortran_order": (np.asfortranarray(dy), _like(dstate, [np.asfortranarray(v) for v in _as_tuple(dstate)])),
        "torch": (torch.from_numpy(dy.copy()), _like(dstate, [torch.from_numpy(v.copy()) for v in _as_tuple(dstate)])),
        "list": (dy.tolist(), _like(dstate, [v.tolist() for v in _as_tuple(dstate)])),
    }.items():
        m.zero_grad()
        dx, ds0 = m.backward(dy_form, ds_form)
        assert_identical(dx, ref["dx"], f"dx from {form}")
        assert_identical(ds0, ref["dstate0"], f"dstate0 from {form}")
        for k, g in m.grads().items():
            assert_identical(g, ref["grads"][k], f"grads[{k}] from {form}")
    assert_identical(dy, dy0, "dy")
    assert_identical(dstate, dstate_copy, "dstate")


def test_grads_returns_copies():
    rng = rng_for("grads copies")
    m, cfg, x, state, dy, dstate = _trained("GRU", rng)
    g = sr_gradients(m, x, state, dy, dstate)["grads"]
    kept = {k: v.copy() for k, v in g.items()}
    for v in g.values():
        v[...] = 7.0
    for k, v in m.grads().items():
        assert_identical(v, kept[k], f"grads[{k}]")


# ------------------------------------------------------------------------------------------------
# Truncated BPTT and seq2seq


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_truncated_bptt_over_chunks_equals_torch_with_the_state_detached(kind, batch_first):
    rng = rng_for("tbptt", kind, batch_first)
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, batch_first=batch_first)
    module = make_torch(kind, cfg, 4)
    m = sr.from_torch(module)
    B, sizes = 3, (4, 1, 5)
    state = ref_state = random_state(rng, kind, cfg, B)
    ref_grads = None
    for k, T in enumerate(sizes):
        x, dy = _input(rng, cfg, T, B), randn(rng, *_output_shape(kind, cfg, T, B))
        dstate = _random_dstate(rng, kind, cfg, B) if k == len(sizes) - 1 else None
        y, state_next = m(x, state, train=True)
        dx, dstate0 = m.backward(dy, dstate)
        ref = _torch_gradients(module, x, ref_state, dy, dstate)  # a fresh leaf: the state is detached
        ref_grads = ref["grads"] if ref_grads is None else {n: g + ref["grads"][n] for n, g in ref_grads.items()}
        assert_close(y, ref["y"], what=f"y of chunk {k}")
        assert_close(dx, ref["dx"], GRAD_ATOL, f"dx of chunk {k}")
        assert_close(dstate0, ref["dstate0"], GRAD_ATOL, f"dstate0 of chunk {k}")
        state, ref_state = state_next, ref["state"]
    _assert_grads_close(m.grads(), ref_grads, what="grads accumulated over the chunks")


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_state_gradient_from_the_decoder_matches_autograd_through_both(kind):
    rng = rng_for("seq2seq", kind)
    enc_cfg = dict(input_size=4, hidden_size=6, num_layers=2)
    dec_cfg = dict(input_size=3, hidden_size=6, num_layers=2, batch_first=True)
    t_enc, t_dec = make_torch(kind, enc_cfg, 1), make_torch(kind, dec_cfg, 2)
    enc, dec = sr.from_torch(t_enc), sr.from_torch(t_dec)
    x_enc, x_dec = _input(rng, enc_cfg, 7, 3), _input(rng, dec_cfg, 5, 3)
    lengths = np.array([7, 3, 5])
    dy, dh = randn(rng, 3, 5, 6), _random_dstate(rng, kind, dec_cfg, 3)

    y_enc, s_enc = enc(x_enc, lengths=lengths, train=True)
    y_dec, s_dec = dec(x_dec, s_enc, train=True)
    dx_dec, ds_enc = dec.backward(dy, dh)
    dx_enc, ds0 = enc.backward(np.zeros_like(y_enc), ds_enc)

    xe, xd = _leaf(x_enc), _leaf(x_dec)
    s0 = _leaf_state(zero_state(kind, enc_cfg, 3))
    _, st = _torch_run(t_enc, xe, s0, lengths)
    yd, sd = t_dec(xd, st)
    _torch_loss(yd, sd, dy, dh).backward()
    assert_close(y_dec, yd, what="decoder y")
    assert_close(s_dec, copy_state(to_numpy(sd)), what="decoder state")
    assert_close(dx_dec, _grad(xd), GRAD_ATOL, "decoder dx")
    assert_close(dx_enc, _grad(xe), GRAD_ATOL, "encoder dx")
    assert_close(ds0, _like(s0, [_grad(v) for v in _as_tuple(s0)]), GRAD_ATOL, "encoder dstate0")
    _assert_grads_close(enc.grads(), {k: _grad(p) for k, p in t_enc.named_parameters()}, what="encoder grads")
    _assert_grads_close(dec.grads(), {k: _grad(p) for k, p in t_dec.named_parameters()}, what="decoder grads")


# ------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("kind", KINDS)
def test_backward_before_a_training_forward_is_a_value_error(kind):
    rng = rng_for("no record", kind)
    cfg = dict(input_size=3, hidden_size=4)
    m = make_sr(kind, cfg, seed=0)
    x = _input(rng, cfg, 5, 2)
    with pytest.raises(ValueError, match="train"):
        m.backward(np.zeros((5, 2, 4), np.float32))
    m(x)  # inference keeps nothing
    with pytest.raises(ValueError, match="train"):
        m.backward(np.zeros((5, 2, 4), np.float32))
    cell = getattr(sr, CELL[kind])(3, 4, seed=0)
    cell(randn(rng, 2, 3))
    with pytest.raises(ValueError, match="train"):
        cell.backward(_cell_state(kind, rng, (2,), 4))
    for g in list(m.grads().values()) + list(cell.grads().values()):
        assert np.all(g == 0.0)


def _grads_unchanged_after(m, call, exc):
    before = {k: v.copy() for k, v in m.grads().items()}
    with pytest.raises(exc) as excinfo:
        call()
    for k, v in m.grads().items():
        assert_identical(v, before[k], f"grads[{k}] after a refused backward")
    return excinfo


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_backward_names_dy_and_its_shape_and_changes_nothing(kind):
    rng = rng_for("bad dy", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    m(x, state, train=True)
    m.backward(dy, dstate)  # nonzero gradients to keep
    for bad in [(6, 3, 5), (6, 3, 11), (5, 3, 10), (6, 10), (3, 6, 10), (6, 3, 10, 1)]:
        excinfo = _grads_unchanged_after(m, lambda: m.backward(np.zeros(bad, np.float32), dstate), ValueError)
        assert_message_names(excinfo, "dy", bad)
    # the record is still there and gives what it gave
    expected = sr_gradients(make_sr(kind, cfg, seed=12), x, state, dy, dstate)
    m.zero_grad()
    dx, _ = m.backward(dy, dstate)
    assert_identical(dx, expected["dx"], "dx after refused calls")


@pytest.mark.parametrize("kind", KINDS)
def test_a_dstate_of_the_wrong_shape_is_a_value_error_naming_dstate(kind):
    rng = rng_for("bad dstate shape", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    m(x, state, train=True)
    m.backward(dy, dstate)
    h = _as_tuple(dstate)[0]
    bad_h = np.zeros((h.shape[0], h.shape[1] + 1, h.shape[2]), np.float32)
    bad = (bad_h, _as_tuple(dstate)[1]) if kind == "LSTM" else bad_h
    excinfo = _grads_unchanged_after(m, lambda: m.backward(dy, bad), ValueError)
    assert_message_names(excinfo, "dstate", bad_h.shape)
    if kind == "LSTM":
        bad_c = np.zeros(h.shape[:2] + (2,), np.float32)
        excinfo = _grads_unchanged_after(m, lambda: m.backward(dy, (dstate[0], bad_c)), ValueError)
        assert_message_names(excinfo, "dstate", bad_c.shape)


@pytest.mark.parametrize("kind", KINDS)
def test_a_dstate_of_the_wrong_structure_is_a_type_error_naming_dstate(kind):
    rng = rng_for("bad dstate structure", kind)
    m, cfg, x, state, dy, dstate = _trained(kind, rng)
    m(x, state, train=True)
    m.backward(dy, dstate)
    if kind == "LSTM":
        excinfo = _grads_unchanged_after(m, lambda: m.backward(dy, dstate[0]), TypeError)
    else:
        excinfo = _grads_unchanged_after(m, lambda: m.backward(dy, (dstate, dstate)), TypeError)
    assert_message_names(excinfo, "dstate")


@pytest.mark.parametrize("kind", KINDS)
def test_a_cell_dstate_of_the_wrong_shape_is_refused_and_changes_nothing(kind):
    rng = rng_for("bad cell dstate", kind)
    cell = getattr(sr, CELL[kind])(3, 4, seed=0)
    cell(randn(rng, 2, 3), train=True)
    good = _cell_state(kind, rng, (2,), 4)
    cell.backward(good)
    bad_h = np.zeros((3, 4), np.float32)
    bad = (bad_h, good[1]) if kind == "LSTM" else bad_h
    excinfo = _grads_unchanged_after(cell, lambda: cell.backward(bad), ValueError)
    assert_message_names(excinfo, "dstate", bad_h.shape)
