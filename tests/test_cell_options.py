# tests/test_cell_options.py
# ONNX's cell options (activations, clip, peepholes, input_forget) against a torch reference that ONNX Runtime checks.
# Part of streamrnn, MIT licence.
"""Cell options of API.md's "Cell options (ONNX's)" section.

The reference
-------------
``reference`` below is an independent float64 implementation in torch ops of LSTM, GRU and RNN
stacks with every option: the cells' functions (ONNX's f, g, h with alpha and beta), ``clip`` on
each gate's pre-activation (after the peephole term), LSTM peepholes (rows i, f, o of
``weight_peephole_l{k}``: i and f see c_prev, o sees c_new) and ``input_forget`` (f = 1 - i),
``proj_size``, GRU ``reset_after`` both ways, RNN ``nonlinearity``, bias or none, residual,
bidirectional stacks (the next layer reads both directions concatenated) and ``lengths`` as
PyTorch's packed sequences. Torch autograd through it gives the reference gradients.
``test_reference_matches_onnx_runtime_on_random_nodes`` checks it against ONNX Runtime's LSTM,
GRU and RNN nodes, and ``test_reference_with_default_options_matches_torch`` against torch.nn for
what ONNX has not (stacks, projection, reset_after=True among others).

Tolerances
----------
streamrnn computes in float32, the reference in float64 on the same float32 weights and inputs.
With the default functions every value is O(1), and conftest's ATOL / GRAD_ATOL argue why 1e-5 /
2e-5 bound the float32 rounding. Relu, Affine, ThresholdedRelu, LeakyRelu, Elu and Softplus are
unbounded, so states and outputs can grow past 1 over a dozen steps and the rounding error grows
with them, in proportion: every comparison here is made with ``FWD_ATOL`` (2e-5) or ``GRAD_ATOL``
times the reference's largest magnitude when that is above 1 (for gradients, above 10: their
rounding was measured in conftest at a few 1e-6 for gradients of order 10). A wrong alpha, beta,
gate, peephole row or clip bound gives relative errors of 1e-2 and more.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (GRAD_ATOL, KINDS, assert_close, assert_float32, assert_identical, assert_message_names,
                      directions, feed_stream, make_sr, make_torch, numpy_gru, output_size, randn, random_state,
                      rng_for, sr_gradients, to_numpy, zero_state)

FWD_ATOL = 2e-5
"""Max abs error of a forward value (relative to the reference's magnitude when above 1)."""

# ------------------------------------------------------------------------------------------------
# The functions: ONNX's names, how many of alpha and beta each takes, and their defaults

CANONICAL = {n.lower(): n for n in ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                    "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus")}
FUNCTIONS = tuple(CANONICAL.values())
PARAMETERS = {"Affine": 2, "ScaledTanh": 2, "HardSigmoid": 2, "LeakyRelu": 1, "ThresholdedRelu": 1, "Elu": 1}
"""Functions that take alpha (1) or alpha and beta (2); the others take neither."""
DEFAULT_ALPHA_BETA = {"Affine": (1.0, 0.0), "ScaledTanh": (1.0, 1.0), "HardSigmoid": (0.2, 0.5),
                      "LeakyRelu": (0.01, 0.0), "ThresholdedRelu": (1.0, 0.0), "Elu": (1.0, 0.0)}
COUNT = {"LSTM": 3, "GRU": 2, "RNN": 1}
"""How many functions a cell has: LSTM f, g, h; GRU f, g; RNN f."""
ALPHA_RANGE = {"Affine": (0.5, 1.5), "ScaledTanh": (0.5, 1.5), "HardSigmoid": (0.1, 0.5),
               "LeakyRelu": (0.02, 0.5), "ThresholdedRelu": (0.05, 0.8), "Elu": (0.3, 1.7)}
BETA_RANGE = {"Affine": (-0.5, 0.5), "ScaledTanh": (0.5, 1.5), "HardSigmoid": (0.3, 0.7)}
"""Random alpha and beta are drawn from these (values that keep a dozen steps finite and O(1)-ish)."""


def apply_function(fn, v):
    """ONNX's activation `fn` = (name, alpha, beta) on a tensor."""
    name, a, b = fn
    if name == "Relu":
        return torch.relu(v)
    if name == "Tanh":
        return torch.tanh(v)
    if name == "Sigmoid":
        return torch.sigmoid(v)
    if name == "Affine":
        return a * v + b
    if name == "LeakyRelu":
        return torch.where(v >= 0, v, a * v)
    if name == "ThresholdedRelu":
        return torch.where(v > a, v, torch.zeros_like(v))
    if name == "ScaledTanh":
        return a * torch.tanh(b * v)
    if name == "HardSigmoid":
        return torch.clamp(a * v + b, 0.0, 1.0)
    if name == "Elu":
        return torch.where(v >= 0, v, a * torch.expm1(torch.clamp(v, max=0.0)))
    if name == "Softsign":
        return v / (1.0 + v.abs())
    if name == "Softplus":
        return torch.log1p(torch.exp(-v.abs())) + torch.relu(v)
    raise AssertionError(f"no function {name!r}")


def canonical_entry(entry):
    """A user's entry (a name, (name, alpha) or (name, alpha, beta)) -> (Name, alpha, beta)."""
    if isinstance(entry, str):
        entry = (entry,)
    name = CANONICAL[entry[0].lower()]
    alpha, beta = DEFAULT_ALPHA_BETA.get(name, (0.0, 0.0))
    if len(entry) > 1:
        alpha = float(entry[1])
    if len(entry) > 2:
        beta = float(entry[2])
    return (name, alpha, beta)


def default_functions(kind, cfg):
    if kind == "LSTM":
        return ["Sigmoid", "Tanh", "Tanh"]
    if kind == "GRU":
        return ["Sigmoid", "Tanh"]
    return ["Relu" if cfg.get("nonlinearity", "tanh") == "relu" else "Tanh"]


def functions_per_direction(kind, cfg):
    """The cfg's `activations` as one list of (Name, alpha, beta) per direction.

    One list serves every direction; a bidirectional model may give a list of two lists, or a flat
    list of 2n (forward first). Direction lists are lists, entries are strings or tuples.
    """
    D, n = directions(cfg), COUNT[kind]
    spec = cfg.get("activations")
    if spec is None:
        per = [default_functions(kind, cfg)] * D
    else:
        spec = list(spec)
        if D == 2 and len(spec) == 2 and all(isinstance(s, list) for s in spec):
            per = spec
        elif D == 2 and len(spec) == 2 * n:
            per = [spec[:n], spec[n:]]
        else:
            per = [spec] * D
    out = [[canonical_entry(e) for e in fns] for fns in per]
    assert all(len(fns) == n for fns in out), f"the test gave {spec!r} for a {kind}"
    return out


# ------------------------------------------------------------------------------------------------
# The reference: float64 torch ops, time-major inside


class Trace:
    """Counts the gate pre-activations on valid steps, and those that `clip` clipped."""

    def __init__(self):
        self.values = 0
        self.clipped = 0


def _clip(v, clip, valid, trace):
    if clip is None:
        return v
    if trace is not None:
        mask = valid.expand_as(v)
        trace.values += int(mask.sum())
        trace.clipped += int(((v.abs() > clip) & mask).sum())
    return torch.clamp(v, -clip, clip)


def _linear(w, sfx, x, h):
    out = x @ w["weight_ih" + sfx].T + h @ w["weight_hh" + sfx].T
    if "bias_ih" + sfx in w:
        out = out + w["bias_ih" + sfx] + w["bias_hh" + sfx]
    return out


def _lstm_step(w, sfx, fns, cfg, x, h, c, valid, trace):
    f_fn, g_fn, h_fn = fns
    clip = cfg.get("clip")
    gi, gf, gg, go = _linear(w, sfx, x, h).chunk(4, dim=-1)  # PyTorch's gate order i, f, g, o
    p = w.get("weight_peephole" + sfx)
    if p is not None:  # rows i, f, o (ONNX's P is i, o, f)
        gi = gi + p[0] * c
        gf = gf + p[1] * c
    i = apply_function(f_fn, _clip(gi, clip, valid, trace))
    if cfg.get("input_forget", False):
        f = 1.0 - i  # ONNX Runtime's coupling
    else:
        f = apply_function(f_fn, _clip(gf, clip, valid, trace))
    g = apply_function(g_fn, _clip(gg, clip, valid, trace))
    c_new = f * c + i * g
    if p is not None:
        go = go + p[2] * c_new
    o = apply_function(f_fn, _clip(go, clip, valid, trace))
    h_new = o * apply_function(h_fn, c_new)  # h's argument is not clipped
    if "weight_hr" + sfx in w:
        h_new = h_new @ w["weight_hr" + sfx].T
    return h_new, c_new


