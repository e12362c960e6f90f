# tests/test_cuda.py
# The CUDA backend: device names and errors everywhere; on a GPU (tests marked `cuda`, skipped
# without one), forward, streaming and training against the CPU backend over random
# configurations, GPU arrays in and out, weights that follow the model, and bad input.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import (assert_close, assert_message_names, make_sr, output_size, random_config, random_input,
                      random_state, rng_for)

GPU = sr.cuda.is_available()
cuda = pytest.mark.skipif(not GPU, reason="no CUDA device, or streamrnn built without its CUDA backend")
TORCH_CUDA = GPU and torch.cuda.is_available()
torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason="needs a CUDA build of torch and a GPU")

# GPU and CPU sum their products in other orders (cuBLAS vs Eigen) and over longer rows here
# (H up to 64): float32 rounding of a few 1e-6 per step, carried through up to 40 steps.
GPU_ATOL = 5e-5


# ------------------------------------------------------------------------------------------------
# Everywhere (no GPU needed)


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:-1", "tpu:0", ""])
def test_a_bad_device_name_is_a_value_error(device):
    m = sr.LSTM(3, 4)
    with pytest.raises(ValueError) as excinfo:
        m.to(device)
    assert_message_names(excinfo, "device")
    assert m.device == "cpu"


@pytest.mark.parametrize("device", [1.0, None, True, ["cuda"]])
def test_a_device_of_another_type_is_a_type_error(device):
    with pytest.raises(TypeError) as excinfo:
        sr.GRU(3, 4).to(device)
    assert_message_names(excinfo, "device")


def test_to_cpu_returns_the_model_and_changes_nothing():
    m = sr.RNN(3, 4, seed=1)
    before = m.state_dict()
    assert m.to("cpu") is m and m.cpu() is m and m.to(torch.device("cpu")) is m
    assert m.device == "cpu"
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_availability_is_a_bool_and_agrees_with_the_device_count():
    assert isinstance(sr.cuda.is_available(), bool)
    assert sr.cuda.is_available() == (sr.cuda.device_count() > 0)


@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_without_a_gpu_moving_is_a_runtime_error_that_leaves_the_model_on_the_cpu():
    m = sr.LSTM(3, 4, seed=2)
    x = np.ones((2, 1, 3), np.float32)
    y_before, _ = m(x)
    with pytest.raises(RuntimeError, match="cuda:0"):
        m.to("cuda")
    with pytest.raises(RuntimeError, match="cuda:0"):
        m.cuda()
    assert m.device == "cpu"
    np.testing.assert_array_equal(m(x)[0], y_before)


def test_a_gpu_index_past_the_last_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="cuda:99"):
        sr.GRU(2, 3).to("cuda:99")


class _FakeBackend:
    """The CUDA backend's module, as streamrnn._device sees it, recording what it is asked: what a
    layer hands the GPU can be checked on any machine."""

    def __init__(self):
        self.calls = []
        backend = self

        class DeviceModel:
            def __init__(self, spec, device):
                backend.calls.append(("DeviceModel", dict(spec), device))
                self.device, self.loaded_version, self.allow_tf32 = device, None, False

            def load(self, values, version):
                backend.calls.append(("load", values.copy(), version))
                self.loaded_version = version

            def forward(self, x, state, lengths, train):
                backend.calls.append(("forward", train))
                return "y", "state"

        self.DeviceModel = DeviceModel

    def device_count(self):
        return 1


def test_a_layer_on_a_gpu_hands_it_its_whole_spec_and_trains_there(monkeypatch):
    # B1, B2: training forwards reach the GPU (train=True passed on, no NotImplementedError), and
    # the GPU model is made from the engine's own spec, dropout included; its gradients come back
    # into grads(). A fake backend stands in for the GPU.
    fake = _FakeBackend()
    monkeypatch.setattr(sr.cuda, "backend", lambda index: fake)
    m = sr.LSTM(3, 4, num_layers=2, dropout=0.25, seed=0)
    count = sum(v.size for v in m.state_dict().values())
    fake.DeviceModel.backward = lambda self, dy, dstate: ("dx", "dstate0", np.ones(count, np.float32))
    m.to("cuda")
    kind, spec, device = fake.calls[0]
    assert kind == "DeviceModel" and device == 0
    assert spec["dropout"] == 0.25 and spec["num_layers"] == 2 and spec["mode"] == "LSTM"
    assert fake.calls[1][0] == "load" and fake.calls[1][2] == m._core.version
    assert m(np.zeros((2, 1, 3), np.float32), train=True) == ("y", "state")
    assert ("forward", True) in fake.calls
    assert m.backward(np.zeros((2, 1, 4), np.float32)) == ("dx", "dstate0")
    assert all(np.all(g == 1.0) for g in m.grads().values())


