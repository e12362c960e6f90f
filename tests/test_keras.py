# tests/test_keras.py
# from_keras: Keras 3 layers and Sequential models against Keras's own outputs, and the refusals.
# Part of streamrnn, MIT licence.
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow here
keras = pytest.importorskip("keras")
layers = keras.layers
# np.array(torch tensor), inside keras.ops.convert_to_numpy, warns with NumPy 2 and this torch.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

import streamrnn as sr  # noqa: E402
from conftest import assert_close  # noqa: E402

B, T, I, H = 2, 7, 3, 5


def _x(seed=0, shape=(B, T, I)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _keras_model(*stack, seed=0, shape=(T, I)):
    """A built keras.Sequential with every weight (biases too, which Keras starts at zero) random."""
    model = keras.Sequential([keras.Input(shape=shape), *stack])
    rng = np.random.default_rng(100 + seed)
    for variable in model.weights:
        variable.assign(rng.uniform(-0.6, 0.6, tuple(variable.shape)).astype(np.float32))
    return model


def _run_keras(model, x):
    return keras.ops.convert_to_numpy(model(x))


def _single(layer, seed=0):
    """Convert one layer (built inside a Sequential) and compare it with Keras on random input."""
    model = _keras_model(layer, seed=seed)
    twin = sr.from_keras(layer)
    x = _x(seed)
    y, _ = twin(x)
    assert_close(y, _run_keras(model, x), what=f"{layer.name} output")
    return twin


@pytest.mark.parametrize("bias", [True, False])
def test_lstm(bias):
    twin = _single(layers.LSTM(H, return_sequences=True, use_bias=bias))
    assert isinstance(twin, sr.LSTM)
    assert (twin.batch_first, twin.num_layers, twin.bias, twin.hidden_size) == (True, 1, bias, H)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru(reset_after, bias):
    twin = _single(layers.GRU(H, return_sequences=True, reset_after=reset_after, use_bias=bias))
    assert isinstance(twin, sr.GRU)
    assert (twin.reset_after, twin.bias, twin.batch_first) == (reset_after, bias, True)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_simple_rnn(activation):
    twin = _single(layers.SimpleRNN(H, return_sequences=True, activation=activation))
    assert isinstance(twin, sr.RNN) and twin.nonlinearity == activation


def test_rnn_of_a_cell_is_its_layer():
    twin = _single(layers.RNN(layers.LSTMCell(H), return_sequences=True))
    assert isinstance(twin, sr.LSTM)


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_bidirectional(cls):
    twin = _single(layers.Bidirectional(cls(H, return_sequences=True)))
    assert twin.bidirectional and twin.batch_first
    assert "weight_hh_l0_reverse" in twin.state_dict()


def _rtneural_stack(recurrent=None):
    return [layers.TimeDistributed(layers.Dense(8, activation="tanh")),
            recurrent or layers.LSTM(8, return_sequences=True), layers.Dense(1)]


def test_rtneural_sequential():
    model = _keras_model(*_rtneural_stack())
    m = sr.from_keras(model)
    assert isinstance(m, sr.Sequential)
    assert [type(b) for b in m.blocks] == [sr.Linear, sr.Tanh, sr.LSTM, sr.Linear]
    assert m.blocks[2].batch_first
    x = _x(1)
    y, _ = m(x)
    assert_close(y, _run_keras(model, x))


@pytest.mark.parametrize("recurrent", [
    lambda: layers.LSTM(8, return_sequences=True), lambda: layers.GRU(8, return_sequences=True, reset_after=False),
    lambda: layers.SimpleRNN(8, return_sequences=True)], ids=["LSTM", "GRU-reset-before", "SimpleRNN"])
def test_sequential_streams_step_by_step(recurrent):
    model = _keras_model(*_rtneural_stack(recurrent()), seed=2)
    m = sr.from_keras(model)
    x = _x(2, (1, T, I))
    s = m.stream(1)
    y = np.stack([s.step(x[:, t]) for t in range(T)], axis=1)
    assert_close(y, _run_keras(model, x))


def test_converted_sequential_saves_and_loads(tmp_path):
    model = _keras_model(*_rtneural_stack(layers.GRU(8, return_sequences=True)), seed=5)
    m = sr.from_keras(model)
    m.save(tmp_path / "keras.safetensors")
    x = _x(5)
    y, _ = sr.load(tmp_path / "keras.safetensors")(x)
    assert_close(y, _run_keras(model, x))


def test_sequential_with_activation_layers():
    model = _keras_model(
        layers.Dense(6), layers.Activation("elu"), layers.GRU(H, return_sequences=True, reset_after=False),
        layers.LeakyReLU(negative_slope=0.2), layers.Dropout(0.5), layers.Dense(4, activation="softsign"),
        layers.Activation("gelu"), layers.Dense(4, activation="leaky_relu"), layers.ReLU(),
        layers.Dense(3, activation="sigmoid"), layers.Activation("linear"),
        layers.Dense(3, activation=layers.ELU(alpha=0.5)), seed=3)
    m = sr.from_keras(model)
    assert [type(b) for b in m.blocks] == [sr.Linear, sr.ELU, sr.GRU, sr.LeakyReLU, sr.Linear, sr.Softsign, sr.GELU,
                                           sr.Linear, sr.LeakyReLU, sr.ReLU, sr.Linear, sr.Sigmoid, sr.Identity,
                                           sr.Linear, sr.ELU]
    x = _x(3)
    y, _ = m(x)
    assert_close(y, _run_keras(model, x))


def test_consecutive_recurrent_layers_stay_separate_blocks():
    model = _keras_model(layers.LSTM(H, return_sequences=True),
                         layers.Bidirectional(layers.GRU(4, return_sequences=True)),
                         layers.SimpleRNN(3, return_sequences=True), seed=4)
    m = sr.from_keras(model)
    assert [type(b) for b in m.blocks] == [sr.LSTM, sr.GRU, sr.RNN]
    x = _x(4)
    y, _ = m(x)
    assert_close(y, _run_keras(model, x))


def _refused(layer_or_stack, *words):
    """from_keras of a layer or stack raises ValueError whose message has every word."""
    target = layer_or_stack if isinstance(layer_or_stack, layers.Layer) else _keras_model(*layer_or_stack)
    with pytest.raises(ValueError) as info:
        sr.from_keras(target)
    for word in words:
        assert word in str(info.value)


def test_refuses_an_unsupported_activation():
    _refused([layers.LSTM(H, return_sequences=True, activation="relu", name="relu_lstm")], "relu_lstm", "activation")
    _refused([layers.GRU(H, return_sequences=True, recurrent_activation="hard_sigmoid", name="hard_gru")],
             "hard_gru", "recurrent_activation")
    _refused([layers.Dense(4, activation="softmax", name="probs")], "probs", "softmax")
    _refused([layers.Activation("silu", name="silu_layer")], "silu_layer", "silu")
    _refused([layers.ReLU(max_value=6.0, name="relu6")], "relu6", "max_value")


def test_refuses_return_sequences_false():
    _refused([layers.LSTM(H, name="encoder"), layers.Dense(1)], "encoder", "return_sequences")
    _refused([layers.LSTM(H, return_sequences=True), layers.GRU(H, name="last")], "last", "return_sequences")


def test_refuses_go_backwards():
    _refused([layers.GRU(H, return_sequences=True, go_backwards=True, name="backwards")], "backwards", "go_backwards")


def test_refuses_bidirectional_merge_modes_but_concat():
    _refused([layers.Bidirectional(layers.LSTM(H, return_sequences=True), merge_mode="sum", name="summed")],
             "summed", "merge_mode")


def test_refuses_an_unsupported_layer():
    _refused([layers.Conv1D(4, 3, name="conv"), layers.LSTM(H, return_sequences=True)], "conv", "Conv1D")
    _refused([layers.TimeDistributed(layers.LayerNormalization(), name="td_norm")], "td_norm", "TimeDistributed")


def test_refuses_an_unbuilt_layer():
    with pytest.raises(ValueError, match="not built"):
        sr.from_keras(layers.LSTM(H, return_sequences=True, name="fresh"))


def test_refuses_a_functional_model():
    inputs = keras.Input(shape=(T, I))
    model = keras.Model(inputs, layers.LSTM(H, return_sequences=True)(inputs), name="functional_one")
    with pytest.raises(ValueError, match="functional_one"):
        sr.from_keras(model)


def test_a_non_keras_object_is_a_type_error():
    with pytest.raises(TypeError):
        sr.from_keras(object())


def test_without_keras_the_error_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError
    with pytest.raises(ImportError, match="pip install keras"):
        sr.from_keras(object())