def _gru_step(w, sfx, fns, cfg, x, h, valid, trace):
    f_fn, g_fn = fns
    clip, H = cfg.get("clip"), h.shape[-1]
    gx = x @ w["weight_ih" + sfx].T
    w_hh = w["weight_hh" + sfx]
    if "bias_ih" + sfx in w:
        gx = gx + w["bias_ih" + sfx]
        b_hh = w["bias_hh" + sfx]
    else:
        b_hh = torch.zeros(3 * H, dtype=x.dtype)
    gh_rz = h @ w_hh[:2 * H].T + b_hh[:2 * H]
    r = apply_function(f_fn, _clip(gx[:, :H] + gh_rz[:, :H], clip, valid, trace))
    z = apply_function(f_fn, _clip(gx[:, H:2 * H] + gh_rz[:, H:], clip, valid, trace))
    if cfg.get("reset_after", True):
        n_pre = gx[:, 2 * H:] + r * (h @ w_hh[2 * H:].T + b_hh[2 * H:])
    else:
        n_pre = gx[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:]
    n = apply_function(g_fn, _clip(n_pre, clip, valid, trace))
    return (1.0 - z) * n + z * h


def _rnn_step(w, sfx, fns, cfg, x, h, valid, trace):
    return apply_function(fns[0], _clip(_linear(w, sfx, x, h), cfg.get("clip"), valid, trace))