def test_tf32_is_off_by_default_and_takes_only_a_bool():
    assert sr.cuda.allow_tf32() is False
    with pytest.raises(TypeError):
        sr.cuda.set_allow_tf32(1)


# ------------------------------------------------------------------------------------------------
# On a GPU


def _pair(kind, cfg, seed):
    """A CPU model and a GPU model with the same weights."""
    cpu = make_sr(kind, cfg, seed=seed)
    gpu = make_sr(kind, cfg, seed=seed).to("cuda")
    return cpu, gpu


@cuda
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("trial", range(12))
def test_forward_on_the_gpu_matches_the_cpu(kind, trial):
    rng = rng_for("cuda-forward", kind, trial)
    cfg = random_config(kind, rng)
    cfg["hidden_size"] = int(rng.integers(1, 65))
    cfg.pop("proj_size", None)
    if kind == "LSTM" and cfg["hidden_size"] > 1 and rng.random() < 0.4:
        cfg["proj_size"] = int(rng.integers(1, cfg["hidden_size"]))
    if kind == "GRU":
        cfg["reset_after"] = bool(rng.random() < 0.5)
    cfg["residual"] = bool(rng.random() < 0.4)
    cpu, gpu = _pair(kind, cfg, seed=trial)
    T, B = int(rng.integers(1, 41)), [None, 1, int(rng.integers(2, 300))][trial % 3]
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B) if rng.random() < 0.7 else None
    lengths = None
    if B is not None and rng.random() < 0.5:
        lengths = rng.integers(0, T + 1, size=B)
    y_cpu, s_cpu = cpu(x, state, lengths)
    y_gpu, s_gpu = gpu(x, state, lengths)
    assert isinstance(y_gpu, np.ndarray) and y_gpu.dtype == np.float32
    assert_close(y_gpu, y_cpu, GPU_ATOL, "y")
    assert_close(s_gpu, s_cpu, GPU_ATOL, "state")


@cuda
def test_weights_loaded_after_the_move_are_used_on_the_next_call():
    cpu, gpu = _pair("LSTM", dict(input_size=5, hidden_size=16, num_layers=2), seed=3)
    other = sr.LSTM(5, 16, 2, seed=4)
    x = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(np.float32)
    s = gpu.stream(3)
    gpu.load_state_dict(other.state_dict())
    cpu.load_state_dict(other.state_dict())
    assert_close(gpu(x)[0], cpu(x)[0], GPU_ATOL)
    assert_close(s.process(x), cpu(x)[0], GPU_ATOL)


@cuda
@pytest.mark.parametrize("kind,extra", [("LSTM", {}), ("LSTM", {"proj_size": 5}), ("GRU", {}),
                                        ("GRU", {"reset_after": False}), ("RNN", {"nonlinearity": "relu"})])
@pytest.mark.parametrize("batch_first", [False, True])
def test_a_gpu_stream_matches_a_cpu_stream_in_steps_and_chunks(kind, extra, batch_first):
    cfg = dict(input_size=6, hidden_size=24, num_layers=2, batch_first=batch_first, residual=True, **extra)
    cpu, gpu = _pair(kind, cfg, seed=5)
    rng = rng_for("cuda-stream", kind, str(extra), batch_first)
    B, T = 3, 150
    x = random_input(rng, cfg, T, B)
    expected, _ = cpu(x)
    s = gpu.stream(B)
    assert s.device == "cuda:0" and s.batch == B
    y = s.process(x)  # past one internal block of 64 steps
    assert_close(y, expected, GPU_ATOL)
    s.reset()
    out = np.empty((B, output_size(kind, cfg)), np.float32)
    for t in range(T):
        x_t = x[:, t] if batch_first else x[t]
        assert s.step(x_t, out=out) is out
        assert_close(out, expected[:, t] if batch_first else expected[t], GPU_ATOL)
    cpu_stream = cpu.stream(B)
    cpu_stream.process(x)
    assert_close(s.state, cpu_stream.state, GPU_ATOL)
    s.reset(1)
    cpu_stream.reset(1)
    assert_close(s.state, cpu_stream.state, GPU_ATOL)
    s.state = cpu_stream.state
    assert_close(s.state, cpu_stream.state, 0.0)


