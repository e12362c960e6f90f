# tests/test_sequential.py
# Whole models (sr.Sequential) against the same PyTorch modules, stream against whole sequence,
# files, training against autograd; initial states (learned and set) through calls, streams,
# pools, files and gradients. Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr

FUNCTIONS = [(sr.Tanh(), torch.nn.Tanh()), (sr.Sigmoid(), torch.nn.Sigmoid()), (sr.ReLU(), torch.nn.ReLU()),
             (sr.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (sr.ELU(0.7), torch.nn.ELU(0.7)),
             (sr.Softsign(), torch.nn.Softsign()), (sr.GELU(), torch.nn.GELU()), (sr.Identity(), torch.nn.Identity())]


class _First(torch.nn.Module):
    """A recurrent module's outputs alone, as a block of torch.nn.Sequential."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)[0]


def _pair(blocks):
    """The same model twice: (sr.Sequential, torch.nn.Sequential), weights copied from PyTorch's."""
    ours, theirs = [], []
    for block in blocks:
        if isinstance(block, tuple):
            ours.append(block[0])
            theirs.append(block[1])
        elif isinstance(block, torch.nn.Linear):
            linear = sr.Linear(block.in_features, block.out_features, bias=block.bias is not None)
            linear.load_state_dict(block.state_dict())
            ours.append(linear)
            theirs.append(block)
        else:
            ours.append(sr.from_torch(block))
            theirs.append(_First(block))
    return sr.Sequential(*ours), torch.nn.Sequential(*theirs)


def _rtneural_model():
    torch.manual_seed(0)
    return _pair([torch.nn.Linear(1, 8), (sr.Tanh(), torch.nn.Tanh()), torch.nn.LSTM(8, 8), torch.nn.Linear(8, 1)])


def _reference(theirs, x):
    with torch.no_grad():
        return theirs(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: type(f[0]).__name__)
def test_every_function_matches_pytorch_in_a_model(function):
    torch.manual_seed(1)
    ours, theirs = _pair([torch.nn.Linear(3, 6), function, torch.nn.GRU(6, 5), function, torch.nn.Linear(5, 2)])
    x = np.random.default_rng(0).standard_normal((20, 4, 3)).astype(np.float32) * 2
    y, state = ours(x)
    np.testing.assert_allclose(y, _reference(theirs, x), atol=2e-6)
    assert state.shape == (1, 4, 5)
    # Streamed, a row at a time and in blocks (each function as the stream runs it).
    for rows in (1, 4):
        stream = ours.stream(rows)
        steps = np.stack([stream.step(x[t, :rows]) for t in range(8)])
        np.testing.assert_allclose(np.concatenate([steps, stream.process(x[8:, :rows])]), y[:, :rows], atol=2e-6)


def test_models_of_several_recurrent_stacks_stream_as_they_run_whole():
    torch.manual_seed(2)
    ours, theirs = _pair([torch.nn.LSTM(2, 6, 2), (sr.ReLU(), torch.nn.ReLU()), torch.nn.Linear(6, 4),
                          torch.nn.GRU(4, 3), torch.nn.RNN(3, 5, nonlinearity="relu"), torch.nn.Linear(5, 2)])
    x = np.random.default_rng(1).standard_normal((30, 3, 2)).astype(np.float32)
    y, state = ours(x)
    np.testing.assert_allclose(y, _reference(theirs, x), atol=2e-6)
    assert len(state) == 3 and state[0][0].shape == (2, 3, 6) and state[1].shape == (1, 3, 3)
    stream = ours.stream(3)
    out = np.empty((3, 2), np.float32)
    steps = np.stack([stream.step(x[t], out=out).copy() for t in range(12)])
    rest = stream.process(x[12:])
    np.testing.assert_allclose(np.concatenate([steps, rest]), y, atol=1e-6)
    for got, want in zip(stream.state, state):
        for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(a, b, atol=1e-6)
    # The state carried by a whole-sequence call continues where the first half left off.
    first, carried = ours(x[:15])
    second, _ = ours(x[15:], state=carried)
    np.testing.assert_allclose(np.concatenate([first, second]), y, atol=1e-6)


def test_batch_first_unbatched_and_lengths():
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(2, 4, batch_first=True)
    head = torch.nn.Linear(4, 1)
    ours, theirs = _pair([lstm, head])
    assert ours.batch_first
    x = np.random.default_rng(2).standard_normal((3, 9, 2)).astype(np.float32)
    y, _ = ours(x)
    np.testing.assert_allclose(y, _reference(theirs, x), atol=1e-6)
    single, _ = ours(x[0])
    np.testing.assert_allclose(single, y[0], atol=1e-6)
    lengths = np.array([9, 4, 0])
    y_len, _ = ours(x, lengths=lengths)
    np.testing.assert_allclose(y_len[0], y[0], atol=1e-6)
    np.testing.assert_allclose(y_len[1, :4], y[1, :4], atol=1e-6)
    assert not y_len[1, 4:].any() and not y_len[2].any()  # past a row's length: zeros, head or not


def test_a_model_saves_and_loads_whole(tmp_path):
    ours, theirs = _rtneural_model()
    ours.metadata = {"sample_rate": "48000", "name": "test"}
    ours[2].initial_state = (np.full((1, 8), 0.25, np.float32), np.full((1, 8), -0.5, np.float32))
    path = tmp_path / "model.safetensors"
    ours.save(path)
    loaded = sr.load(path)
    assert isinstance(loaded, sr.Sequential) and loaded.metadata == ours.metadata
    assert [type(b) for b in loaded.blocks] == [type(b) for b in ours.blocks]
    x = np.random.default_rng(3).standard_normal((40, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], ours(x)[0])
    np.testing.assert_array_equal(loaded.initial_state[1], ours.initial_state[1])
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)