def _reference_time_major(kind, cfg, w, x, state, lengths, trace):
    T, B, _ = x.shape
    D, num_layers = directions(cfg), cfg.get("num_layers", 1)
    fns = functions_per_direction(kind, cfg)
    lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(np.asarray(lengths), dtype=torch.int64)
    valid = (torch.arange(T)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
    h0, c0 = (state if kind == "LSTM" else (state, None))
    h_n, c_n = [], []
    inp = x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[k], (c0[k] if kind == "LSTM" else None)
            ys = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                if kind == "LSTM":
                    h_new, c_new = _lstm_step(w, sfx, fns[d], cfg, inp[t], h, c, valid[t], trace)
                    c = torch.where(valid[t], c_new, c)
                elif kind == "GRU":
                    h_new = _gru_step(w, sfx, fns[d], cfg, inp[t], h, valid[t], trace)
                else:
                    h_new = _rnn_step(w, sfx, fns[d], cfg, inp[t], h, valid[t], trace)
                ys[t] = torch.where(valid[t], h_new, torch.zeros_like(h_new))
                h = torch.where(valid[t], h_new, h)
            outs.append(torch.stack(ys))
            h_n.append(h)
            c_n.append(c)
        out = torch.cat(outs, dim=-1)
        if cfg.get("residual", False) and out.shape[-1] == inp.shape[-1]:
            out = out + torch.where(valid, inp, torch.zeros_like(inp))
        inp = out
    if kind == "LSTM":
        return inp, (torch.stack(h_n), torch.stack(c_n))
    return inp, torch.stack(h_n)


def reference(kind, cfg, w, x, state, lengths=None, trace=None):
    """The stack of `cfg` on tensors in the model's layout: x, state (required) -> y, state.

    `w` maps state_dict names to tensors; batch_first and unbatched x are handled as the model does.
    """
    unbatched = x.dim() == 2
    tm = cfg.get("batch_first", False) and not unbatched
    if unbatched:
        x = x[:, None]
        state = tuple(s[:, None] for s in state) if kind == "LSTM" else state[:, None]
    elif tm:
        x = x.transpose(0, 1)
    y, s = _reference_time_major(kind, cfg, w, x, state, lengths, trace)
    if unbatched:
        return y[:, 0], (tuple(v[:, 0] for v in s) if kind == "LSTM" else s[:, 0])
    return (y.transpose(0, 1) if tm else y), s


def _tensor(a, dtype=torch.float64, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=grad)


def _state_tensors(state, dtype=torch.float64, grad=False):
    if isinstance(state, tuple):
        return tuple(_tensor(s, dtype, grad) for s in state)
    return _tensor(state, dtype, grad)


def _unbatched_zero_state(kind, cfg, x):
    B = None if np.ndim(x) == 2 else x.shape[0 if cfg.get("batch_first", False) else 1]
    return zero_state(kind, cfg, B)


def reference_forward(kind, cfg, weights, x, state=None, lengths=None, trace=None, dtype=torch.float64):
    """NumPy in, NumPy out (float64): `reference` without gradients. state None means zeros."""
    state = _unbatched_zero_state(kind, cfg, x) if state is None else state
    with torch.no_grad():
        w = {k: _tensor(v, dtype) for k, v in weights.items()}
        y, s = reference(kind, cfg, w, _tensor(x, dtype), _state_tensors(state, dtype), lengths, trace)
    return to_numpy(y).astype(np.float64), tuple(to_numpy(v).astype(np.float64) for v in s) \
        if kind == "LSTM" else to_numpy(s).astype(np.float64)


def _as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


def reference_gradients(kind, cfg, weights, x, state, dy, dstate=None, lengths=None, dtype=torch.float64):
    """Torch autograd of loss = sum(y * dy) + sum(state * dstate) through the reference."""
    state = _unbatched_zero_state(kind, cfg, x) if state is None else state
    w = {k: _tensor(v, dtype, True) for k, v in weights.items()}
    xt, st = _tensor(x, dtype, True), _state_tensors(state, dtype, True)
    y, s = reference(kind, cfg, w, xt, st, lengths)
    loss = (y * _tensor(dy, dtype)).sum()
    if dstate is not None:
        for v, d in zip(_as_tuple(s), _as_tuple(dstate)):
            loss = loss + (v * _tensor(d, dtype)).sum()
    loss.backward()

    def grad(t):
        return np.zeros(tuple(t.shape)) if t.grad is None else to_numpy(t.grad).astype(np.float64)

    dstate0 = tuple(grad(v) for v in st) if kind == "LSTM" else grad(st)
    return dict(y=to_numpy(y).astype(np.float64), state=tuple(to_numpy(v).astype(np.float64) for v in _as_tuple(s))
                if kind == "LSTM" else to_numpy(s).astype(np.float64),
                dx=grad(xt), dstate0=dstate0, grads={k: grad(v) for k, v in w.items()})


# ------------------------------------------------------------------------------------------------
# Comparisons scaled to the reference's magnitude


def assert_scaled_close(actual, expected, atol=FWD_ATOL, what="result", unit=1.0):
    """assert_close with atol * max(1, max|expected| / unit), tuples element-wise."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), f"{what}: structure differs"
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_scaled_close(a, e, atol, f"{what}[{k}]", unit)
        return
    expected = np.asarray(expected, np.float64)
    assert np.all(np.isfinite(expected)), f"{what}: the reference is not finite (a test setup error)"
    scale = max(1.0, float(np.abs(expected).max()) / unit) if expected.size else 1.0
    assert_close(actual, expected, atol * scale, what)


def assert_forward_matches(m, kind, cfg, x, state=None, lengths=None, what=""):
    y, s = m(x, state, lengths=lengths)
    assert_float32(y, s)
    y_ref, s_ref = reference_forward(kind, cfg, m.state_dict(), x, state, lengths)
    assert_scaled_close(y, y_ref, what=f"y {what}")
    assert_scaled_close(s, s_ref, what=f"state {what}")
    return y, s


def assert_gradients_match(ours, ref, what=""):
    assert_scaled_close(ours["y"], ref["y"], what=f"y {what}")
    assert_scaled_close(ours["state"], ref["state"], what=f"state {what}")
    assert_scaled_close(ours["dx"], ref["dx"], GRAD_ATOL, f"dx {what}", unit=10.0)
    assert_scaled_close(ours["dstate0"], ref["dstate0"], GRAD_ATOL, f"dstate0 {what}", unit=10.0)
    assert sorted(ours["grads"]) == sorted(ref["grads"]), \
        f"grads {what}: keys {sorted(ours['grads'])} != {sorted(ref['grads'])}"
    for k in ref["grads"]:
        assert_scaled_close(ours["grads"][k], ref["grads"][k], GRAD_ATOL, f"grads[{k}] {what}", unit=10.0)


# ------------------------------------------------------------------------------------------------
# Random configurations, weights and inputs


def random_alpha_beta(rng, name):
    lo, hi = ALPHA_RANGE[name]
    alpha = float(np.float32(rng.uniform(lo, hi)))
    if PARAMETERS[name] == 1:
        return (alpha,)
    lo, hi = BETA_RANGE[name]
    return (alpha, float(np.float32(rng.uniform(lo, hi))))


def _random_case_of(rng, name):
    """`name` in a random case: Tanh, TANH, tanh, tAnH..."""
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in name)


def random_entry(rng, name=None, *, how=None):
    """An entry for `name` (random if None): a bare name (ONNX's defaults), (name, alpha) or
    (name, alpha, beta) with random values for functions that take them."""
    name = FUNCTIONS[rng.integers(len(FUNCTIONS))] if name is None else name
    spelled = _random_case_of(rng, name)
    count = PARAMETERS.get(name, 0)
    how = how or ("bare" if count == 0 or rng.random() < 0.25 else "full")
    if how == "bare" or count == 0:
        return spelled
    ab = random_alpha_beta(rng, name)
    if count == 2 and rng.random() < 0.25:
        return (spelled, ab[0])  # beta takes its default
    return (spelled, *ab)


GATE_FUNCTIONS = ("Sigmoid", "HardSigmoid")
"""Gate functions (LSTM's and GRU's f) of the random stacks: in [0, 1], so that a dozen steps of
unbounded g and h functions through 3 layers keep the values finite and the sums well conditioned
(a forget gate of Affine or Relu makes c grow like its power: cases a float32 engine cannot match
tightly, and which no test needs; every function is checked in every position on one layer)."""


def random_activations(kind, rng, D, *, form=None, bounded_gates=False):
    """A random `activations` argument in one of the accepted forms for D directions."""
    n = COUNT[kind]
    form = form or str(rng.choice(["one", "per_direction", "flat"] if D == 2 else ["one"]))

    def entry(position):
        if bounded_gates and kind != "RNN" and position == 0:
            return random_entry(rng, GATE_FUNCTIONS[rng.integers(len(GATE_FUNCTIONS))])
        return random_entry(rng)

    lists = [[entry(p) for p in range(n)] for _ in range(2 if form != "one" else 1)]
    if form == "one":
        return lists[0]
    if form == "per_direction":
        return lists
    return lists[0] + lists[1]


def randomize_weights(m, rng, peephole_scale=0.5):
    """Random weights for m (uniform +-1/sqrt(H), peepholes +-peephole_scale), loaded; returns them."""
    sd = m.state_dict()
    bound = 1.0 / math.sqrt(m.hidden_size)
    new = {}
    for k, v in sd.items():
        scale = peephole_scale if k.startswith("weight_peephole") else bound
        new[k] = rng.uniform(-scale, scale, size=v.shape).astype(np.float32)
    m.load_state_dict(new)
    return m.state_dict()


def build(kind, cfg, rng, seed=0, **extra):
    m = make_sr(kind, cfg, seed=seed, **extra)
    randomize_weights(m, rng)
    return m


def random_layout_input(rng, cfg, T, B, scale=1.0):
    I = cfg["input_size"]
    if B is None:
        return randn(rng, T, I, scale=scale)
    return randn(rng, B, T, I, scale=scale) if cfg.get("batch_first", False) else randn(rng, T, B, I, scale=scale)


def output_shape(kind, cfg, T, B):
    Y = directions(cfg) * output_size(kind, cfg)
    if B is None:
        return (T, Y)
    return (B, T, Y) if cfg.get("batch_first", False) else (T, B, Y)


def random_lengths(rng, T, B):
    lengths = rng.integers(0 if rng.random() < 0.3 else 1, T + 1, size=B)
    lengths[rng.integers(B)] = T
    return lengths


def random_option_config(kind, rng, *, allow_bidirectional=True, max_layers=3) -> dict:
    """Small random constructor arguments (our names) with every option drawn at random."""
    hidden = int(rng.integers(2, 13))
    cfg = dict(input_size=int(rng.integers(1, 9)), hidden_size=hidden,
               num_layers=int(rng.integers(1, max_layers + 1)), bias=bool(rng.random() < 0.8),
               batch_first=bool(rng.random() < 0.5), bidirectional=bool(allow_bidirectional and rng.random() < 0.5),
               residual=bool(rng.random() < 0.4))
    if kind == "LSTM":
        if rng.random() < 0.4:
            cfg["proj_size"] = int(rng.integers(1, hidden))
        cfg["peepholes"] = bool(rng.random() < 0.6)
        cfg["input_forget"] = bool(rng.random() < 0.4)
    if kind == "GRU":
        cfg["reset_after"] = bool(rng.random() < 0.5)
    if rng.random() < 0.6:
        cfg["clip"] = float(np.float32(rng.uniform(0.3, 3.0)))
    if rng.random() < 0.8:
        cfg["activations"] = random_activations(kind, rng, directions(cfg), bounded_gates=True)
    elif kind == "RNN":  # nonlinearity= with activations= is left unspecified: never both
        cfg["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    if cfg["residual"] and rng.random() < 0.5:
        cfg["input_size"] = directions(cfg) * output_size(kind, cfg)  # residual on layer 0 as well
    return cfg


# ------------------------------------------------------------------------------------------------
# The reference against ONNX Runtime (single LSTM / GRU / RNN nodes)

ONNX_GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}
"""Our (PyTorch's) gate blocks in ONNX's order: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h."""


def _onnx_blocks(a, kind):
    blocks = np.split(np.asarray(a, np.float32), len(ONNX_GATE_ORDER[kind]), axis=0)
    return np.concatenate([blocks[i] for i in ONNX_GATE_ORDER[kind]], axis=0)


def onnx_node_model(kind, cfg, weights, T, B, with_lengths, omit_alpha_beta=False):
    """A one-node ONNX graph computing `cfg` (one layer, no projection) with `weights` (our names)."""
    from onnx import TensorProto, helper, numpy_helper

    D, H = directions(cfg), cfg["hidden_size"]
    sfxs = ["_l0", "_l0_reverse"][:D]
    W = np.stack([_onnx_blocks(weights["weight_ih" + s], kind) for s in sfxs])
    R = np.stack([_onnx_blocks(weights["weight_hh" + s], kind) for s in sfxs])
    inits = {"W": W, "R": R}
    if cfg.get("bias", True):
        inits["B"] = np.stack([np.concatenate([_onnx_blocks(weights["bias_ih" + s], kind),
                                               _onnx_blocks(weights["bias_hh" + s], kind)]) for s in sfxs])
    if cfg.get("peepholes", False):
        inits["P"] = np.stack([weights["weight_peephole" + s][[0, 2, 1]].reshape(-1) for s in sfxs])
    fns = [fn for per in functions_per_direction(kind, cfg) for fn in per]
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward",
                 activations=[fn[0] for fn in fns])
    if not omit_alpha_beta:  # ONNX consumes these in order, each only by a function that takes it
        alphas = [fn[1] for fn in fns if PARAMETERS.get(fn[0], 0) >= 1]
        betas = [fn[2] for fn in fns if PARAMETERS.get(fn[0], 0) == 2]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    if cfg.get("clip") is not None:
        attrs["clip"] = float(cfg["clip"])
    if kind == "LSTM":
        attrs["input_forget"] = int(cfg.get("input_forget", False))
    if kind == "GRU":
        attrs["linear_before_reset"] = int(cfg.get("reset_after", True))
    names = {"LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
             "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
             "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"]}[kind]
    given = set(inits) | {"X", "initial_h"} | ({"initial_c"} if kind == "LSTM" else set()) \
        | ({"sequence_lens"} if with_lengths else set())
    used = [n if n in given else "" for n in names]
    while not used[-1]:
        used.pop()
    outputs = ["Y", "Y_h", "Y_c"] if kind == "LSTM" else ["Y", "Y_h"]
    node = helper.make_node(kind, used, outputs, **attrs)
    feeds = [n for n in used if n and n not in inits]
    shapes = {"X": [T, B, cfg["input_size"]], "initial_h": [D, B, H], "initial_c": [D, B, H], "sequence_lens": [B]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else TensorProto.FLOAT,
                                            shapes[n]) for n in feeds]
    graph = helper.make_graph([node], "cell_options", inputs,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              initializer=[numpy_helper.from_array(np.ascontiguousarray(v, np.float32), n)
                                           for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def onnx_runtime_forward(kind, cfg, weights, x, state, lengths=None, omit_alpha_beta=False):
    """ORT's outputs for time-major x (T, B, I) in our layout: y (T, B, D*H), state (D, B, H)."""
    import onnxruntime

    T, B, _ = x.shape
    model = onnx_node_model(kind, cfg, weights, T, B, lengths is not None, omit_alpha_beta)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"X": x, "initial_h": state[0] if kind == "LSTM" else state}
    if kind == "LSTM":
        feeds["initial_c"] = state[1]
    if lengths is not None:
        feeds["sequence_lens"] = np.asarray(lengths, np.int32)
    names = {i.name for i in session.get_inputs()}
    out = session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items() if k in names})
    y = out[0].transpose(0, 2, 1, 3).reshape(T, B, -1)  # (T, D, B, H) -> (T, B, D*H)
    return y, (out[1], out[2]) if kind == "LSTM" else out[1]