@cuda
def test_many_concurrent_streams_are_independent():
    cpu, gpu = _pair("GRU", dict(input_size=8, hidden_size=32), seed=6)
    x = np.random.default_rng(1).standard_normal((20, 256, 8)).astype(np.float32)
    s = gpu.stream(256)
    ys = np.stack([s.step(x_t) for x_t in x])
    assert_close(ys, cpu(x)[0], GPU_ATOL)


@cuda
def test_bad_input_on_the_gpu_is_a_clear_error_that_changes_nothing():
    m = sr.LSTM(4, 8, 2).to("cuda")
    with pytest.raises(ValueError) as excinfo:
        m(np.zeros((5, 2, 3), np.float32))
    assert_message_names(excinfo, "x", (5, 2, 3))
    with pytest.raises(ValueError) as excinfo:
        m(np.zeros((5, 2, 4), np.float32), lengths=[6, 1])
    assert_message_names(excinfo, "lengths")
    with pytest.raises(ValueError) as excinfo:
        m(np.zeros((5, 2, 4), np.float32), (np.zeros((2, 2, 8), np.float32), np.zeros((3, 2, 8), np.float32)))
    assert_message_names(excinfo, "state")
    with pytest.raises(ValueError, match="training forward"):
        m.backward(np.zeros((5, 2, 8), np.float32))
    s = m.stream(2)
    s.step(np.ones((2, 4), np.float32))
    state = s.state
    with pytest.raises(ValueError) as excinfo:
        s.step(np.zeros((3, 4), np.float32))
    assert_message_names(excinfo, "x", (3, 4))
    with pytest.raises(ValueError) as excinfo:
        s.step(np.zeros((2, 4), np.float32), out=np.zeros((2, 9), np.float32))
    assert_message_names(excinfo, "out", (2, 9))
    with pytest.raises(ValueError):
        s.state = (np.zeros((2, 2, 8), np.float32), np.zeros((2, 2, 7), np.float32))
    with pytest.raises(IndexError):
        s.reset(2)
    assert_close(s.state, state, 0.0)
    with pytest.raises(ValueError):
        sr.GRU(3, 4, bidirectional=True).to("cuda").stream(1)


@cuda
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("trial", range(8))
def test_training_on_the_gpu_matches_the_cpu(kind, trial):
    rng = rng_for("cuda-train", kind, trial)
    cfg = random_config(kind, rng)
    cfg.pop("dropout", None)
    if kind == "GRU":
        cfg["reset_after"] = bool(rng.random() < 0.5)
    cfg["residual"] = bool(rng.random() < 0.4)
    cpu, gpu = _pair(kind, cfg, seed=trial)
    T, B = int(rng.integers(1, 21)), [None, int(rng.integers(1, 40))][trial % 2]
    x = random_input(rng, cfg, T, B)
    state = random_state(rng, kind, cfg, B)
    lengths = rng.integers(0, T + 1, size=B) if B is not None and rng.random() < 0.5 else None
    y_cpu, s_cpu = cpu(x, state, lengths, train=True)
    y_gpu, s_gpu = gpu(x, state, lengths, train=True)
    assert_close(y_gpu, y_cpu, GPU_ATOL, "y")
    dy = rng.standard_normal(y_cpu.shape).astype(np.float32)
    dstate = random_state(rng, kind, cfg, B)
    for _ in range(2):  # gradients add up over backward calls
        dx_cpu, d0_cpu = cpu.backward(dy, dstate)
        dx_gpu, d0_gpu = gpu.backward(dy, dstate)
    assert_close(dx_gpu, dx_cpu, GPU_ATOL, "dx")
    assert_close(d0_gpu, d0_cpu, GPU_ATOL, "dstate0")
    for name, grad in cpu.grads().items():
        assert_close(gpu.grads()[name], grad, 1e-3, name)


