# tests/test_cells.py
# LSTMCell, GRUCell and RNNCell against torch.nn.*Cell and a NumPy GRU cell.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (KINDS, TORCH_CELL, assert_close, assert_float32, assert_identical, numpy_gru_cell,
                      randn, rng_for, to_numpy)

CELL = {"LSTM": "LSTMCell", "GRU": "GRUCell", "RNN": "RNNCell"}


def _torch_cell(kind, I, H, bias=True, nonlinearity="tanh", seed=0):
    torch.manual_seed(seed)
    if kind == "RNN":
        return torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity)
    return TORCH_CELL[kind](I, H, bias=bias)


def _torch_step(cell, x, state):
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if state is None:
            out = cell(xt)
        elif isinstance(state, tuple):
            out = cell(xt, tuple(torch.from_numpy(s) for s in state))
        else:
            out = cell(xt, torch.from_numpy(state))
    return to_numpy(out)


def _random_state(kind, rng, batch, H):
    if kind == "LSTM":
        return (randn(rng, *batch, H, scale=0.5), randn(rng, *batch, H, scale=0.5))
    return randn(rng, *batch, H, scale=0.5)


CASES = [
    pytest.param(kind, bias, nl, id=f"{kind}-{'bias' if bias else 'nobias'}" + (f"-{nl}" if kind == "RNN" else ""))
    for kind in KINDS for bias in (True, False) for nl in (("tanh", "relu") if kind == "RNN" else ("tanh",))
]