def random_onnx_config(kind, rng):
    H = int(rng.integers(2, 9))
    cfg = dict(input_size=int(rng.integers(1, 7)), hidden_size=H, num_layers=1,
               bias=bool(rng.random() < 0.8), bidirectional=bool(rng.random() < 0.5))
    if kind == "LSTM":
        cfg["peepholes"] = bool(rng.random() < 0.6)
        cfg["input_forget"] = bool(rng.random() < 0.4)
    if kind == "GRU":
        cfg["reset_after"] = bool(rng.random() < 0.5)
    if rng.random() < 0.7:
        cfg["clip"] = float(np.float32(rng.uniform(0.2, 2.0)))
    cfg["activations"] = random_activations(kind, rng, directions(cfg), form="flat" if cfg["bidirectional"] else "one")
    return cfg


def random_weights(kind, cfg, rng, peephole_scale=0.5):
    """Our state_dict names -> random float32 tensors for a one-layer cfg."""
    H, I = cfg["hidden_size"], cfg["input_size"]
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    bound = 1 / math.sqrt(H)
    w = {}
    for s in ["_l0", "_l0_reverse"][:directions(cfg)]:
        w["weight_ih" + s] = rng.uniform(-bound, bound, (G * H, I)).astype(np.float32)
        w["weight_hh" + s] = rng.uniform(-bound, bound, (G * H, H)).astype(np.float32)
        if cfg.get("bias", True):
            w["bias_ih" + s] = rng.uniform(-bound, bound, G * H).astype(np.float32)
            w["bias_hh" + s] = rng.uniform(-bound, bound, G * H).astype(np.float32)
        if cfg.get("peepholes", False):
            w["weight_peephole" + s] = rng.uniform(-peephole_scale, peephole_scale, (3, H)).astype(np.float32)
    return w


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", KINDS)
def test_reference_matches_onnx_runtime_on_random_nodes(kind, seed):
    """Every function with random alpha/beta, clip, peepholes, input_forget, both GRU variants,
    bidirectional and sequence_lens, one ONNX node against the reference."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    rng = rng_for("onnx runtime", kind, seed)
    for _ in range(4):
        cfg = random_onnx_config(kind, rng)
        w = random_weights(kind, cfg, rng)
        T, B = int(rng.integers(1, 9)), int(rng.integers(1, 4))
        x = randn(rng, T, B, cfg["input_size"])
        state = random_state(rng, kind, cfg, B)
        # ONNX Runtime gives a row of length 0 a zero state (ours: its initial state): lengths >= 1 here
        lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.5 else None
        y_ref, s_ref = reference_forward(kind, cfg, w, x, state, lengths)
        y_ort, s_ort = onnx_runtime_forward(kind, cfg, w, x, state, lengths)
        what = f"ONNX Runtime vs reference for {cfg}, T={T}, B={B}, lengths={lengths}"
        assert_scaled_close(y_ort, y_ref, what="Y of " + what)
        assert_scaled_close(s_ort, s_ref, what="Y_h/Y_c of " + what)


@pytest.mark.parametrize("name", ["LeakyRelu", "HardSigmoid", "Elu"])
def test_onnx_runtime_defaults_of_alpha_and_beta_are_ours_where_it_has_defaults(name):
    """ORT's recurrent nodes default alpha/beta only for LeakyRelu (0.01), HardSigmoid (0.2, 0.5)
    and Elu (1.0); for Affine, ScaledTanh and ThresholdedRelu it takes 0 (ONNX's operators, and
    streamrnn, take Affine 1/0, ScaledTanh 1/1, ThresholdedRelu 1.0)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    rng = rng_for("onnx runtime defaults", name)
    cfg = dict(input_size=3, hidden_size=4, num_layers=1, activations=[name])
    w = {k: v * 3 for k, v in random_weights("RNN", cfg, rng).items()}
    x, state = randn(rng, 6, 2, 3, scale=2.0), random_state(rng, "RNN", cfg, 2)
    y_ort, _ = onnx_runtime_forward("RNN", cfg, w, x, state, omit_alpha_beta=True)
    y_ref, _ = reference_forward("RNN", cfg, w, x, state)
    assert_scaled_close(y_ort, y_ref, what=f"{name} with ORT's defaults")


DEFAULT_REFERENCE_CASES = [
    ("LSTM", dict(num_layers=3, bidirectional=True, proj_size=3)),
    ("LSTM", dict(num_layers=2, batch_first=True, bias=False, proj_size=2)),
    ("LSTM", dict(num_layers=1)),
    ("GRU", dict(num_layers=3, bidirectional=True)),
    ("GRU", dict(num_layers=2, batch_first=True, bias=False)),
    ("RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu")),
    ("RNN", dict(num_layers=3, batch_first=True, nonlinearity="tanh", bias=False)),
]


@pytest.mark.parametrize("kind,opts", DEFAULT_REFERENCE_CASES,
                         ids=[f"{k}-{i}" for i, (k, _) in enumerate(DEFAULT_REFERENCE_CASES)])
def test_reference_with_default_options_matches_torch(kind, opts):
    """What ONNX's nodes don't have (stacks, projection, PyTorch's GRU, lengths with zero rows,
    batch_first, unbatched) checked against torch.nn on the same weights."""
    from conftest import torch_forward

    rng = rng_for("reference vs torch", kind, repr(opts))
    cfg = dict(input_size=5, hidden_size=6, **opts)
    module = make_torch(kind, cfg, 2)
    w = {k: to_numpy(v) for k, v in module.state_dict().items()}
    T, B = 9, 4
    x = random_layout_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B)
    for lengths in (None, np.array([3, 9, 0, 6])):
        y_ref, s_ref = reference_forward(kind, cfg, w, x, state, lengths)
        y_t, s_t = torch_forward(module, x, state, lengths)
        assert_close(y_ref, y_t, what=f"reference y, lengths {lengths}")
        assert_close(s_ref, s_t, what=f"reference state, lengths {lengths}")
    xu = x[0] if cfg.get("batch_first") else x[:, 0]
    su = tuple(v[:, 0] for v in state) if kind == "LSTM" else state[:, 0]
    y_ref, s_ref = reference_forward(kind, cfg, w, xu, su)
    y_t, s_t = torch_forward(module, xu, su)
    assert_close(y_ref, y_t, what="unbatched reference y")
    assert_close(s_ref, s_t, what="unbatched reference state")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_reference_gru_with_reset_before_and_residual_matches_conftests_numpy_gru(bidirectional):
    rng = rng_for("reference vs numpy gru", bidirectional)
    D = 2 if bidirectional else 1
    cfg = dict(input_size=6 * D, hidden_size=6, num_layers=3, bidirectional=bidirectional, reset_after=False,
               residual=True)
    w = random_option_weights_like_torch("GRU", cfg, rng)
    x, state = randn(rng, 8, 3, 6 * D), random_state(rng, "GRU", cfg, 3)
    lengths = np.array([8, 0, 5])
    y_ref, s_ref = reference_forward("GRU", cfg, w, x, state, lengths)
    y_np, s_np = numpy_gru(x, w, num_layers=3, bidirectional=bidirectional, bias=True, reset_after=False,
                           residual=True, h0=state, lengths=lengths)
    assert_close(y_ref, y_np, atol=1e-12, what="y")
    assert_close(s_ref, s_np, atol=1e-12, what="state")


def random_option_weights_like_torch(kind, cfg, rng):
    """Random weights for every layer of cfg, under our names (from torch modules' shapes)."""
    module = make_torch(kind, {k: v for k, v in cfg.items() if k in ("input_size", "hidden_size", "num_layers",
                                                                    "bias", "bidirectional", "proj_size")}, 0)
    out = {}
    for k, v in module.state_dict().items():
        out[k] = rng.uniform(-0.4, 0.4, size=tuple(v.shape)).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------
