# tests/conftest.py
# Shared tolerances, random configurations and PyTorch/NumPy references for the Python tests.
# Part of streamrnn, MIT licence.
"""Helpers shared by the Python tests.

Tolerance (the one place it is set)
-----------------------------------
``ATOL = 1e-5`` is the largest absolute difference accepted between a streamrnn result and the
reference (PyTorch float32, or NumPy float64). Both sides compute in float32; each gate
pre-activation is a dot product of length <= ~100 (I + H <= 24 + 48), whose float32 rounding
error is a few 1e-7 for the O(1) values here. PyTorch (MKL/oneDNN) and Eigen sum in different
orders, so the two differ by that much per step. Those errors are carried through <= 12 steps
(<= ~200 in the long streaming tests, where the recurrence is contracting) and through tanh and
sigmoid, whose derivatives are <= 1, so they do not grow beyond a few 1e-6. 1e-5 leaves margin
without hiding a wrong gate, a wrong bias or a missed step (those give errors of 1e-2 or more).

The same tolerance is used when streamrnn is compared with itself along two different code paths
(streaming in chunks vs. the whole sequence, batch of one vs. batch of many), since those may
also sum in different orders. Where the contract promises identical results (the same data in a
different memory layout, save/load, untouched rows after reset(i)) the tests compare bit for bit.

``GRAD_ATOL = 2e-5`` is the same bound for gradients (BPTT: dx, dstate0 and weight gradients).
They sum more terms than a forward value: a weight's gradient adds one outer-product term per
step and row (T * B <= 48 here) and per direction, and reaches magnitudes of about 10 for the
random dy/dstate (unit normal) of the tests, so float32 rounding leaves a few ulps of that, i.e.
a few 1e-6 (the largest error measured over 600 random configurations with T <= 10, H <= 12,
B <= 4, 1-3 layers, against PyTorch float32 autograd: 3.8e-6). dx and dstate0 are O(1) and stay
below 1e-6. 2e-5 leaves a factor of five; a missed step, a wrong gate derivative or a wrong
dropout mask gives errors of 1e-2 or more. Against a float64 reference (the Cho GRU) only our
own float32 rounding is left, so the same bound holds there too.
"""
from __future__ import annotations

import math
import re
import zlib

import numpy as np
import pytest
import torch

import streamrnn as sr  # noqa: F401  (imported here so a broken build fails at collection)

ATOL = 1e-5
"""Max abs error accepted against a reference; see the module docstring for the reasoning."""

GRAD_ATOL = 2e-5
"""Max abs error accepted for a gradient (BPTT); see the module docstring for the reasoning."""

KINDS = ("LSTM", "GRU", "RNN")
TORCH_LAYER = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}
TORCH_CELL = {"LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell, "RNN": torch.nn.RNNCell}

torch.set_num_threads(1)


def pytest_configure(config):
    # torch notes that it falls back from oneDNN for projected LSTMs; that is not about streamrnn
    config.addinivalue_line("filterwarnings", "ignore:LSTM with projections is not supported with oneDNN")


# ------------------------------------------------------------------------------------------------
# Comparisons


def to_numpy(a):
    """A torch tensor, tuple or array as NumPy (tuples element-wise)."""
    if isinstance(a, tuple):
        return tuple(to_numpy(v) for v in a)
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def max_abs_error(actual, expected) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)))


def assert_close(actual, expected, atol: float = ATOL, what: str = "result") -> None:
    """Assert same shape and max abs error <= atol (NaN anywhere fails). Tuples element-wise."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple), f"{what}: expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: tuple length {len(actual)} != {len(expected)}"
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, atol, f"{what}[{k}]")
        return
    actual = to_numpy(actual)
    expected = to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    err = max_abs_error(actual, expected)
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:g}"


def assert_identical(actual, expected, what: str = "result") -> None:
    """Assert bit-for-bit equality (same shape, dtype, values; NaN equal to NaN). Tuples element-wise."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple), f"{what}: expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: tuple length {len(actual)} != {len(expected)}"
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_identical(a, e, f"{what}[{k}]")
        return
    actual = to_numpy(actual)
    expected = to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert np.array_equal(actual.view(np.uint32) if actual.dtype == np.float32 else actual,
                          expected.view(np.uint32) if expected.dtype == np.float32 else expected), \
        f"{what}: not bit-identical (max abs diff {max_abs_error(actual, expected):.3g})"