def test_training_matches_autograd():
    torch.manual_seed(4)
    ours, theirs = _pair([torch.nn.Linear(2, 5), (sr.Tanh(), torch.nn.Tanh()), torch.nn.LSTM(5, 6),
                          (sr.GELU(), torch.nn.GELU()), torch.nn.GRU(6, 3), torch.nn.Linear(3, 2)])
    x = np.random.default_rng(4).standard_normal((11, 4, 2)).astype(np.float32)
    y, _ = ours(x, train=True)
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    dx, dstate0 = ours.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    (theirs(xt) * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-5)
    grads = ours.grads()
    for name, param in theirs.named_parameters():
        key = name.replace(".module.", ".")
        np.testing.assert_allclose(grads[key], param.grad.numpy(), atol=1e-5, err_msg=key)
    assert len(dstate0) == 2 and dstate0[0][0].shape == (1, 4, 6)
    # The optimizers see the blocks through parts().
    before = ours.state_dict()["0.weight"].copy()
    sr.optim.SGD(ours, lr=0.1).step()
    np.testing.assert_allclose(ours.state_dict()["0.weight"], before - 0.1 * grads["0.weight"], atol=1e-7)


def test_a_learned_initial_state_gets_gradients_and_survives_files_and_resets(tmp_path):
    rng = np.random.default_rng(6)
    lstm = sr.LSTM(2, 4, num_layers=2, learn_initial_state=True, seed=0)
    assert lstm.learn_initial_state and lstm.state_dict()["initial_c"].shape == (2, 4)
    assert not lstm.state_dict()["initial_h"].any()  # starts at zeros
    h0, c0 = rng.standard_normal((2, 2, 4)).astype(np.float32)
    lstm.initial_state = (h0, c0)
    model = sr.Sequential(lstm, sr.Linear(4, 1, seed=1))
    x = rng.standard_normal((8, 3, 2)).astype(np.float32)
    reference = torch.nn.LSTM(2, 4, 2)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items() if "initial" not in k})
    head = torch.nn.Linear(4, 1)
    head.load_state_dict({k: torch.from_numpy(v) for k, v in model[1].state_dict().items()})
    th, tc = (torch.tensor(v, requires_grad=True) for v in (h0, c0))
    out = head(reference(torch.from_numpy(x), (th[:, None].expand(2, 3, 4), tc[:, None].expand(2, 3, 4)))[0])
    y, _ = model(x, train=True)
    np.testing.assert_allclose(y, out.detach().numpy(), atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    model.backward(dy)
    (out * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(model.grads()["0.initial_h"], th.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(model.grads()["0.initial_c"], tc.grad.numpy(), atol=1e-5)
    # Given a state, the initial state takes no part and gets no gradient.
    model.zero_grad()
    model(x, state=(np.zeros((2, 3, 4), np.float32),) * 2, train=True)
    model.backward(dy)
    assert not model.grads()["0.initial_h"].any()
    # Saved, loaded, streamed, reset: it starts there every time.
    path = tmp_path / "learned.safetensors"
    model.save(path)
    loaded = sr.load(path)
    assert loaded[0].learn_initial_state
    stream = loaded.stream(3)
    first = stream.process(x)
    stream.reset()
    np.testing.assert_allclose(stream.process(x), first, atol=0)
    stream.reset(1)
    again = stream.process(x)
    np.testing.assert_allclose(again[:, 1], first[:, 1], atol=0)
    np.testing.assert_allclose(first, y, atol=1e-6)


def test_a_set_initial_state_is_where_calls_streams_and_pools_start(tmp_path):
    rng = np.random.default_rng(7)
    gru = sr.GRU(3, 5, seed=2)
    assert gru.initial_state is None
    h0 = rng.standard_normal((1, 5)).astype(np.float32)
    gru.initial_state = h0
    assert "initial_h" not in gru.state_dict()  # set, not learned: no parameter
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    explicit, _ = gru(x, state=np.repeat(h0[:, None], 2, axis=1))
    implicit, _ = gru(x)
    np.testing.assert_array_equal(implicit, explicit)
    stream = gru.stream(2)
    np.testing.assert_allclose(stream.process(x), explicit, atol=1e-6)
    stream.state = None
    np.testing.assert_allclose(stream.process(x), explicit, atol=1e-6)
    pool = gru.pool(4)
    ids = [pool.open(), pool.open()]
    np.testing.assert_allclose(pool.process(ids, x), explicit, atol=1e-6)
    pool.reset(ids)
    np.testing.assert_allclose(pool.process(ids, x), explicit, atol=1e-6)
    path = tmp_path / "set.safetensors"
    gru.save(path)
    np.testing.assert_array_equal(sr.load(path).initial_state, h0)
    gru.initial_state = None
    assert gru.initial_state is None
    np.testing.assert_array_equal(gru(x)[0], gru(x, state=np.zeros((1, 2, 5), np.float32))[0])
    with pytest.raises(ValueError, match="initial_state"):
        gru.initial_state = np.zeros((2, 5), np.float32)


def test_bad_models_and_inputs_are_refused():
    with pytest.raises(ValueError, match="takes 4 features, but the block before gives 3"):
        sr.Sequential(sr.Linear(2, 3), sr.LSTM(4, 4))
    with pytest.raises(ValueError, match="at least one block"):
        sr.Sequential()
    with pytest.raises(ValueError, match="only element-wise"):
        sr.Sequential(sr.Tanh())
    with pytest.raises(TypeError, match="blocks\\[1\\]"):
        sr.Sequential(sr.Linear(2, 3), torch.nn.Tanh())
    with pytest.raises(ValueError, match="one layout"):
        sr.Sequential(sr.LSTM(2, 3), sr.LSTM(3, 3, batch_first=True))
    with pytest.raises(TypeError, match="got LSTMCell"):
        sr.Sequential(sr.Linear(2, 3), sr.LSTMCell(3, 3))
    ours, _ = _rtneural_model()
    with pytest.raises(ValueError, match="x"):
        ours(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(TypeError, match="state"):
        ours(np.zeros((5, 2, 1), np.float32), state=np.zeros((1, 2, 8), np.float32))
    with pytest.raises(ValueError, match="state"):
        ours(np.zeros((5, 2, 1), np.float32), state=(np.zeros((1, 2, 8), np.float32),) * 2 + (None,))
    with pytest.raises(ValueError, match="backward|training"):
        sr.Sequential(sr.Linear(1, 2)).backward(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="bidirectional"):
        sr.Sequential(sr.LSTM(2, 3, bidirectional=True), sr.Linear(6, 1)).stream(1)
    stream = ours.stream(2)
    with pytest.raises(ValueError, match="x"):
        stream.step(np.zeros(3, np.float32))
    with pytest.raises(IndexError):
        stream.reset(2)


def test_a_corrupt_whole_model_file_is_refused(tmp_path):
    ours, _ = _rtneural_model()
    path = tmp_path / "model.safetensors"
    ours.save(path)
    data = path.read_bytes()
    for old, new in [(b'"0.type":"Linear"', b'"0.type":"Conv1D"'), (b'"blocks":"4"', b'"blocks":"3"'),
                     (b'"2.hidden_size":"8"', b'"2.hidden_size":"9"'), (b'"3.in_features":"8"', b'"3.in_features":"7"')]:
        assert old in data, old
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(data.replace(old, new))
        with pytest.raises(ValueError, match="model file"):
            sr.load(bad)
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        sr.load(bad)


def test_an_initial_state_goes_to_onnx_as_the_default_state(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(8)
    lstm = sr.LSTM(3, 4, num_layers=2, seed=3)
    lstm.initial_state = tuple(rng.standard_normal((2, 2, 4)).astype(np.float32))
    path = tmp_path / "initial.onnx"
    sr.onnx.save(lstm, path)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(y, lstm(x)[0], atol=1e-5)