# ONNX's cell options on the GPU: per kind, functions (other ones in the reverse direction),
# clip that clips, and an LSTM's peepholes and coupled gates.
GPU_OPTIONS = {
    "LSTM": dict(peepholes=True, clip=0.8, activations=[["HardSigmoid", ("LeakyRelu", 0.1), "Softsign"],
                                                        ["Sigmoid", ("ScaledTanh", 1.2, 0.8), "Softplus"]]),
    "LSTM coupled": dict(peepholes=True, input_forget=True, clip=0.8),
    "GRU": dict(clip=0.8, activations=[["Softsign", ("Elu", 0.7)], ["Sigmoid", "Softplus"]]),
    "RNN": dict(clip=0.8, activations=[["Softsign"], [("LeakyRelu", 0.2)]]),
}


@cuda
@pytest.mark.parametrize("variant", list(GPU_OPTIONS))
@pytest.mark.parametrize("trial", range(3))
def test_cell_options_on_the_gpu_match_the_cpu(variant, trial):
    kind = variant.split()[0]
    rng = rng_for("cuda-options", variant, trial)
    cfg = dict(input_size=5, hidden_size=int(rng.integers(3, 40)), num_layers=int(rng.integers(1, 3)),
               bidirectional=True, **GPU_OPTIONS[variant])
    if kind == "GRU":
        cfg["reset_after"] = trial % 2 == 0
    cpu, gpu = _pair(kind, cfg, seed=trial)
    T, B = int(rng.integers(1, 21)), int(rng.integers(1, 9))
    x = random_input(rng, cfg, T, B)
    lengths = rng.integers(0, T + 1, size=B) if trial == 2 else None
    y_cpu, _ = cpu(x, None, lengths, train=True)
    y_gpu, _ = gpu(x, None, lengths, train=True)
    assert_close(y_gpu, y_cpu, GPU_ATOL, "y")
    dy = rng.standard_normal(y_cpu.shape).astype(np.float32)
    dx_cpu, _ = cpu.backward(dy)
    dx_gpu, _ = gpu.backward(dy)
    assert_close(dx_gpu, dx_cpu, GPU_ATOL, "dx")
    for name, grad in cpu.grads().items():
        assert_close(gpu.grads()[name], grad, 1e-3, name)
    # A one-directional twin streams on the GPU as on the CPU.
    one = {**cfg, "bidirectional": False,
           "activations": cfg["activations"][0] if "activations" in cfg else None}
    cpu, gpu = _pair(kind, one, seed=trial)
    s_cpu, s_gpu = cpu.stream(B), gpu.stream(B)
    for t in range(T):
        assert_close(s_gpu.step(x[t]), s_cpu.step(x[t]), GPU_ATOL, f"step {t}")


@cuda
def test_an_optimizer_step_after_a_gpu_backward_reaches_the_gpu():
    cpu, gpu = _pair("LSTM", dict(input_size=4, hidden_size=16, num_layers=2, dropout=0.0), seed=11)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 6, 4)).astype(np.float32)
    target = rng.standard_normal((12, 6, 16)).astype(np.float32)
    optimizers = [sr.optim.Adam([m], lr=1e-2) for m in (cpu, gpu)]
    for _ in range(3):
        for m, opt in zip((cpu, gpu), optimizers):
            m.zero_grad()
            y, _ = m(x, train=True)
            m.backward(2.0 * (y - target) / y.size)
            opt.step()
    assert_close(gpu(x)[0], cpu(x)[0], 1e-4)


@cuda
def test_dropout_on_the_gpu_drops_in_training_only():
    m = sr.GRU(8, 32, 2, dropout=0.5, seed=12).to("cuda")
    x = np.random.default_rng(6).standard_normal((10, 4, 8)).astype(np.float32)
    y_eval, _ = m(x)
    y_a, _ = m(x, train=True)
    y_b, _ = m(x, train=True)
    assert not np.allclose(y_a, y_eval) and not np.allclose(y_a, y_b)
    dx, _ = m.backward(np.ones_like(y_b))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert_close(m(x)[0], y_eval, 0.0)


@cuda
def test_tf32_is_an_opt_in_that_stays_close():
    cpu, gpu = _pair("LSTM", dict(input_size=64, hidden_size=64), seed=7)
    x = np.random.default_rng(2).standard_normal((10, 4, 64)).astype(np.float32)
    try:
        sr.cuda.set_allow_tf32(True)
        y_tf32, _ = gpu(x)
    finally:
        sr.cuda.set_allow_tf32(False)
    assert_close(y_tf32, cpu(x)[0], 1e-2)
    assert_close(gpu(x)[0], cpu(x)[0], GPU_ATOL)