def assert_float32(*arrays) -> None:
    for a in arrays:
        if isinstance(a, tuple):
            assert_float32(*a)
            continue
        assert isinstance(a, np.ndarray), f"expected a numpy array, got {type(a).__name__}"
        assert a.dtype == np.float32, f"expected float32, got {a.dtype}"


def copy_state(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(np.array(s, copy=True) for s in state)
    return np.array(state, copy=True)


def shape_pattern(shape) -> str:
    """A regex matching the numbers of `shape` in order, however the message punctuates them."""
    return r"\D+".join(str(int(n)) for n in shape)


def assert_message_names(excinfo, argument: str, shape=None) -> None:
    """The error message names the argument (as a word) and, if given, the received shape."""
    msg = str(excinfo.value)
    assert re.search(rf"(?<![A-Za-z0-9_]){argument}(?![A-Za-z0-9_])", msg), \
        f"message does not name {argument!r}: {msg!r}"
    if shape is not None:
        assert re.search(shape_pattern(shape), msg), f"message does not give shape {tuple(shape)}: {msg!r}"


# ------------------------------------------------------------------------------------------------
# Random data and configurations


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from a test's parameters, so every case is reproducible."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, *shape, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def output_size(kind: str, cfg: dict) -> int:
    return cfg.get("proj_size", 0) or cfg["hidden_size"]


def directions(cfg: dict) -> int:
    return 2 if cfg.get("bidirectional", False) else 1


def random_config(kind: str, rng, *, allow_bidirectional=True, allow_proj=True) -> dict:
    """Random small constructor arguments (torch names) for a layer of `kind`."""
    hidden = int(rng.integers(1, 25))
    cfg = dict(
        input_size=int(rng.integers(1, 17)),
        hidden_size=hidden,
        num_layers=int(rng.integers(1, 4)),
        bias=bool(rng.random() < 0.75),
        batch_first=bool(rng.random() < 0.5),
        bidirectional=bool(allow_bidirectional and rng.random() < 0.5),
    )
    if kind == "LSTM" and allow_proj and hidden > 1 and rng.random() < 0.5:
        cfg["proj_size"] = int(rng.integers(1, hidden))
    if kind == "RNN":
        cfg["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    if cfg["num_layers"] > 1 and rng.random() < 0.3:
        cfg["dropout"] = 0.25
    return cfg


def make_torch(kind: str, cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    cfg = {k: v for k, v in cfg.items() if k not in ("residual", "reset_after", "seed")}
    if kind != "LSTM":
        cfg.pop("proj_size", None)
    if kind != "RNN":
        cfg.pop("nonlinearity", None)
    with _quiet_dropout_warning():
        module = TORCH_LAYER[kind](**cfg)
    module.eval()
    return module


def make_sr(kind: str, cfg: dict, **extra):
    """A streamrnn layer with these (torch-named) arguments."""
    args = dict(cfg)
    args.update(extra)
    input_size = args.pop("input_size")
    hidden_size = args.pop("hidden_size")
    num_layers = args.pop("num_layers", 1)
    return getattr(sr, kind)(input_size, hidden_size, num_layers, **args)


class _quiet_dropout_warning:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.filterwarnings("ignore", message=".*dropout.*")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def random_input(rng, cfg: dict, T: int, B: int | None) -> np.ndarray:
    """x in the layout the model expects: (T, B, I), (B, T, I) if batch_first, (T, I) if B is None."""
    I = cfg["input_size"]
    if B is None:
        return randn(rng, T, I)
    if cfg.get("batch_first", False):
        return randn(rng, B, T, I)
    return randn(rng, T, B, I)


def random_state(rng, kind: str, cfg: dict, B: int | None, scale: float = 0.5):
    """An initial state, torch layout; unbatched (no B axis) if B is None."""
    L = cfg.get("num_layers", 1) * directions(cfg)
    batch = () if B is None else (B,)
    h = randn(rng, L, *batch, output_size(kind, cfg), scale=scale)
    if kind == "LSTM":
        c = randn(rng, L, *batch, cfg["hidden_size"], scale=scale)
        return (h, c)
    return h


def zero_state(kind: str, cfg: dict, B: int | None):
    L = cfg.get("num_layers", 1) * directions(cfg)
    batch = () if B is None else (B,)
    h = np.zeros((L, *batch, output_size(kind, cfg)), np.float32)
    if kind == "LSTM":
        return (h, np.zeros((L, *batch, cfg["hidden_size"]), np.float32))
    return h


# ------------------------------------------------------------------------------------------------
# References


def _to_torch_state(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)) for s in state)
    return torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32))


