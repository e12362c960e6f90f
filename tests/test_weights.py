# tests/test_weights.py
# state_dict names and copies, load_state_dict, from_torch, initialisation, save/load and safetensors interop.
# Part of streamrnn, MIT licence.
import json
import pathlib

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import torch

import streamrnn as sr
from conftest import (KINDS, assert_all_within_init_bound, assert_identical, make_sr, make_torch, randn,
                      random_input, random_state, rng_for, to_numpy)

CONFIGS = [
    dict(input_size=3, hidden_size=4, num_layers=1),
    dict(input_size=3, hidden_size=4, num_layers=3),
    dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True),
    dict(input_size=3, hidden_size=4, num_layers=2, bias=False),
    dict(input_size=3, hidden_size=4, num_layers=2, bias=False, bidirectional=True),
]
PROJ_CONFIGS = [
    dict(input_size=3, hidden_size=5, num_layers=1, proj_size=2),
    dict(input_size=3, hidden_size=5, num_layers=2, proj_size=4, bidirectional=True),
    dict(input_size=3, hidden_size=5, num_layers=2, proj_size=3, bias=False),
]


def _cases():
    for kind in KINDS:
        for k, cfg in enumerate(CONFIGS):
            yield pytest.param(kind, cfg, id=f"{kind}-{k}")
    for k, cfg in enumerate(PROJ_CONFIGS):
        yield pytest.param("LSTM", cfg, id=f"LSTM-proj-{k}")


@pytest.mark.parametrize("kind,cfg", list(_cases()))
def test_state_dict_names_shapes_and_order_equal_torchs(kind, cfg):
    ref = make_torch(kind, cfg).state_dict()
    d = make_sr(kind, cfg, seed=0).state_dict()
    assert isinstance(d, dict)
    assert list(d) == list(ref)
    for k, v in ref.items():
        assert isinstance(d[k], np.ndarray), k
        assert d[k].dtype == np.float32, k
        assert d[k].shape == tuple(v.shape), k


@pytest.mark.parametrize("kind,cfg", list(_cases()))
def test_from_torch_and_load_state_dict_copy_torchs_weights_exactly(kind, cfg):
    module = make_torch(kind, cfg, seed=3)
    ref = {k: to_numpy(v) for k, v in module.state_dict().items()}
    a = sr.from_torch(module)
    b = make_sr(kind, cfg)
    b.load_state_dict(module.state_dict())
    for m in (a, b):
        d = m.state_dict()
        assert list(d) == list(ref)
        for k in ref:
            assert_identical(d[k], ref[k], k)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_values_are_copies(kind):
    rng = rng_for("copies", kind)
    m = getattr(sr, kind)(3, 4, 2, seed=1)
    x = randn(rng, 5, 2, 3)
    y0, _ = m(x)
    d0 = {k: v.copy() for k, v in m.state_dict().items()}
    d = m.state_dict()
    for v in d.values():
        v[...] = 123.0
    for k, v in m.state_dict().items():
        assert_identical(v, d0[k], k)
    assert_identical(m(x)[0], y0, "output after mutating the returned dict")


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_copies_its_input(kind):
    rng = rng_for("load copies", kind)
    src = getattr(sr, kind)(3, 4, seed=1)
    m = getattr(sr, kind)(3, 4, seed=2)
    d = src.state_dict()
    m.load_state_dict(d)
    x = randn(rng, 5, 2, 3)
    y0, _ = m(x)
    for v in d.values():
        v[...] = 5.0
    assert_identical(m(x)[0], y0, "output after mutating the loaded arrays")


@pytest.mark.parametrize("kind,cfg", list(_cases()))
def test_load_state_dict_round_trip_gives_identical_outputs(kind, cfg):
    rng = rng_for("round trip", kind, repr(cfg))
    a = make_sr(kind, cfg, seed=1)
    b = make_sr(kind, cfg, seed=2)
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        assert_identical(b.state_dict()[k], v, k)
    x = random_input(rng, cfg, 6, 2)
    s = random_state(rng, kind, cfg, 2)
    assert_identical(b(x, s), a(x, s), "outputs")


@pytest.mark.parametrize("form", ["torch_float32", "torch_float64", "numpy_float64", "torch_noncontiguous"])
@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_accepts_torch_tensors_and_converts_other_dtypes(kind, form):
    module = make_torch(kind, dict(input_size=3, hidden_size=4, num_layers=2), seed=5)
    sd = module.state_dict()
    if form == "torch_float64":
        sd = {k: v.double() for k, v in sd.items()}
    elif form == "numpy_float64":
        sd = {k: to_numpy(v).astype(np.float64) for k, v in sd.items()}
    elif form == "torch_noncontiguous":
        sd = {k: (v.t().contiguous().t() if v.ndim == 2 else v) for k, v in sd.items()}
    m = getattr(sr, kind)(3, 4, 2)
    m.load_state_dict(sd)
    for k, v in module.state_dict().items():
        assert_identical(m.state_dict()[k], to_numpy(v), k)