# streamrnn against the reference: each option, every function, random combinations

LSTM_FUNCTIONS = [("HardSigmoid", 0.3, 0.45), ("ScaledTanh", 1.2, 0.8), "Softsign"]
GRU_FUNCTIONS = [("Affine", 0.4, 0.5), ("LeakyRelu", 0.2)]
RNN_FUNCTIONS = [("Elu", 0.7)]


def _option_cases():
    cases = {
        "LSTM-peepholes": ("LSTM", dict(peepholes=True)),
        "LSTM-input_forget": ("LSTM", dict(input_forget=True)),
        "LSTM-clip": ("LSTM", dict(clip=0.6)),
        "LSTM-activations": ("LSTM", dict(activations=LSTM_FUNCTIONS)),
        "LSTM-peepholes-input_forget": ("LSTM", dict(peepholes=True, input_forget=True)),
        "LSTM-peepholes-clip": ("LSTM", dict(peepholes=True, clip=0.6)),
        "LSTM-all": ("LSTM", dict(peepholes=True, input_forget=True, clip=0.8, activations=LSTM_FUNCTIONS)),
        "LSTM-all-proj-stack": ("LSTM", dict(num_layers=2, proj_size=4, peepholes=True, input_forget=True, clip=0.8,
                                             activations=LSTM_FUNCTIONS)),
        "LSTM-all-bidirectional-stack": ("LSTM", dict(num_layers=2, bidirectional=True, peepholes=True, clip=0.8,
                                                      activations=[LSTM_FUNCTIONS, ["Sigmoid", "Elu", "Relu"]])),
        "LSTM-peepholes-residual-batch_first-no_bias": ("LSTM", dict(num_layers=3, residual=True, batch_first=True,
                                                                     bias=False, peepholes=True, clip=1.0)),
        "GRU-clip": ("GRU", dict(clip=0.5)),
        "GRU-activations": ("GRU", dict(activations=GRU_FUNCTIONS)),
        "GRU-reset_before-clip-activations": ("GRU", dict(reset_after=False, clip=0.5, activations=GRU_FUNCTIONS)),
        "GRU-all-bidirectional-stack": ("GRU", dict(num_layers=2, bidirectional=True, clip=0.7,
                                                    activations=GRU_FUNCTIONS + ["HardSigmoid", "Softsign"])),
        "GRU-residual-batch_first": ("GRU", dict(num_layers=3, residual=True, batch_first=True, clip=0.5,
                                                 activations=["Softsign", ("ScaledTanh", 0.9, 1.3)])),
        "RNN-clip": ("RNN", dict(clip=0.5)),
        "RNN-relu-clip": ("RNN", dict(nonlinearity="relu", clip=0.5)),
        "RNN-activations": ("RNN", dict(activations=RNN_FUNCTIONS)),
        "RNN-all-bidirectional-stack": ("RNN", dict(num_layers=2, bidirectional=True, clip=0.7,
                                                    activations=[["Softplus"], [("ThresholdedRelu", 0.2)]])),
    }
    return [pytest.param(kind, opts, id=name) for name, (kind, opts) in cases.items()]


OPTION_CASES = _option_cases()


def _case_config(kind, opts):
    return dict(input_size=5 if not opts.get("residual") else 7 * directions(opts), hidden_size=7,
                **{k: v for k, v in opts.items()})


@pytest.mark.parametrize("kind,opts", OPTION_CASES)
def test_each_option_alone_and_combined_matches_the_reference(kind, opts):
    rng = rng_for("options", kind, repr(opts))
    cfg = _case_config(kind, opts)
    m = build(kind, cfg, rng, seed=3)
    T, B = 9, 4
    x = random_layout_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B)
    y, _ = assert_forward_matches(m, kind, cfg, x, None, what="from zeros")
    assert y.shape == output_shape(kind, cfg, T, B)
    assert_forward_matches(m, kind, cfg, x, state, what="from a state")
    assert_forward_matches(m, kind, cfg, x, state, lengths=np.array([3, 9, 0, 6]), what="with lengths")
    xu = x[0] if cfg.get("batch_first") else x[:, 0]
    su = tuple(v[:, 0] for v in state) if kind == "LSTM" else state[:, 0]
    y, _ = assert_forward_matches(m, kind, cfg, xu, su, what="unbatched")
    assert y.shape == output_shape(kind, cfg, T, None)
    if cfg.get("clip") is not None:
        trace = Trace()
        reference_forward(kind, cfg, m.state_dict(), x, state, trace=trace)
        assert 0 < trace.clipped < trace.values, f"clip={cfg['clip']} should clip some values ({trace.clipped})"


def _positions():
    for kind in KINDS:
        for position in range(COUNT[kind]):
            for name in FUNCTIONS:
                yield pytest.param(kind, position, name, id=f"{kind}-{'fgh'[position]}-{name}")


@pytest.mark.parametrize("kind,position,name", list(_positions()))
def test_every_function_in_every_position_with_random_alpha_and_beta_matches_the_reference(kind, position, name):
    rng = rng_for("function", kind, position, name)
    fns = default_functions(kind, {})
    fns[position] = random_entry(rng, name, how="full")
    cfg = dict(input_size=4, hidden_size=6, activations=fns)
    m = build(kind, cfg, rng, seed=1)
    x, state = random_layout_input(rng, cfg, 8, 3), random_state(rng, kind, cfg, 3)
    assert_forward_matches(m, kind, cfg, x, state, lengths=np.array([8, 5, 2]), what=f"with {fns}")


def _defaulted():
    for name, count in PARAMETERS.items():
        yield pytest.param(name, "bare", id=f"{name}-bare")
        if count == 2:
            yield pytest.param(name, "alpha_only", id=f"{name}-alpha_only")


@pytest.mark.parametrize("name,form", list(_defaulted()))
@pytest.mark.parametrize("kind", KINDS)
def test_missing_alpha_and_beta_take_the_documented_defaults(kind, name, form):
    rng = rng_for("defaults", kind, name, form)
    given = name if form == "bare" else (name, 0.7)
    fns = default_functions(kind, {})
    fns[-1] = given
    explicit = default_functions(kind, {})
    explicit[-1] = canonical_entry(given)
    cfg = dict(input_size=3, hidden_size=5, activations=fns)
    m = build(kind, cfg, rng, seed=2)
    x, state = random_layout_input(rng, cfg, 7, 2, scale=2.0), random_state(rng, kind, cfg, 2)
    y, s = assert_forward_matches(m, kind, cfg, x, state, what=f"with {given}")
    m_explicit = make_sr(kind, dict(cfg, activations=explicit), seed=2)
    m_explicit.load_state_dict(m.state_dict())
    y2, s2 = m_explicit(x, state)
    assert_identical(y, y2, f"y with {given} and with {explicit[-1]}")
    assert_identical(s, s2, f"state with {given} and with {explicit[-1]}")
    alpha, beta = DEFAULT_ALPHA_BETA[name]
    got = m.activations[0][-1]
    assert got[0] == name
    assert got[1] == pytest.approx(0.7 if form == "alpha_only" else alpha, rel=1e-6)
    if PARAMETERS[name] == 2:
        assert got[2] == pytest.approx(beta, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", KINDS)
def test_random_configurations_with_every_option_match_the_reference(kind, seed):
    rng = rng_for("random options", kind, seed)
    cfg = random_option_config(kind, rng)
    m = build(kind, cfg, rng, seed=seed)
    T = int(rng.integers(1, 13))
    B = None if rng.random() < 0.15 else int(rng.integers(1, 5))
    x = random_layout_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if rng.random() < 0.6 else None
    lengths = random_lengths(rng, T, B) if B is not None and rng.random() < 0.5 else None
    y, _ = assert_forward_matches(m, kind, cfg, x, state, lengths, what=f"for {cfg}, T={T}, B={B}, lengths={lengths}")
    assert y.shape == output_shape(kind, cfg, T, B)


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_models_take_functions_per_direction_in_either_form(kind):
    rng = rng_for("per direction", kind)
    n = COUNT[kind]
    forward = [random_entry(rng, name, how="full") for name in ("HardSigmoid", "Softsign", "Elu")[:n]]
    reverse = [random_entry(rng, name, how="full") for name in ("Sigmoid", "ScaledTanh", "Affine")[:n]]
    cfg = dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=True, clip=1.5)
    x, state = random_layout_input(rng, cfg, 8, 3), random_state(rng, kind, cfg, 3)
    outputs = []
    for spec in ([forward, reverse], forward + reverse):
        c = dict(cfg, activations=spec)
        m = build(kind, c, rng_for("per direction weights", kind), seed=4)
        outputs.append(assert_forward_matches(m, kind, c, x, state, np.array([8, 3, 6]), what=f"with {spec}"))
        want = tuple(tuple(canonical_entry(e)[0] for e in d) for d in (forward, reverse))
        assert tuple(tuple(e[0] for e in d) for d in m.activations) == want
    assert_identical(outputs[0][0], outputs[1][0], "y of the two forms")
    # the directions really differ: forward's functions on both give other outputs
    c = dict(cfg, activations=forward)
    m = build(kind, c, rng_for("per direction weights", kind), seed=4)
    y_same, _ = m(x, state, lengths=np.array([8, 3, 6]))
    assert np.abs(y_same - outputs[0][0]).max() > 1e-3