def torch_forward(module, x, state=None, lengths=None):
    """Run a torch RNN module in eval mode; NumPy in, NumPy out, in the module's layout.

    With `lengths`, rows of length >= 1 go through pack_padded_sequence(enforce_sorted=False) and
    pad_packed_sequence(total_length=T); a row of length 0 (which torch cannot pack) gets zeros in
    y and its initial state back, as the streamrnn contract says.
    """
    bf = module.batch_first
    is_lstm = isinstance(module, torch.nn.LSTM)
    x = np.ascontiguousarray(x, dtype=np.float32)
    with torch.no_grad():
        if lengths is None:
            y, s = module(torch.from_numpy(x), _to_torch_state(state))
            return to_numpy(y).copy(), copy_state(to_numpy(s))
        lengths = np.asarray(lengths).astype(np.int64)
        assert x.ndim == 3, "lengths need batched input"
        xt = x.transpose(1, 0, 2) if bf else x  # time-major from here on
        T, B = xt.shape[:2]
        D = 2 if module.bidirectional else 1
        H_out = module.proj_size if (is_lstm and module.proj_size > 0) else module.hidden_size
        L = module.num_layers * D
        y_out = np.zeros((T, B, D * H_out), np.float32)
        if state is None:
            h_out = np.zeros((L, B, H_out), np.float32)
            state_out = (h_out, np.zeros((L, B, module.hidden_size), np.float32)) if is_lstm else h_out
        else:
            state_out = copy_state(state)
        keep = np.nonzero(lengths > 0)[0]
        if keep.size:
            x_keep = torch.from_numpy(np.ascontiguousarray(xt[:, keep]))
            if state is None:
                st = None
            elif is_lstm:
                st = tuple(torch.from_numpy(np.ascontiguousarray(s[:, keep])) for s in state)
            else:
                st = torch.from_numpy(np.ascontiguousarray(state[:, keep]))
            if bf:
                x_keep = x_keep.transpose(0, 1)
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x_keep, torch.from_numpy(lengths[keep]), batch_first=bf, enforce_sorted=False)
            yp, sk = module(packed, st)
            yk, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, batch_first=bf, total_length=T)
            yk = to_numpy(yk)
            if bf:
                yk = yk.transpose(1, 0, 2)
            y_out[:, keep] = yk
            sk = to_numpy(sk)
            if is_lstm:
                state_out[0][:, keep] = sk[0]
                state_out[1][:, keep] = sk[1]
            else:
                state_out[:, keep] = sk
        if bf:
            y_out = np.ascontiguousarray(y_out.transpose(1, 0, 2))
        return y_out, state_out