def test_from_torch_works_for_every_module_type():
    modules = [torch.nn.LSTM(2, 3), torch.nn.GRU(2, 3), torch.nn.RNN(2, 3), torch.nn.LSTMCell(2, 3),
               torch.nn.GRUCell(2, 3), torch.nn.RNNCell(2, 3)]
    for module in modules:
        m = sr.from_torch(module)
        assert type(m).__name__ == type(module).__name__
        ref = module.state_dict()
        assert list(m.state_dict()) == list(ref)
        for k, v in ref.items():
            assert_identical(m.state_dict()[k], to_numpy(v), k)


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_is_uniform_within_one_over_sqrt_hidden_size(kind):
    H = 9
    extra = {"proj_size": 4} if kind == "LSTM" else {}
    m = getattr(sr, kind)(5, H, 2, bidirectional=True, seed=0, **extra)
    d = m.state_dict()
    assert_all_within_init_bound(d, H)
    allv = np.concatenate([v.ravel() for v in d.values()])
    bound = 1 / np.sqrt(H)
    assert allv.max() > 0.8 * bound and allv.min() < -0.8 * bound, "values should span the range"
    assert abs(allv.mean()) < 0.1 * bound
    assert len(np.unique(allv)) > 0.9 * allv.size


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_seed_gives_the_same_weights_and_none_gives_fresh_ones(kind):
    a = getattr(sr, kind)(3, 4, 2, seed=42).state_dict()
    b = getattr(sr, kind)(3, 4, 2, seed=42).state_dict()
    c = getattr(sr, kind)(3, 4, 2, seed=43).state_dict()
    for k in a:
        assert_identical(a[k], b[k], k)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    d = getattr(sr, kind)(3, 4, 2).state_dict()
    e = getattr(sr, kind)(3, 4, 2).state_dict()
    assert any(not np.array_equal(d[k], e[k]) for k in d), "seed=None should not repeat weights"


# ------------------------------------------------------------------------------------------------
# save / load


SAVE_CASES = [
    ("LSTM", dict(input_size=3, hidden_size=5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True,
                  dropout=0.25)),
    ("LSTM", dict(input_size=4, hidden_size=4, num_layers=3, residual=True, bias=False)),
    ("GRU", dict(input_size=3, hidden_size=4, num_layers=2, reset_after=False, residual=True)),
    ("GRU", dict(input_size=3, hidden_size=4, num_layers=1, bidirectional=True)),
    ("RNN", dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu", batch_first=True)),
    ("RNN", dict(input_size=2, hidden_size=6, num_layers=1, bias=False)),
]
ATTRS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "residual")
KIND_ATTRS = {"LSTM": ("proj_size",), "GRU": ("reset_after",), "RNN": ("nonlinearity",)}


@pytest.mark.parametrize("path_type", [str, pathlib.Path])
@pytest.mark.parametrize("kind,cfg", SAVE_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SAVE_CASES)])
def test_save_and_load_round_trip_bit_for_bit(kind, cfg, path_type, tmp_path):
    rng = rng_for("save", kind, repr(cfg), path_type.__name__)
    m = make_sr(kind, cfg, seed=9)
    path = tmp_path / "model.safetensors"
    m.save(path_type(path))
    assert path.exists()
    loaded = sr.load(path_type(path))
    assert type(loaded) is type(m)
    for name in ATTRS + KIND_ATTRS[kind]:
        assert getattr(loaded, name) == getattr(m, name), name
    d, dl = m.state_dict(), loaded.state_dict()
    assert list(dl) == list(d)
    for k in d:
        assert_identical(dl[k], d[k], k)
    x = random_input(rng, cfg, 7, 2)
    s = random_state(rng, kind, cfg, 2)
    assert_identical(loaded(x, s), m(x, s), "outputs")


@pytest.mark.parametrize("kind,cfg", SAVE_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SAVE_CASES)])
def test_saved_file_is_safetensors_with_torch_names_and_the_architecture_in_metadata(kind, cfg, tmp_path):
    m = make_sr(kind, cfg, seed=4)
    path = tmp_path / "model.safetensors"
    m.save(path)
    tensors = safetensors.numpy.load_file(str(path))
    d = m.state_dict()
    assert set(tensors) == set(d)
    for k in d:
        assert_identical(tensors[k], d[k], k)
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert meta, "the architecture must be in the metadata"
    text = json.dumps(meta)
    assert "hidden_size" in text
    assert kind.lower() in text.lower()


@pytest.mark.parametrize("kind,cfg", SAVE_CASES[:3], ids=[f"{k}-{i}" for i, (k, _) in enumerate(SAVE_CASES[:3])])
def test_a_file_rewritten_by_the_safetensors_library_loads_with_its_new_values(kind, cfg, tmp_path):
    m = make_sr(kind, cfg, seed=4)
    path = tmp_path / "model.safetensors"
    m.save(path)
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    tensors = safetensors.numpy.load_file(str(path))
    tensors = {k: (v * 0.5).astype(np.float32) for k, v in reversed(list(tensors.items()))}
    other = tmp_path / "rewritten.safetensors"
    safetensors.numpy.save_file(tensors, str(other), metadata=meta)
    loaded = sr.load(other)
    assert type(loaded) is type(m)
    for k, v in tensors.items():
        assert_identical(loaded.state_dict()[k], v, k)


def test_a_loaded_model_streams_like_the_original(tmp_path):
    rng = rng_for("loaded stream")
    m = sr.GRU(3, 5, 2, reset_after=False, residual=True, seed=1)
    m.save(tmp_path / "g.safetensors")
    loaded = sr.load(tmp_path / "g.safetensors")
    x = randn(rng, 9, 2, 3)
    assert_identical(loaded.stream(batch=2).process(x), m.stream(batch=2).process(x), "stream output")


def test_saving_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "m.safetensors"
    sr.LSTM(3, 4, seed=1).save(path)
    second = sr.GRU(2, 3, seed=2)
    second.save(path)
    loaded = sr.load(path)
    assert type(loaded) is sr.GRU
    for k, v in second.state_dict().items():
        assert_identical(loaded.state_dict()[k], v, k)
