# tests/test_blocks.py
# Linear, Embedding, Dropout and the losses against torch, forward and backward.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import ATOL, assert_close


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 2, 5)], ids=["vector", "rows", "sequence"])
def test_linear_matches_torch_forward_and_backward(bias, shape):
    module = torch.nn.Linear(5, 7, bias=bias)
    lin = sr.from_torch(module)
    x = _rng().standard_normal(shape).astype(np.float32)
    dy = _rng(1).standard_normal(shape[:-1] + (7,)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    y = lin(x, train=True)
    assert_close(y, yt.detach().numpy())
    assert_close(lin.backward(dy), xt.grad.numpy())
    grads = lin.grads()
    for name, p in module.named_parameters():
        assert_close(grads[name], p.grad.numpy(), what=name)


def test_linear_initialisation_is_pytorchs_bound_and_seeded():
    a, b = sr.Linear(16, 8, seed=3), sr.Linear(16, 8, seed=3)
    for name, value in a.state_dict().items():
        assert np.all(np.abs(value) <= 0.25), name  # 1/sqrt(16)
        np.testing.assert_array_equal(value, b.state_dict()[name])
    assert not np.array_equal(a.state_dict()["weight"], sr.Linear(16, 8, seed=4).state_dict()["weight"])


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch_and_skips_the_padding_row(padding_idx):
    module = torch.nn.Embedding(6, 4, padding_idx=padding_idx)
    emb = sr.from_torch(module)
    ids = np.array([[0, 2, 5], [2, 2, 1]])
    dy = _rng().standard_normal((2, 3, 4)).astype(np.float32)
    yt = module(torch.from_numpy(ids))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close(emb(ids, train=True), yt.detach().numpy())
    emb.backward(dy)
    assert_close(emb.grads()["weight"], module.weight.grad.numpy())
    assert emb.padding_idx == module.padding_idx


def test_embedding_padding_row_starts_at_zero_and_initialisation_is_standard_normal():
    emb = sr.Embedding(2000, 16, padding_idx=0, seed=1)
    weight = emb.state_dict()["weight"]
    assert np.all(weight[0] == 0.0)
    assert abs(float(weight[1:].mean())) < 0.02 and abs(float(weight[1:].std()) - 1.0) < 0.02


def test_embedding_ids_out_of_range_raise_index_error_and_non_integers_type_error():
    emb = sr.Embedding(4, 2)
    with pytest.raises(IndexError, match="4"):
        emb([0, 4])
    with pytest.raises(IndexError):
        emb([-1])
    with pytest.raises(TypeError, match="ids"):
        emb([0.5, 1.0])


def test_dropout_keeps_with_probability_one_minus_p_scales_and_reuses_its_mask():
    drop = sr.Dropout(0.3, seed=0)
    x = np.ones((200, 100), np.float32)
    y = drop(x, train=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert np.allclose(y[kept], 1 / 0.7)
    dy = _rng().standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(drop.backward(dy), dy * y)
    np.testing.assert_array_equal(drop(x), x)  # outside training: the identity


def test_dropout_of_one_drops_everything_and_of_zero_nothing():
    x = _rng().standard_normal((10, 10)).astype(np.float32)
    assert np.all(sr.Dropout(1.0)(x, train=True) == 0.0)
    np.testing.assert_array_equal(sr.Dropout(0.0)(x, train=True), x)
    with pytest.raises(ValueError, match="p"):
        sr.Dropout(1.5)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_cross_entropy_over_a_sequence_matches_torch(ignore, with_mask):
    rng = _rng(2)
    T, B, C = 6, 3, 5
    logits = (3 * rng.standard_normal((T, B, C))).astype(np.float32)
    targets = rng.integers(0, C, (T, B))
    if ignore:
        targets[-2:, 1] = -100
    mask = (rng.random((T, B)) > 0.3).astype(np.float32) if with_mask else None
    loss, dlogits = sr.cross_entropy(logits, targets, mask=mask)
    lt = torch.tensor(logits, requires_grad=True)
    per = torch.nn.functional.cross_entropy(lt.reshape(-1, C), torch.from_numpy(targets).reshape(-1),
                                            reduction="none")
    counted = torch.from_numpy(targets).reshape(-1) != -100
    weight = counted.float() * (torch.from_numpy(mask).reshape(-1) if with_mask else 1.0)
    ref = (per * weight).sum() / weight.sum()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    assert_close(dlogits, lt.grad.numpy())


def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient():
    loss, d = sr.cross_entropy(np.zeros((2, 3), np.float32), [-100, -100])
    assert np.isnan(loss) and np.all(d == 0.0)


def test_cross_entropy_refuses_out_of_range_targets_and_mismatched_shapes():
    with pytest.raises(IndexError, match="targets"):
        sr.cross_entropy(np.zeros((2, 3), np.float32), [0, 3])
    with pytest.raises(ValueError, match="targets"):
        sr.cross_entropy(np.zeros((2, 3), np.float32), [0, 1, 2])
    with pytest.raises(TypeError, match="targets"):
        sr.cross_entropy(np.zeros((2, 3), np.float32), [0.0, 1.0])
    with pytest.raises(ValueError, match="mask"):
        sr.cross_entropy(np.zeros((2, 3), np.float32), [0, 1], mask=[1.0])


def test_mse_loss_matches_torch():
    p = _rng(3).standard_normal((4, 5)).astype(np.float32)
    t = _rng(4).standard_normal((4, 5)).astype(np.float32)
    loss, d = sr.mse_loss(p, t)
    pt = torch.tensor(p, requires_grad=True)
    ref = torch.nn.functional.mse_loss(pt, torch.from_numpy(t))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    assert_close(d, pt.grad.numpy(), ATOL)
    with pytest.raises(ValueError, match="target"):
        sr.mse_loss(p, t[:3])


@pytest.mark.parametrize("make", [lambda: sr.Linear(3, 2), lambda: sr.Embedding(5, 2), lambda: sr.Dropout(0.5)])
def test_backward_before_a_training_forward_is_a_value_error(make):
    block = make()
    with pytest.raises(ValueError, match="train=True"):
        block.backward(np.zeros((1, 2), np.float32))


def test_backward_with_a_wrongly_shaped_gradient_is_refused_and_changes_nothing():
    lin = sr.Linear(3, 2)
    lin(np.ones((4, 3), np.float32), train=True)
    with pytest.raises(ValueError, match="dy"):
        lin.backward(np.ones((5, 2), np.float32))
    assert all(np.all(g == 0.0) for g in lin.grads().values())


def test_an_optimizer_trains_blocks_and_recurrent_layers_together():
    torch.manual_seed(0)
    t_emb, t_gru, t_head = torch.nn.Embedding(7, 4), torch.nn.GRU(4, 5), torch.nn.Linear(5, 7)
    emb, gru, head = sr.from_torch(t_emb), sr.from_torch(t_gru), sr.from_torch(t_head)
    ref = torch.optim.Adam([*t_emb.parameters(), *t_gru.parameters(), *t_head.parameters()], lr=0.05)
    opt = sr.optim.Adam([emb, gru, head], lr=0.05)
    rng = _rng(5)
    for _ in range(10):
        ids = rng.integers(0, 7, (6, 2))
        targets = rng.integers(0, 7, (6, 2))
        ref.zero_grad()
        logits_t = t_head(t_gru(t_emb(torch.from_numpy(ids)))[0])
        torch.nn.functional.cross_entropy(logits_t.reshape(-1, 7), torch.from_numpy(targets).reshape(-1)).backward()
        ref.step()
        opt.zero_grad()
        y, _ = gru(emb(ids, train=True), train=True)
        loss, dlogits = sr.cross_entropy(head(y, train=True), targets)
        dx, _ = gru.backward(head.backward(dlogits))
        emb.backward(dx)
        opt.step()
    for ours, theirs in ((emb, t_emb), (gru, t_gru), (head, t_head)):
        for name, p in theirs.named_parameters():
            assert_close(ours.state_dict()[name], p.detach().numpy(), 1e-4, name)