def rename_layer(state_dict: dict, layer: int) -> dict:
    """weight_ih_l0[_reverse] -> weight_ih_l{layer}[_reverse]; values as NumPy copies."""
    out = {}
    for k, v in state_dict.items():
        out[re.sub(r"_l0(?=$|_reverse$)", f"_l{layer}", k)] = to_numpy(v).copy()
    return out


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_gru(x, weights: dict, *, num_layers: int, bidirectional: bool, bias: bool, reset_after: bool,
              residual: bool = False, h0=None, lengths=None):
    """An independent float64 GRU, time-major x (T, B, I) -> (y, h_n), masked like packed sequences.

    reset_after=False is Cho et al. (2014): n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
    reset_after=True is PyTorch's:          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    Residual: a layer whose input width equals its output width adds its input on valid steps.
    """
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = weights["weight_hh_l0"].shape[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    valid = (np.arange(T)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
    h_n = np.zeros((num_layers * D, B, H))
    inp = x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih = np.asarray(weights["weight_ih" + sfx], np.float64)
            w_hh = np.asarray(weights["weight_hh" + sfx], np.float64)
            b_ih = np.asarray(weights["bias_ih" + sfx], np.float64) if bias else np.zeros(3 * H)
            b_hh = np.asarray(weights["bias_hh" + sfx], np.float64) if bias else np.zeros(3 * H)
            h = np.zeros((B, H)) if h0 is None else np.asarray(h0[layer * D + d], np.float64).copy()
            y = np.zeros((T, B, H))
            steps = range(T - 1, -1, -1) if d else range(T)
            for t in steps:
                gi = inp[t] @ w_ih.T + b_ih
                r = _sigmoid(gi[:, :H] + h @ w_hh[:H].T + b_hh[:H])
                z = _sigmoid(gi[:, H:2 * H] + h @ w_hh[H:2 * H].T + b_hh[H:2 * H])
                if reset_after:
                    n = np.tanh(gi[:, 2 * H:] + r * (h @ w_hh[2 * H:].T + b_hh[2 * H:]))
                else:
                    n = np.tanh(gi[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
                h_new = (1.0 - z) * n + z * h
                h = np.where(valid[t], h_new, h)
                y[t] = np.where(valid[t], h_new, 0.0)
            h_n[layer * D + d] = h
            outs.append(y)
        out = np.concatenate(outs, axis=-1)
        if residual and out.shape[-1] == inp.shape[-1]:
            out = out + np.where(valid, inp, 0.0)
        inp = out
    return inp, h_n


def numpy_gru_cell(x, h, weights: dict, *, bias: bool, reset_after: bool):
    """One float64 GRU cell step with cell-style names (weight_ih, ...); x (B, I), h (B, H)."""
    w = {k + "_l0": v for k, v in weights.items()}
    y, _ = numpy_gru(np.asarray(x)[None], w, num_layers=1, bidirectional=False, bias=bias,
                     reset_after=reset_after, h0=np.asarray(h)[None])
    return y[0]


@pytest.fixture
def rng(request):
    """A generator seeded from the test's node id (reproducible, different per case)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def assert_all_within_init_bound(state_dict: dict, hidden_size: int) -> None:
    bound = 1.0 / math.sqrt(hidden_size)
    for k, v in state_dict.items():
        assert np.all(np.abs(v) <= bound * (1 + 1e-6)), f"{k}: values outside +-1/sqrt(H)"


def single_layer_modules(kind: str, cfg: dict, seed: int):
    """Single-layer torch modules (time-major) making up `cfg`'s stack, and their weights under our names."""
    D, H_out = directions(cfg), output_size(kind, cfg)
    layers, weights = [], {}
    for layer in range(cfg["num_layers"]):
        args = dict(input_size=cfg["input_size"] if layer == 0 else D * H_out, hidden_size=cfg["hidden_size"],
                    num_layers=1, bias=cfg.get("bias", True), bidirectional=cfg.get("bidirectional", False))
        if kind == "LSTM":
            args["proj_size"] = cfg.get("proj_size", 0)
        if kind == "RNN":
            args["nonlinearity"] = cfg.get("nonlinearity", "tanh")
        mod = make_torch(kind, args, seed * 10 + layer)
        layers.append(mod)
        weights.update(rename_layer(mod.state_dict(), layer))
    return layers, weights


def feed_stream(s, x, sizes, rng, batch_first, unbatched):
    """Feed x through the stream `s` in chunks of `sizes`, a single step as step() half the time;
    the outputs joined along time."""
    outs, t = [], 0
    time_major = unbatched or not batch_first
    for size in sizes:
        if size == 1 and rng.random() < 0.5:
            y_t = s.step(x[t] if time_major else x[:, t])
            assert_float32(y_t)
            outs.append(y_t[None] if time_major else y_t[:, None])
        else:
            y = s.process(x[t:t + size] if time_major else x[:, t:t + size])
            assert_float32(y)
            outs.append(y)
        t += size
    return np.concatenate(outs, axis=0 if time_major else 1)


def sr_gradients(m, x, state, dy, dstate=None, lengths=None):
    """A training forward of m, then backward, from zeroed gradients: y, state, dx, dstate0, grads."""
    m.zero_grad()
    y, s = m(x, state, lengths=lengths, train=True)
    dx, dstate0 = m.backward(dy, dstate)
    grads = m.grads()
    assert_float32(y, s, dx, dstate0, *grads.values())
    return dict(y=y, state=s, dx=dx, dstate0=dstate0, grads=grads)