def _assert_functions_read_back(got, expected_per_direction):
    assert isinstance(got, tuple) and len(got) == len(expected_per_direction), f"activations read back {got!r}"
    for d, (g, e) in enumerate(zip(got, expected_per_direction)):
        assert isinstance(g, tuple) and len(g) == len(e), f"direction {d}: {g!r} for {e!r}"
        for gi, (name, alpha, beta) in zip(g, e):
            assert len(gi) == 3 and gi[0] == name, f"direction {d}: {gi!r} for {(name, alpha, beta)!r}"
            if PARAMETERS.get(name, 0) >= 1:
                assert gi[1] == pytest.approx(alpha, rel=1e-6), f"alpha of {gi!r}"
            if PARAMETERS.get(name, 0) == 2:
                assert gi[2] == pytest.approx(beta, rel=1e-6, abs=1e-12), f"beta of {gi!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_options_read_back(kind):
    rng = rng_for("read back", kind)
    m = getattr(sr, kind)(3, 4)
    assert m.clip is None and m.activations is None
    if kind == "LSTM":
        assert m.peepholes is False and m.input_forget is False
    default = default_functions(kind, {})
    assert getattr(sr, kind)(3, 4, activations=[f.lower() for f in default]).activations is None, \
        "the default functions, given, read back as None"
    assert getattr(sr, kind)(3, 4, bidirectional=True, activations=default + [f.upper() for f in default]) \
        .activations is None
    extra = dict(peepholes=True, input_forget=True) if kind == "LSTM" else {}
    for bidirectional in (False, True):
        cfg = dict(input_size=3, hidden_size=4, bidirectional=bidirectional, clip=0.25,
                   activations=random_activations(kind, rng, 2 if bidirectional else 1), **extra)
        m = make_sr(kind, cfg)
        assert isinstance(m.clip, float) and m.clip == 0.25
        if kind == "LSTM":
            assert m.peepholes is True and m.input_forget is True
        _assert_functions_read_back(m.activations, functions_per_direction(kind, cfg))
    m = getattr(sr, kind)(3, 4, bidirectional=True, activations=["SOFTSIGN"] * COUNT[kind])
    _assert_functions_read_back(m.activations, [[("Softsign", 0.0, 0.0)] * COUNT[kind]] * 2)
    assert getattr(sr, kind)(3, 4, clip=2).clip == 2.0


def test_function_names_are_case_insensitive():
    rng = rng_for("case")
    x = randn(rng, 6, 2, 3)
    outputs = []
    for names in (["Relu", "Softsign", "LeakyRelu"], ["relu", "softsign", "leakyrelu"],
                  ["RELU", "SOFTSIGN", "LEAKYRELU"], ["rElU", "SoFtSiGn", "lEaKyReLu"]):
        m = sr.LSTM(3, 4, activations=names, seed=5)
        assert tuple(f[0] for f in m.activations[0]) == ("Relu", "Softsign", "LeakyRelu")
        outputs.append(m(x)[0])
    for y in outputs[1:]:
        assert_identical(y, outputs[0], "y")


@pytest.mark.parametrize("kind", KINDS)
def test_default_options_keep_todays_numbers_exactly(kind):
    rng = rng_for("defaults exactly", kind)
    cfg = dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True)
    extra = dict(peepholes=False, input_forget=False) if kind == "LSTM" else {}
    plain = make_sr(kind, cfg, seed=6)
    given = make_sr(kind, cfg, seed=6, clip=None, activations=None, **extra)
    named = make_sr(kind, cfg, seed=6, activations=default_functions(kind, {}))
    x, dy = randn(rng, 7, 3, 4), randn(rng, 7, 3, 10)
    results = []
    for m in (plain, given, named):
        assert sorted(m.state_dict()) == sorted(plain.state_dict())
        m.zero_grad()
        y, s = m(x, train=True)
        dx, ds = m.backward(dy)
        results.append((y, s, dx, ds, m.grads()))
    for y, s, dx, ds, g in results[1:]:
        assert_identical(y, results[0][0], "y")
        assert_identical(s, results[0][1], "state")
        assert_identical(dx, results[0][2], "dx")
        assert_identical(ds, results[0][3], "dstate0")
        for k in g:
            assert_identical(g[k], results[0][4][k], k)


# ------------------------------------------------------------------------------------------------
# Streams

STREAM_VARIANTS = {
    "LSTM-all": ("LSTM", dict(peepholes=True, input_forget=True, clip=0.8, activations=LSTM_FUNCTIONS)),
    "LSTM-peepholes-proj": ("LSTM", dict(peepholes=True, proj_size=3, clip=1.2,
                                         activations=["Sigmoid", ("Affine", 0.8, 0.1), "Softplus"])),
    "GRU": ("GRU", dict(clip=0.6, activations=GRU_FUNCTIONS)),
    "GRU-reset_before": ("GRU", dict(reset_after=False, clip=0.6, activations=["HardSigmoid", "Elu"])),
    "RNN": ("RNN", dict(clip=0.6, activations=[("ScaledTanh", 1.3, 0.7)])),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("variant", list(STREAM_VARIANTS))
def test_streaming_with_options_equals_the_whole_sequence(variant, seed):
    rng = rng_for("stream", variant, seed)
    kind, opts = STREAM_VARIANTS[variant]
    cfg = dict(input_size=4, hidden_size=6, num_layers=int(rng.integers(1, 4)), residual=bool(rng.random() < 0.5),
               batch_first=bool(rng.random() < 0.5), **opts)
    m = build(kind, cfg, rng, seed=seed)
    B = int(rng.integers(1, 4))
    unbatched = B == 1 and rng.random() < 0.5
    T = 12
    x = random_layout_input(rng, cfg, T, None if unbatched else B)
    state = random_state(rng, kind, cfg, None if unbatched else B)
    y_ref, s_ref = m(x, state)
    assert_forward_matches(m, kind, cfg, x, state, what="whole sequence")
    s = m.stream(batch=B)
    s.state = state if not unbatched else (tuple(v[:, None] for v in state) if kind == "LSTM" else state[:, None])
    sizes = []
    while sum(sizes) < T:
        sizes.append(int(min(rng.integers(1, 5), T - sum(sizes))))
    y = feed_stream(s, x, sizes, rng, cfg["batch_first"], unbatched)
    assert_scaled_close(y, y_ref, what=f"streamed y in chunks {sizes}")
    expected_state = (tuple(v[:, None] for v in s_ref) if kind == "LSTM" else s_ref[:, None]) if unbatched else s_ref
    assert_scaled_close(s.state, expected_state, what="stream state")


def test_a_stream_of_a_model_loaded_from_a_file_keeps_the_options(tmp_path):
    rng = rng_for("stream file")
    kind, opts = STREAM_VARIANTS["LSTM-all"]
    cfg = dict(input_size=4, hidden_size=6, num_layers=2, **opts)
    m = build(kind, cfg, rng)
    m.save(tmp_path / "m.safetensors")
    loaded = sr.load(tmp_path / "m.safetensors")
    x = randn(rng, 10, 2, 4)
    assert_identical(loaded.stream(batch=2).process(x), m.stream(batch=2).process(x), "stream output")


# ------------------------------------------------------------------------------------------------
# Training: backward against autograd through the reference, central differences, zero gradients


def _training_case(kind, cfg, rng, T, B, lengths=None, with_dstate=True):
    x = random_layout_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B)
    dy = randn(rng, *output_shape(kind, cfg, T, B))
    dstate = random_state(rng, kind, cfg, B, scale=1.0) if with_dstate else None
    return x, state, dy, dstate