@torch_cuda
def test_torch_cuda_tensors_go_in_and_results_come_out_on_the_gpu():
    cpu, gpu = _pair("LSTM", dict(input_size=5, hidden_size=12, num_layers=2, batch_first=True), seed=8)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 9, 5)).astype(np.float32)
    h0 = rng.standard_normal((2, 4, 12)).astype(np.float32)
    c0 = rng.standard_normal((2, 4, 12)).astype(np.float32)
    y_cpu, (h_cpu, c_cpu) = cpu(x, (h0, c0), lengths=[9, 3, 0, 5])
    x_d, h_d, c_d = (torch.from_numpy(a).cuda() for a in (x, h0, c0))
    y, (h, c) = gpu(x_d, (h_d, c_d), lengths=[9, 3, 0, 5])
    assert isinstance(y, sr.cuda.DeviceArray) and y.shape == (4, 9, 12) and y.device == "cuda:0"
    y_t = torch.as_tensor(y, device="cuda")  # __cuda_array_interface__, no copy
    assert y_t.data_ptr() == y.__cuda_array_interface__["data"][0]
    assert_close(y_t.cpu().numpy(), y_cpu, GPU_ATOL)
    assert_close(torch.from_dlpack(h).cpu().numpy(), h_cpu, GPU_ATOL)
    assert_close(c.numpy(), c_cpu, GPU_ATOL)
    assert_close(np.asarray(y), y_cpu, GPU_ATOL)
    # A DeviceArray goes back in as it came out.
    y2, _ = gpu(x_d, (h, c))
    assert_close(y2.numpy(), cpu(x, (h_cpu, c_cpu))[0], GPU_ATOL)


@torch_cuda
def test_training_takes_gpu_gradients_and_gives_them_back_on_the_gpu():
    cpu, gpu = _pair("GRU", dict(input_size=5, hidden_size=12, num_layers=2), seed=13)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 4, 5)).astype(np.float32)
    dy = rng.standard_normal((9, 4, 12)).astype(np.float32)
    dh = rng.standard_normal((2, 4, 12)).astype(np.float32)
    cpu(x, train=True)
    dx_cpu, dh0_cpu = cpu.backward(dy, dh)
    gpu(torch.from_numpy(x).cuda(), train=True)
    dx, dh0 = gpu.backward(torch.from_numpy(dy).cuda(), torch.from_numpy(dh).cuda())
    assert isinstance(dx, sr.cuda.DeviceArray) and isinstance(dh0, sr.cuda.DeviceArray)
    assert_close(dx.numpy(), dx_cpu, GPU_ATOL)
    assert_close(dh0.numpy(), dh0_cpu, GPU_ATOL)
    for name, grad in cpu.grads().items():
        assert_close(gpu.grads()[name], grad, 1e-3, name)


@torch_cuda
def test_a_gpu_stream_steps_torch_tensors_in_place():
    cpu, gpu = _pair("GRU", dict(input_size=6, hidden_size=16), seed=9)
    x = np.random.default_rng(4).standard_normal((12, 5, 6)).astype(np.float32)
    expected, _ = cpu(x)
    s = gpu.stream(5)
    out = torch.empty((5, 16), device="cuda")
    x_d = torch.from_numpy(x).cuda()
    for t in range(12):
        assert s.step(x_d[t], out=out) is out
        assert_close(out.cpu().numpy(), expected[t], GPU_ATOL)
    s.reset()
    assert_close(torch.as_tensor(s.process(x_d), device="cuda").cpu().numpy(), expected, GPU_ATOL)
    s.reset()
    assert_close(s.step(x_d[0]).numpy(), expected[0], GPU_ATOL)


@torch_cuda
def test_gpu_arrays_of_the_wrong_kind_are_refused():
    m = sr.RNN(4, 6).to("cuda")
    with pytest.raises(TypeError, match="x"):
        m(torch.zeros((3, 2, 4), dtype=torch.float64, device="cuda"))
    with pytest.raises(ValueError, match="contiguous"):
        m(torch.zeros((2, 3, 4), device="cuda").transpose(0, 1))
    s = m.stream(2)
    with pytest.raises(TypeError, match="out"):
        s.step(torch.zeros((2, 4), device="cuda"), out=np.zeros((2, 6), np.float32))
