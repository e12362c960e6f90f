# tests/test_optim.py
# Optimizers and gradient clipping follow torch.optim and torch.nn.utils step for step.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import assert_close

STEPS = 20
# Trajectories of 20 steps: each step moves weights by ~lr, and the two sides differ only by the
# float32 rounding of gradients (see conftest) carried through the updates; momentum sums up to
# 1/(1 - 0.9) = 10 past gradients, hence the looser bound there.
TRAJECTORY_ATOL = 2e-5

OPTIMIZERS = {
    "sgd": (lambda p: torch.optim.SGD(p, lr=0.1), lambda m: sr.optim.SGD(m, lr=0.1)),
    "sgd-momentum-dampening": (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3),
                               lambda m: sr.optim.SGD(m, lr=0.05, momentum=0.9, dampening=0.3)),
    "sgd-nesterov-decay": (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                           lambda m: sr.optim.SGD(m, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd-maximize": (lambda p: torch.optim.SGD(p, lr=0.01, maximize=True),
                     lambda m: sr.optim.SGD(m, lr=0.01, maximize=True)),
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01), lambda m: sr.optim.Adam(m, lr=0.01)),
    "adam-decay-amsgrad": (lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
                           lambda m: sr.optim.Adam(m, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    "adam-small-beta1": (lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.3, 0.9)),
                         lambda m: sr.optim.Adam(m, lr=0.01, betas=(0.3, 0.9))),
    "adamw": (lambda p: torch.optim.AdamW(p, lr=0.01), lambda m: sr.optim.AdamW(m, lr=0.01)),
}


def _pair(kind="GRU", seed=0):
    torch.manual_seed(seed)
    module = {"GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM, "RNN": torch.nn.RNN}[kind](4, 6, 2)
    return module, sr.from_torch(module)


def _accumulate(module, m, rng):
    """One batch of gradients on both sides: loss = sum(y * dy)."""
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((5, 3, 6)).astype(np.float32)
    y, _ = module(torch.from_numpy(x))
    (y * torch.from_numpy(dy)).sum().backward()
    m(x, train=True)
    m.backward(dy)


def _assert_same_weights(module, m, atol):
    ours = m.state_dict()
    for name, p in module.named_parameters():
        assert_close(ours[name], p.detach().numpy(), atol, f"{name}")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_follows_torch_for_twenty_steps(name):
    make_torch, make_ours = OPTIMIZERS[name]
    module, m = _pair()
    ref, opt = make_torch(module.parameters()), make_ours(m)
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        ref.zero_grad()
        opt.zero_grad()
        _accumulate(module, m, rng)
        ref.step()
        opt.step()
    _assert_same_weights(module, m, TRAJECTORY_ATOL)


def test_one_optimizer_updates_several_modules():
    (t1, m1), (t2, m2) = _pair("LSTM", 1), _pair("RNN", 2)
    ref = torch.optim.Adam(list(t1.parameters()) + list(t2.parameters()), lr=0.01)
    opt = sr.optim.Adam([m1, m2], lr=0.01)
    rng = np.random.default_rng(2)
    for _ in range(5):
        ref.zero_grad()
        opt.zero_grad()
        _accumulate(t1, m1, rng)
        _accumulate(t2, m2, rng)
        ref.step()
        opt.step()
    _assert_same_weights(t1, m1, TRAJECTORY_ATOL)
    _assert_same_weights(t2, m2, TRAJECTORY_ATOL)


def test_a_module_without_gradients_is_left_alone():
    _, m = _pair()
    before = m.state_dict()
    sr.optim.Adam(m, lr=0.1).step()
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_optimizer_state_round_trips_and_resumes_the_same_trajectory():
    module, m = _pair()
    _, twin = _pair()
    opt, twin_opt = sr.optim.Adam(m, lr=0.01, amsgrad=True), sr.optim.Adam(twin, lr=0.01, amsgrad=True)
    rng = np.random.default_rng(3)
    for _ in range(3):
        opt.zero_grad()
        _accumulate(module, m, rng)
        opt.step()
    twin.load_state_dict(m.state_dict())
    twin_opt.load_state_dict(opt.state_dict())
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((5, 3, 6)).astype(np.float32)
    for model, optimizer in ((m, opt), (twin, twin_opt)):
        optimizer.zero_grad()
        model(x, train=True)
        model.backward(dy)
        optimizer.step()
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(twin.state_dict()[name], value)


def test_a_mismatched_optimizer_state_is_refused_and_changes_nothing():
    _, m = _pair()
    opt = sr.optim.SGD(m, lr=0.1, momentum=0.9)
    m(np.ones((2, 1, 4), np.float32), train=True)
    m.backward(np.ones((2, 1, 6), np.float32))
    opt.step()
    state = opt.state_dict()
    bad = {"type": "SGD", "options": state["options"], "state": [{"momentum_buffer": np.zeros(3, np.float32)}]}
    with pytest.raises(ValueError, match="momentum_buffer"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="Adam"):
        sr.optim.Adam(m).load_state_dict(state)
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["momentum_buffer"],
                                  state["state"][0]["momentum_buffer"])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_grad_norm_matches_torch_and_returns_the_norm_before_clipping(norm_type, max_norm):
    (t1, m1), (t2, m2) = _pair("GRU", 4), _pair("LSTM", 5)
    rng = np.random.default_rng(4)
    _accumulate(t1, m1, rng)
    _accumulate(t2, m2, rng)
    ref = torch.nn.utils.clip_grad_norm_(list(t1.parameters()) + list(t2.parameters()), max_norm, norm_type)
    norm = sr.clip_grad_norm([m1, m2], max_norm, norm_type)
    assert norm == pytest.approx(float(ref), rel=1e-5)
    for module, m in ((t1, m1), (t2, m2)):
        grads = m.grads()
        for name, p in module.named_parameters():
            assert_close(grads[name], p.grad.numpy(), 1e-5, name)


def test_clip_grad_value_clamps_every_gradient():
    module, m = _pair()
    _accumulate(module, m, np.random.default_rng(5))
    torch.nn.utils.clip_grad_value_(module.parameters(), 0.05)
    sr.clip_grad_value(m, 0.05)
    for name, p in module.named_parameters():
        assert_close(m.grads()[name], p.grad.numpy(), 1e-6, name)


@pytest.mark.parametrize("make", [
    lambda m: sr.optim.SGD(m, lr=-1.0),
    lambda m: sr.optim.SGD(m, lr=0.1, nesterov=True),
    lambda m: sr.optim.Adam(m, betas=(1.0, 0.9)),
    lambda m: sr.optim.Adam(m, eps=-1.0),
    lambda m: sr.optim.AdamW(m, weight_decay=-0.1),
])
def test_invalid_hyper_parameters_raise_value_error(make):
    _, m = _pair()
    with pytest.raises(ValueError):
        make(m)


def test_optimizers_take_streamrnn_modules_only():
    module, _ = _pair()
    with pytest.raises(TypeError, match="modules"):
        sr.optim.SGD(list(module.parameters()))
    with pytest.raises(TypeError, match="lr"):
        sr.optim.Adam(_pair()[1], lr="fast")