@pytest.mark.parametrize("kind,opts", OPTION_CASES)
def test_backward_of_each_option_matches_autograd_through_the_reference(kind, opts):
    rng = rng_for("backward options", kind, repr(opts))
    cfg = _case_config(kind, opts)
    m = build(kind, cfg, rng, seed=3)
    x, state, dy, dstate = _training_case(kind, cfg, rng, 8, 3)
    lengths = np.array([8, 2, 5])
    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    ref = reference_gradients(kind, cfg, m.state_dict(), x, state, dy, dstate, lengths)
    assert_gradients_match(ours, ref, f"for {cfg}")
    if cfg.get("peepholes"):
        assert any(k.startswith("weight_peephole") for k in ours["grads"])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", KINDS)
def test_backward_on_random_configurations_matches_autograd_through_the_reference(kind, seed):
    rng = rng_for("backward random", kind, seed)
    cfg = random_option_config(kind, rng)
    m = build(kind, cfg, rng, seed=seed)
    T = int(rng.integers(1, 11))
    B = None if rng.random() < 0.15 else int(rng.integers(1, 4))
    lengths = random_lengths(rng, T, B) if B is not None and rng.random() < 0.5 else None
    x, state, dy, dstate = _training_case(kind, cfg, rng, T, B, with_dstate=bool(rng.random() < 0.7))
    if rng.random() < 0.3:
        state = None
    ours = sr_gradients(m, x, state, dy, dstate, lengths)
    ref = reference_gradients(kind, cfg, m.state_dict(), x, state, dy, dstate, lengths)
    assert ours["dx"].shape == x.shape
    assert_gradients_match(ours, ref, f"for {cfg}, T={T}, B={B}, lengths={lengths}")


FD_CASES = {
    "LSTM": dict(peepholes=True, clip=0.7, activations=["Sigmoid", ("ScaledTanh", 1.1, 0.9), "Softplus"]),
    "GRU": dict(clip=0.5, reset_after=False, activations=["Sigmoid", "Softsign"]),
    "RNN": dict(clip=0.5, activations=[("ScaledTanh", 1.2, 1.1)]),
}
FD_EPS = 1e-3
"""Step of the central differences. The loss (~100 O(1) float32 terms) carries a float32 rounding
of about 1e-6, i.e. ~5e-4 in a difference quotient over 2e-3; the truncation error is ~eps^2."""
FD_RTOL = 1e-2


def _loss(y, s, dy, dstate):
    loss = float(np.sum(np.asarray(y, np.float64) * dy))
    for v, d in zip(_as_tuple(s), _as_tuple(dstate)):
        loss += float(np.sum(np.asarray(v, np.float64) * d))
    return loss


@pytest.mark.parametrize("kind", KINDS)
def test_central_differences_of_the_loss_agree_with_backward_where_clip_clips(kind):
    rng = rng_for("finite differences", kind)
    cfg = dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True, **FD_CASES[kind])
    m = build(kind, cfg, rng, seed=8)
    weights = m.state_dict()
    x, state, dy, dstate = _training_case(kind, cfg, rng, 8, 3)
    trace = Trace()
    reference_forward(kind, cfg, weights, x, state, trace=trace)
    assert 0.05 * trace.values < trace.clipped < 0.95 * trace.values, \
        f"clip should clip some of the pre-activations: {trace.clipped} of {trace.values}"
    ours = sr_gradients(m, x, state, dy, dstate)
    ref = reference_gradients(kind, cfg, weights, x, state, dy, dstate)
    names = [k for k in weights if k.startswith(("weight_peephole", "weight_hh_l1", "weight_ih_l0_reverse",
                                                  "bias_ih_l0"))]
    assert names
    for name in names:
        g = ours["grads"][name]
        idx = np.unravel_index(int(np.argmax(np.abs(g))), g.shape)
        assert abs(g[idx]) > 0.05, f"{name}: the largest gradient {g[idx]:.3g} is too small to check"
        losses, ref_losses, steps = [], [], []
        for sign in (1, -1):
            w = {k: v.copy() for k, v in weights.items()}
            w[name][idx] = np.float32(weights[name][idx] + sign * FD_EPS)
            steps.append(float(w[name][idx]))
            m.load_state_dict(w)
            losses.append(_loss(*m(x, state), dy, dstate))
            ref_losses.append(_loss(*reference_forward(kind, cfg, w, x, state), dy, dstate))
        m.load_state_dict(weights)
        h = steps[0] - steps[1]
        fd, fd_ref = (losses[0] - losses[1]) / h, (ref_losses[0] - ref_losses[1]) / h
        # the step crosses no kink of clip: the reference's own quotient is its autograd gradient
        assert abs(fd_ref - ref["grads"][name][idx]) <= 1e-4 * max(1.0, abs(fd_ref)), \
            f"{name}{idx}: test setup: the reference's quotient {fd_ref} != its gradient {ref['grads'][name][idx]}"
        assert abs(fd - g[idx]) <= FD_RTOL * abs(g[idx]), \
            f"{name}{idx}: central difference {fd:.6g} != backward {g[idx]:.6g}"


@pytest.mark.parametrize("bidirectional", [False, True])
def test_input_forget_gives_the_forget_gate_weights_zero_gradients(bidirectional):
    rng = rng_for("input_forget zero", bidirectional)
    cfg = dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=bidirectional, peepholes=True,
               input_forget=True, clip=1.0)
    m = build("LSTM", cfg, rng, seed=9)
    x, state, dy, dstate = _training_case("LSTM", cfg, rng, 7, 3)
    grads = sr_gradients(m, x, state, dy, dstate)["grads"]
    H = 5
    for k, g in grads.items():
        rows = slice(1, 2) if k.startswith("weight_peephole") else slice(H, 2 * H)
        assert np.all(g[rows] == 0.0), f"{k}: the forget gate's rows have gradients {np.abs(g[rows]).max():.3g}"
        others = np.delete(g, np.arange(g.shape[0])[rows], axis=0)
        assert np.abs(others).max() > 1e-3, f"{k}: the other rows should have gradients"


@pytest.mark.parametrize("kind", KINDS)
def test_pre_activations_that_are_all_clipped_pass_no_gradient_to_weights_or_inputs(kind):
    rng = rng_for("all clipped", kind)
    extra = dict(peepholes=True) if kind == "LSTM" else {}
    cfg = dict(input_size=4, hidden_size=5, clip=1e-3, **extra)
    m = make_sr(kind, cfg, seed=10)
    w = {k: (v * 10).astype(np.float32) for k, v in m.state_dict().items()}
    m.load_state_dict(w)
    x, state, dy, dstate = _training_case(kind, cfg, rng, 6, 2)
    x = x * 10
    trace = Trace()
    reference_forward(kind, cfg, w, x, state, trace=trace)
    assert trace.clipped == trace.values, f"test setup: {trace.values - trace.clipped} values not clipped"
    ours = sr_gradients(m, x, state, dy, dstate)
    assert np.all(ours["dx"] == 0.0), f"dx: {np.abs(ours['dx']).max():.3g}"
    for k, g in ours["grads"].items():
        assert np.all(g == 0.0), f"{k}: {np.abs(g).max():.3g}"
    ref = reference_gradients(kind, cfg, w, x, state, dy, dstate)
    assert_scaled_close(ours["dstate0"], ref["dstate0"], GRAD_ATOL, "dstate0", unit=10.0)


# ------------------------------------------------------------------------------------------------
# Weights and files


def test_state_dict_and_grads_have_peephole_tensors_of_shape_3_by_hidden_and_load_round_trips():
    rng = rng_for("peephole tensors")
    cfg = dict(input_size=3, hidden_size=6, num_layers=2, bidirectional=True, proj_size=4, peepholes=True)
    m = make_sr("LSTM", cfg, seed=1)
    sd = m.state_dict()
    want = {f"weight_peephole_l{k}{s}" for k in range(2) for s in ("", "_reverse")}
    assert want <= set(sd), f"peephole tensors missing: {sorted(want - set(sd))}"
    plain = make_sr("LSTM", dict(cfg, peepholes=False), seed=1).state_dict()
    assert set(sd) - set(plain) == want
    for k in want:
        assert sd[k].shape == (3, 6) and sd[k].dtype == np.float32, f"{k}: {sd[k].shape} {sd[k].dtype}"
    new = {k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32) for k, v in sd.items()}
    m.load_state_dict(new)
    back = m.state_dict()
    for k in new:
        assert_identical(back[k], new[k], k)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()})
    x = randn(rng, 5, 2, 3)
    assert_forward_matches(m, "LSTM", cfg, x, what="after load_state_dict")
    m.zero_grad()
    m(x, train=True)
    m.backward(randn(rng, 5, 2, 8))
    grads = m.grads()
    assert set(grads) == set(sd)
    for k in want:
        assert grads[k].shape == (3, 6) and np.abs(grads[k]).max() > 0, k