@pytest.mark.parametrize("how", ["from_torch", "load_state_dict"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("initial", ["state_none", "state_given"])
@pytest.mark.parametrize("kind,bias,nonlinearity", CASES)
def test_cell_matches_torch(kind, bias, nonlinearity, initial, batched, how):
    rng = rng_for("cell", kind, bias, nonlinearity, initial, batched, how)
    I, H, B = 5, 7, 3
    tcell = _torch_cell(kind, I, H, bias, nonlinearity, seed=1)
    if how == "from_torch":
        cell = sr.from_torch(tcell)
    else:
        kwargs = {"nonlinearity": nonlinearity} if kind == "RNN" else {}
        cell = getattr(sr, CELL[kind])(I, H, bias, **kwargs)
        cell.load_state_dict(tcell.state_dict())
    assert type(cell).__name__ == CELL[kind]
    batch = (B,) if batched else ()
    x = randn(rng, *batch, I)
    state = _random_state(kind, rng, batch, H) if initial == "state_given" else None

    out = cell(x, state)
    ref = _torch_step(tcell, x, state)
    assert_float32(out)
    assert_close(out, ref)

    # a few steps, feeding the state back
    for _ in range(4):
        x = randn(rng, *batch, I)
        out = cell(x, out)
        ref = _torch_step(tcell, x, ref)
        assert_close(out, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_state_may_be_passed_by_keyword(kind):
    rng = rng_for("kw", kind)
    cell = getattr(sr, CELL[kind])(3, 4)
    x = randn(rng, 2, 3)
    state = _random_state(kind, rng, (2,), 4)
    assert_identical(cell(x, state=state), cell(x, state), "keyword vs positional")
    zeros = (np.zeros((2, 4), np.float32),) * 2 if kind == "LSTM" else np.zeros((2, 4), np.float32)
    assert_identical(cell(x), cell(x, zeros), "None means zeros")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_gru_cell_without_reset_after_matches_the_cho_equations(batched, bias):
    rng = rng_for("cho cell", batched, bias)
    cell = sr.GRUCell(4, 6, bias, reset_after=False)
    assert cell.reset_after is False
    w = cell.state_dict()
    h = np.zeros((3, 6), np.float32) if batched else np.zeros(6, np.float32)
    ref = h.astype(np.float64)
    state = None
    for _ in range(5):
        x = randn(rng, 3, 4) if batched else randn(rng, 4)
        state = cell(x, state)
        ref = numpy_gru_cell(np.atleast_2d(x), np.atleast_2d(ref), w, bias=bias, reset_after=False)
        ref = ref if batched else ref[0]
        assert state.shape == ((3, 6) if batched else (6,))
        assert_close(state, ref)


def test_gru_cell_reset_after_flag_is_used():
    rng = rng_for("cell flag")
    a = sr.GRUCell(3, 5)
    b = sr.GRUCell(3, 5, reset_after=False)
    b.load_state_dict(a.state_dict())
    x, h = randn(rng, 2, 3), randn(rng, 2, 5)
    assert np.max(np.abs(a(x, h) - b(x, h))) > 1e-4


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_state_dict_has_torchs_names_and_shapes(kind, bias):
    tcell = _torch_cell(kind, 3, 4, bias)
    cell = getattr(sr, CELL[kind])(3, 4, bias)
    d = cell.state_dict()
    ref = tcell.state_dict()
    assert list(d) == list(ref)
    for k in ref:
        assert d[k].shape == tuple(ref[k].shape), k
        assert d[k].dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_cell_attributes(kind):
    kwargs = {"RNN": {"nonlinearity": "relu"}, "GRU": {"reset_after": False}, "LSTM": {}}[kind]
    cell = getattr(sr, CELL[kind])(3, 4, False, **kwargs)
    assert (cell.input_size, cell.hidden_size, cell.bias) == (3, 4, False)
    for k, v in kwargs.items():
        assert getattr(cell, k) == v
    default = getattr(sr, CELL[kind])(3, 4)
    assert default.bias is True
    if kind == "RNN":
        assert default.nonlinearity == "tanh"
    if kind == "GRU":
        assert default.reset_after is True


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_copies_a_cells_architecture(kind):
    tcell = _torch_cell(kind, 3, 5, bias=False, nonlinearity="relu")
    cell = sr.from_torch(tcell)
    assert type(cell).__name__ == CELL[kind]
    assert (cell.input_size, cell.hidden_size, cell.bias) == (3, 5, False)
    if kind == "RNN":
        assert cell.nonlinearity == "relu"
    if kind == "GRU":
        assert cell.reset_after is True
    for k, v in tcell.state_dict().items():
        assert_identical(cell.state_dict()[k], to_numpy(v), k)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_save_and_load_round_trip(kind, tmp_path):
    rng = rng_for("cell save", kind)
    kwargs = {"RNN": {"nonlinearity": "relu"}, "GRU": {"reset_after": False}, "LSTM": {}}[kind]
    cell = getattr(sr, CELL[kind])(3, 4, **kwargs)
    path = tmp_path / "cell.safetensors"
    cell.save(path)
    loaded = sr.load(str(path))
    assert type(loaded) is type(cell)
    assert (loaded.input_size, loaded.hidden_size, loaded.bias) == (3, 4, True)
    for k, v in kwargs.items():
        assert getattr(loaded, k) == v
    for k, v in cell.state_dict().items():
        assert_identical(loaded.state_dict()[k], v, k)
    x = randn(rng, 2, 3)
    assert_identical(loaded(x), cell(x), "output")


@pytest.mark.parametrize("kind", KINDS)
def test_cell_does_not_modify_its_inputs(kind):
    rng = rng_for("cell inputs", kind)
    cell = getattr(sr, CELL[kind])(3, 4)
    x = randn(rng, 2, 3)
    state = _random_state(kind, rng, (2,), 4)
    x0 = x.copy()
    s0 = tuple(s.copy() for s in state) if kind == "LSTM" else state.copy()
    cell(x, state)
    assert_identical(x, x0, "x")
    assert_identical(state, s0, "state")


@pytest.mark.parametrize("kind", KINDS)
def test_cell_accepts_any_array_like_input(kind):
    rng = rng_for("cell forms", kind)
    cell = getattr(sr, CELL[kind])(3, 4)
    x = randn(rng, 2, 3)
    state = _random_state(kind, rng, (2,), 4)
    ref = cell(x, state)
    assert_identical(cell(x.tolist(), state), ref, "list")
    assert_identical(cell(x.astype(np.float64), state), ref, "float64")
    assert_identical(cell(np.asfortranarray(x), state), ref, "fortran order")
    assert_identical(cell(torch.from_numpy(x), state), ref, "torch")