SAVE_CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True, peepholes=True, input_forget=True, clip=0.9,
                  activations=[LSTM_FUNCTIONS, ["Sigmoid", ("LeakyRelu", 0.3), "Tanh"]])),
    ("LSTM", dict(proj_size=3, peepholes=True, activations=["HardSigmoid", "Tanh", ("ThresholdedRelu", 0.1)])),
    ("GRU", dict(num_layers=2, reset_after=False, clip=0.4, activations=GRU_FUNCTIONS)),
    ("RNN", dict(bidirectional=True, clip=2.5, activations=["Softsign", ("Affine", 0.5, 0.25)])),
]


@pytest.mark.parametrize("kind,opts", SAVE_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SAVE_CASES)])
def test_save_and_load_keep_the_options_and_the_outputs(kind, opts, tmp_path):
    rng = rng_for("save", kind, repr(opts))
    cfg = dict(input_size=4, hidden_size=5, **opts)
    m = build(kind, cfg, rng, seed=2)
    path = tmp_path / "options.safetensors"
    m.save(path)
    loaded = sr.load(path)
    assert type(loaded) is type(m)
    assert loaded.clip == m.clip and loaded.activations == m.activations
    if kind == "LSTM":
        assert loaded.peepholes == m.peepholes and loaded.input_forget == m.input_forget
    sd, sd2 = m.state_dict(), loaded.state_dict()
    assert sorted(sd2) == sorted(sd)
    for k in sd:
        assert_identical(sd2[k], sd[k], k)
    x = random_layout_input(rng, cfg, 7, 3)
    assert_identical(loaded(x), m(x), "outputs")
    assert_forward_matches(loaded, kind, cfg, x, what="of the loaded model")


# ------------------------------------------------------------------------------------------------
# Argument errors

ERRORS = (ValueError, TypeError)


def _refused(kind, match, **kwargs):
    with pytest.raises(ERRORS) as e:
        getattr(sr, kind)(3, 4, **kwargs)
    assert_message_names(e, match)
    return e


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_function_name_is_refused_naming_activations(kind):
    fns = default_functions(kind, {})
    for bad in ("Swish", "", "tanhh", "Sigmoid "):
        spec = list(fns)
        spec[-1] = bad
        _refused(kind, "activations", activations=spec)
        spec[-1] = (bad, 1.0)
        _refused(kind, "activations", activations=spec)


def _wrong_counts(kind):
    n, fn = COUNT[kind], default_functions(kind, {})[0]
    yield "empty", dict(activations=[])
    yield "one_more", dict(activations=[fn] * (n + 1))
    if n > 1:
        yield "one_fewer", dict(activations=[fn] * (n - 1))
    yield "two_directions_for_one", dict(activations=[[fn] * n, [fn] * n])
    if n > 1:
        yield "2n_for_one_direction", dict(activations=[fn] * (2 * n))
    yield "three_lists_bidirectional", dict(bidirectional=True, activations=[[fn] * n] * 3)
    if n > 1:  # n + 1 = 2n for an RNN: a valid flat list
        yield "n_plus_one_bidirectional", dict(bidirectional=True, activations=[fn] * (n + 1))
    yield "2n_plus_one_bidirectional", dict(bidirectional=True, activations=[fn] * (2 * n + 1))
    yield "lists_of_wrong_length_bidirectional", dict(bidirectional=True, activations=[[fn] * n, [fn] * (n + 1)])


def _count_cases():
    for kind in KINDS:
        for name, kwargs in _wrong_counts(kind):
            yield pytest.param(kind, kwargs, id=f"{kind}-{name}")


@pytest.mark.parametrize("kind,kwargs", list(_count_cases()))
def test_the_wrong_number_of_functions_is_refused_naming_activations(kind, kwargs):
    _refused(kind, "activations", **kwargs)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, -1e-9, "1.0", [1.0], (1.0,), {"clip": 1.0}],
                         ids=["0", "0.0", "-1", "tiny-negative", "str", "list", "tuple", "dict"])
@pytest.mark.parametrize("kind", KINDS)
def test_clip_that_is_not_a_positive_number_is_refused_naming_clip(kind, bad):
    _refused(kind, "clip", clip=bad)


@pytest.mark.parametrize("keyword", ["peepholes", "input_forget"])
@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_peepholes_and_input_forget_do_not_exist_outside_the_lstm(kind, keyword):
    with pytest.raises(TypeError):
        getattr(sr, kind)(3, 4, **{keyword: True})
    with pytest.raises(TypeError):
        getattr(sr, kind)(3, 4, **{keyword: False})


@pytest.mark.parametrize("entry", [("LeakyRelu", "a"), ("Affine", 1.0, "b"), ("Elu", [1.0]),
                                   ("ScaledTanh", object(), 1.0), ("ThresholdedRelu", {"alpha": 1.0})],
                         ids=["LeakyRelu-str", "Affine-beta-str", "Elu-list", "ScaledTanh-object", "ThresholdedRelu-dict"])
@pytest.mark.parametrize("kind", KINDS)
def test_alpha_or_beta_that_is_not_a_number_is_refused_naming_activations(kind, entry):
    fns = default_functions(kind, {})
    fns[0] = entry
    _refused(kind, "activations", activations=fns)


def test_activations_that_are_not_a_list_of_entries_are_refused():
    for bad in ("Tanh", 3, [3, "Tanh", "Tanh"], [("Tanh", 1.0, 2.0, 3.0), "Tanh", "Tanh"], [None, "Tanh", "Tanh"]):
        _refused("LSTM", "activations", activations=bad)


def test_refused_calls_on_a_model_with_options_change_nothing():
    rng = rng_for("refused")
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, peepholes=True, input_forget=True, clip=0.7,
               activations=LSTM_FUNCTIONS)
    m = build("LSTM", cfg, rng, seed=1)
    sd = m.state_dict()
    x = randn(rng, 6, 2, 3)
    y0, s0 = m(x)
    bad_shape = dict(sd, weight_peephole_l1=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError) as e:
        m.load_state_dict(bad_shape)
    assert_message_names(e, "weight_peephole_l1", (3, 5))
    missing = {k: v for k, v in sd.items() if k != "weight_peephole_l0"}
    with pytest.raises(ValueError) as e:
        m.load_state_dict({k: v * 2 for k, v in missing.items()})
    assert_message_names(e, "weight_peephole_l0")
    unknown = dict({k: v * 2 for k, v in sd.items()}, weight_peephole_l2=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError) as e:
        m.load_state_dict(unknown)
    assert_message_names(e, "weight_peephole_l2")
    for k, v in m.state_dict().items():
        assert_identical(v, sd[k], k)
    y1, s1 = m(x)
    assert_identical(y1, y0, "y after refused loads")
    assert_identical(s1, s0, "state after refused loads")
    # peephole tensors are refused by a model without them
    plain = make_sr("LSTM", dict(cfg, peepholes=False), seed=1)
    plain_sd = plain.state_dict()
    with pytest.raises(ValueError) as e:
        plain.load_state_dict(dict(plain_sd, weight_peephole_l0=np.zeros((3, 4), np.float32)))
    assert_message_names(e, "weight_peephole_l0")
    for k, v in plain.state_dict().items():
        assert_identical(v, plain_sd[k], k)
    # a refused step leaves the stream's state, a refused backward the gradients
    s = m.stream(batch=2)
    s.process(x[:3])
    before = s.state
    with pytest.raises(ValueError):
        s.step(np.zeros((2, 5), np.float32))
    assert_identical(s.state, before, "stream state after a refused step")
    m.zero_grad()
    m(x, train=True)
    m.backward(randn(rng, 6, 2, 4))
    grads = m.grads()
    m(x, train=True)
    with pytest.raises(ValueError):
        m.backward(np.zeros((6, 2, 5), np.float32))
    for k, g in m.grads().items():
        assert_identical(g, grads[k], f"grads[{k}] after a refused backward")
