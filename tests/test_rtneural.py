# tests/test_rtneural.py: sr.load_rtneural against Keras and PyTorch: RTNeural JSON model files,
# written here as RTNeural's Keras and PyTorch exporters lay them out, loaded and run whole and
# streamed; the layers and files it refuses. Part of streamrnn, MIT licence.
import json
import os

import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import assert_close, randn, rng_for

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the PyTorch the tests already use
keras = pytest.importorskip("keras")
layers = keras.layers

# Keras's variables convert to NumPy through an __array__ that NumPy 2 warns about; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

# ------------------------------------------------------------------------------------------------
# RTNeural's Keras exporter, python/model_utils.py (save_model_json / save_model), rewritten here.
# Keras 3 has no layer.output_shape; layer.output.shape is the same tuple (None for free sizes).


def keras_layer_type(layer):
    """model_utils.py get_layer_type, in its order (TimeDistributed first, GRU and LSTM before Dense)."""
    for cls, name in ((layers.TimeDistributed, "time-distributed-dense"), (layers.GRU, "gru"), (layers.LSTM, "lstm"),
                      (layers.Dense, "dense"), (layers.Conv1D, "conv1d"), (layers.PReLU, "prelu")):
        if isinstance(layer, cls):
            return name
    if isinstance(layer, layers.BatchNormalization):
        return "batchnorm" if len(layer.input.shape) == 3 else "batchnorm2d"
    if isinstance(layer, layers.Conv2D):
        return "conv2d"
    if isinstance(layer, layers.Activation):
        return "activation"
    return "unknown"


def keras_activation(layer):
    """model_utils.py get_layer_activation: the five names it knows, '' for any other."""
    if isinstance(layer, layers.TimeDistributed):
        return keras_activation(layer.layer)
    if not hasattr(layer, "activation"):
        return ""
    for name in ("tanh", "relu", "sigmoid", "softmax", "elu"):
        if layer.activation == getattr(keras.activations, name):
            return name
    return ""


def keras_document(model):
    """model_utils.py save_model_json (InputLayer skipped: Keras 3 leaves it out of model.layers)."""
    out = []
    for layer in model.layers:
        d = {"type": keras_layer_type(layer), "activation": keras_activation(layer), "shape": list(layer.output.shape)}
        if d["type"] == "conv1d":
            d["kernel_size"], d["dilation"] = list(layer.kernel_size), list(layer.dilation_rate)
        if d["type"] in ("batchnorm", "batchnorm2d"):
            d["epsilon"] = layer.epsilon
        d["weights"] = [w.tolist() for w in layer.get_weights()]
        out.append(d)
    return {"in_shape": list(model.input_shape), "layers": out}


def write(tmp_path, document, name="model.json"):
    """model_utils.py save_model: json.dump(..., indent=4)."""
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=4))
    return path


def keras_model(rng, input_size, *stack):
    """A Sequential of `stack` with random weights (biases too: Keras initialises them to zero)."""
    model = keras.Sequential([keras.Input((None, input_size)), *stack])
    for layer in model.layers:
        layer.set_weights([randn(rng, *w.shape, scale=0.5) for w in layer.get_weights()])
    return model


def keras_reference(model, x):
    """Keras's output for time-major x (T, B, I) -> (T, B, O)."""
    y = keras.ops.convert_to_numpy(model(np.ascontiguousarray(x.transpose(1, 0, 2))))
    return y.transpose(1, 0, 2)


KERAS_MODELS = {
    "time-distributed dense, lstm, dense": lambda: (2, [layers.TimeDistributed(layers.Dense(8, activation="tanh")),
                                                        layers.LSTM(8, return_sequences=True), layers.Dense(1)]),
    "gru, dense": lambda: (3, [layers.GRU(6, return_sequences=True), layers.Dense(2)]),
    "gru, lstm, dense": lambda: (1, [layers.GRU(8, return_sequences=True), layers.LSTM(5, return_sequences=True),
                                     layers.Dense(1, activation="tanh")]),
    "dense activations": lambda: (4, [layers.Dense(6, activation="relu"), layers.Dense(6, activation="sigmoid"),
                                      layers.Dense(5, activation="elu"), layers.Activation("tanh"),
                                      layers.Dense(4), layers.Activation("relu"), layers.Dense(3)]),
}


@pytest.mark.parametrize("name", list(KERAS_MODELS))
def test_keras_exports_equal_keras(tmp_path, name):
    rng = rng_for("rtneural keras", name)
    input_size, stack = KERAS_MODELS[name]()
    model = keras_model(rng, input_size, *stack)
    m = sr.load_rtneural(write(tmp_path, keras_document(model)))
    x = randn(rng, 30, 3, input_size)
    assert_close(m(x)[0], keras_reference(model, x), what=f"{name}: y (T, B, O)")
    assert_close(m(x[:, 1])[0], keras_reference(model, x[:, 1:2])[:, 0], what=f"{name}: unbatched y (T, O)")


@pytest.mark.parametrize("name", list(KERAS_MODELS))
def test_streaming_one_sample_at_a_time_equals_keras(tmp_path, name):
    # RTNeural's own way of running a model: one step at a time, from a zero state.
    rng = rng_for("rtneural stream", name)
    input_size, stack = KERAS_MODELS[name]()
    model = keras_model(rng, input_size, *stack)
    m = sr.load_rtneural(write(tmp_path, keras_document(model)))
    x = randn(rng, 25, 1, input_size)
    s = m.stream(1)
    y = np.stack([s.step(x_t[0]) for x_t in x])
    assert_close(y, keras_reference(model, x)[:, 0], what=f"{name}: streamed y")


def test_the_blocks_are_the_layers(tmp_path):
    rng = rng_for("rtneural blocks")
    model = keras_model(rng, 2, layers.TimeDistributed(layers.Dense(8, activation="tanh")),
                        layers.LSTM(8, return_sequences=True), layers.GRU(4, return_sequences=True),
                        layers.Dense(1), layers.Activation("sigmoid"))
    m = sr.load_rtneural(write(tmp_path, keras_document(model)))
    kinds = [type(b) for b in m.blocks]
    assert kinds == [sr.Linear, sr.Tanh, sr.LSTM, sr.GRU, sr.Linear, sr.Sigmoid]
    assert not m.blocks[2].batch_first and not m.blocks[3].batch_first  # time-major, one step at a time
    assert m.blocks[3].reset_after


def test_softsign_is_read_by_name_and_the_exporters_blank_is_none(tmp_path):
    # RTNeural's exporter knows five activations and writes "" for any other, which RTNeural's
    # parser reads as none; a file naming softsign gets a Softsign block.
    rng = rng_for("rtneural softsign")
    model = keras_model(rng, 4, layers.Dense(5, activation="softsign"), layers.Dense(2))
    document = keras_document(model)
    assert document["layers"][0]["activation"] == ""
    x = randn(rng, 12, 2, 4)
    kernel, bias = model.layers[0].get_weights()
    kernel2, bias2 = model.layers[1].get_weights()
    as_rtneural_runs_it = (x @ kernel + bias) @ kernel2 + bias2
    assert_close(sr.load_rtneural(write(tmp_path, document))(x)[0], as_rtneural_runs_it, what="activation ''")
    document["layers"][0]["activation"] = "softsign"
    assert_close(sr.load_rtneural(write(tmp_path, document))(x)[0], keras_reference(model, x), what="softsign")


def test_an_activation_layer_without_a_function_adds_nothing(tmp_path):
    rng = rng_for("rtneural blank activation")
    model = keras_model(rng, 3, layers.Dense(4), layers.Activation("linear"), layers.Dense(2))
    document = keras_document(model)
    assert document["layers"][1] == {"type": "activation", "activation": "", "shape": [None, None, 4], "weights": []}
    m = sr.load_rtneural(write(tmp_path, document))
    assert [type(b) for b in m.blocks] == [sr.Linear, sr.Linear]
    x = randn(rng, 9, 2, 3)
    assert_close(m(x)[0], keras_reference(model, x))


# ------------------------------------------------------------------------------------------------
# RTNeural's PyTorch exporter, python/model_utils_torch.py (get_weights, save_model_json),
# rewritten here: it converts each module's tensors to the Keras layouts above. Its quirks, which
# the files carry: an LSTM's bias_hh_l0 is dropped, and its kernel is weight_ih_l0 flattened
# into one row (the Keras kernel only for input_size 1); a Linear's weight is flattened into
# (out * in, 1) rows (the Keras kernel only for out_features 1); only layer 0 of a stack is read.


def _swap_zr(a, hidden):
    """model_utils_torch.py swap_zr_weights / swap_zr_biases: PyTorch's r, z rows as Keras's z, r."""
    a = a.copy()
    a[:2 * hidden] = np.concatenate([a[hidden:2 * hidden], a[:hidden]])
    return a


def torch_weights(layer):
    t = {k: v.detach().numpy().astype(np.float64) for k, v in layer.state_dict().items()}
    if isinstance(layer, torch.nn.LSTM):
        return [[t["weight_ih_l0"].reshape(-1).tolist()], t["weight_hh_l0"].T.tolist(), t["bias_ih_l0"].tolist()]
    if isinstance(layer, torch.nn.GRU):
        H = layer.hidden_size
        return [_swap_zr(t["weight_ih_l0"], H).T.tolist(), _swap_zr(t["weight_hh_l0"], H).T.tolist(),
                [_swap_zr(t["bias_ih_l0"], H).tolist(), _swap_zr(t["bias_hh_l0"], H).tolist()]]
    if isinstance(layer, torch.nn.Linear):
        return [[[w] for w in t["weight"].reshape(-1).tolist()], t["bias"].tolist()]
    return []


TORCH_ACTIVATIONS = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu", torch.nn.Sigmoid: "sigmoid",
                     torch.nn.Softmax: "softmax", torch.nn.ELU: "elu"}


def torch_activation(model, layer):
    """model_utils_torch.py get_layer_activation: recurrent layers 'tanh' (or the model's
    lstm_activation / gru_activation), a Linear the model's dense_activation, an activation
    module the model's `activation` attribute; '' without one."""
    if isinstance(layer, (torch.nn.LSTM, torch.nn.GRU)):
        attr, default = ("lstm_activation" if isinstance(layer, torch.nn.LSTM) else "gru_activation"), torch.nn.Tanh()
    elif isinstance(layer, torch.nn.Linear):
        attr, default = "dense_activation", None
    else:
        attr, default = "activation", None
    activation = getattr(model, attr, default)
    return next((n for cls, n in TORCH_ACTIVATIONS.items() if isinstance(activation, cls)), "")


def torch_document(model, input_shape):
    """model_utils_torch.py save_model_json: children named *_activation are skipped; shape is
    [None, input_shape[0], out size], an activation layer's out size the one before it."""
    out, current = [], None
    for name, layer in model.named_children():
        if name.endswith("_activation"):
            continue
        if isinstance(layer, (torch.nn.LSTM, torch.nn.GRU)):
            kind, size = ("lstm" if isinstance(layer, torch.nn.LSTM) else "gru"), layer.hidden_size
        elif isinstance(layer, torch.nn.Linear):
            kind, size = "dense", layer.out_features
        elif type(layer) in TORCH_ACTIVATIONS:
            kind, size = "activation", current
        else:
            kind, size = "unknown", None
        current = size if size is not None else current
        out.append({"name": name, "type": kind, "activation": torch_activation(model, layer),
                    "shape": [None, input_shape[0], size], "weights": torch_weights(layer)})
    return {"in_shape": [None, *input_shape], "layers": out}


class TorchLSTM(torch.nn.Module):
    """RTNeural's python/lstm_torch.py model, one LSTM layer: LSTM(1, 8) -> Linear(8, 1)."""

    def __init__(self, input_size=1):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, 8)
        self.dense = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.dense(self.lstm(x)[0])


class TorchGRU(torch.nn.Module):
    """GRU(3, 8) -> Linear(8, 1) -> tanh, the tanh named dense_activation as the exporter expects."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 8)
        self.dense = torch.nn.Linear(8, 1)
        self.dense_activation = torch.nn.Tanh()

    def forward(self, x):
        return self.dense_activation(self.dense(self.gru(x)[0]))


def torch_reference(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def test_pytorch_lstm_export_equals_pytorch_without_the_dropped_bias(tmp_path):
    torch.manual_seed(1)
    model = TorchLSTM()
    x = randn(rng_for("rtneural torch lstm"), 40, 1)
    m = sr.load_rtneural(write(tmp_path, torch_document(model, (40, 1))))
    with torch.no_grad():
        model.lstm.bias_hh_l0.zero_()  # what the file holds: the exporter keeps bias_ih_l0 alone
    assert_close(m(x)[0], torch_reference(model, x), what="y (T, 1)")
    assert_close(m(x[:, None])[0][:, 0], torch_reference(model, x), what="y (T, 1, 1)")


def test_pytorch_gru_export_equals_pytorch(tmp_path):
    torch.manual_seed(2)
    model = TorchGRU()
    x = randn(rng_for("rtneural torch gru"), 40, 3)
    document = torch_document(model, (40, 3))
    assert [(d["type"], d["activation"]) for d in document["layers"]] == [("gru", "tanh"), ("dense", "tanh")]
    m = sr.load_rtneural(write(tmp_path, document))
    assert_close(m(x)[0], torch_reference(model, x), what="y (T, 1)")
    s = m.stream(1)
    assert_close(np.stack([s.step(x_t) for x_t in x]), torch_reference(model, x), what="streamed y")


def test_a_pytorch_activation_module_exported_blank_adds_nothing(tmp_path):
    # The exporter names an activation module's function only from the model's `activation`
    # attribute; without one it writes "", and RTNeural (so the loader) adds no activation.
    torch.manual_seed(3)
    model = torch.nn.Module()
    model.gru, model.relu, model.dense = torch.nn.GRU(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)
    document = torch_document(model, (10, 2))
    assert document["layers"][1]["type"] == "activation" and document["layers"][1]["activation"] == ""
    m = sr.load_rtneural(write(tmp_path, document))
    assert [type(b) for b in m.blocks] == [sr.GRU, sr.Linear]
    x = randn(rng_for("rtneural torch blank"), 10, 2)
    with torch.no_grad():
        expected = model.dense(model.gru(torch.from_numpy(x))[0]).numpy()
    assert_close(m(x)[0], expected)


def test_pytorch_exports_rtneural_cannot_read_are_refused(tmp_path):
    # input_size 2: the exporter's one-row LSTM kernel (1, 64) is not the (2, 32) kernel RTNeural reads.
    document = torch_document(TorchLSTM(input_size=2), (10, 2))
    with pytest.raises(ValueError, match=r"layer 0 \(lstm\).*kernel.*\(2, 32\).*\(1, 64\)"):
        sr.load_rtneural(write(tmp_path, document))
    # A Linear(8, 2): its (16, 1) rows are not the (8, 2) kernel.
    model = torch.nn.Module()
    model.gru, model.dense = torch.nn.GRU(1, 8), torch.nn.Linear(8, 2)
    with pytest.raises(ValueError, match=r"layer 1 \(dense\).*kernel.*\(8, 2\).*\(16, 1\)"):
        sr.load_rtneural(write(tmp_path, torch_document(model, (10, 1))))


# ------------------------------------------------------------------------------------------------
# Refused layers and malformed files


@pytest.mark.parametrize("layer, kind", [
    (lambda: layers.Conv1D(4, 3, padding="causal"), "conv1d"),
    (lambda: layers.PReLU(shared_axes=[1]), "prelu"),
    (lambda: layers.BatchNormalization(), "batchnorm"),
    (lambda: layers.Dropout(0.1), "unknown"),
], ids=["conv1d", "prelu", "batchnorm", "unknown"])
def test_unsupported_layer_types_are_refused_naming_them(tmp_path, layer, kind):
    rng = rng_for("rtneural refused", kind)
    model = keras_model(rng, 3, layers.Dense(4, activation="tanh"), layer(), layers.Dense(1))
    with pytest.raises(ValueError, match=rf"layer 1: type '{kind}' is not supported"):
        sr.load_rtneural(write(tmp_path, keras_document(model)))


@pytest.mark.parametrize("kind", ["conv2d", "batchnorm2d", "lstm2"])
def test_other_types_are_refused_naming_them(tmp_path, kind):
    document = {"in_shape": [None, None, 2], "layers": [
        {"type": "dense", "activation": "", "shape": [None, None, 2], "weights": [[[1, 0], [0, 1]], [0, 0]]},
        {"type": kind, "activation": "", "shape": [None, None, 2], "weights": []}]}
    with pytest.raises(ValueError, match=rf"layer 1: type '{kind}' is not supported"):
        sr.load_rtneural(write(tmp_path, document))


def test_softmax_is_refused_naming_it(tmp_path):
    model = keras_model(rng_for("rtneural softmax"), 3, layers.Dense(4), layers.Dense(3, activation="softmax"))
    with pytest.raises(ValueError, match=r"layer 1 \(dense\): activation 'softmax' is not supported"):
        sr.load_rtneural(write(tmp_path, keras_document(model)))


def test_a_reset_before_gru_is_refused(tmp_path):
    # Keras's reset_after=False GRU has one (3H,) bias; RTNeural runs the reset-after GRU only.
    model = keras_model(rng_for("rtneural gru v1"), 2, layers.GRU(4, reset_after=False, return_sequences=True))
    with pytest.raises(ValueError, match=r"layer 0 \(gru\): weights\[2\].*reset_after=True.*\(2, 12\).*\(12,\)"):
        sr.load_rtneural(write(tmp_path, keras_document(model)))


def test_a_dense_without_bias_is_refused(tmp_path):
    model = keras_model(rng_for("rtneural no bias"), 2, layers.Dense(3, use_bias=False))
    with pytest.raises(ValueError, match=r"layer 0 \(dense\): weights: expected 2 arrays.*got 1"):
        sr.load_rtneural(write(tmp_path, keras_document(model)))


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sr.load_rtneural(tmp_path / "absent.json")


def _valid():
    """A small valid file: dense (2 -> 3, tanh), lstm (3 -> 2), dense (2 -> 1)."""
    rng = rng_for("rtneural valid")
    return {"in_shape": [None, None, 2], "layers": [
        {"type": "dense", "activation": "tanh", "shape": [None, None, 3],
         "weights": [randn(rng, 2, 3).tolist(), randn(rng, 3).tolist()]},
        {"type": "lstm", "activation": "tanh", "shape": [None, None, 2],
         "weights": [randn(rng, 3, 8).tolist(), randn(rng, 2, 8).tolist(), randn(rng, 8).tolist()]},
        {"type": "dense", "activation": "", "shape": [None, None, 1],
         "weights": [randn(rng, 2, 1).tolist(), randn(rng, 1).tolist()]}]}


def _edit(layer, **changes):
    def edit(d):
        d["layers"][layer].update(changes)
        return d
    return edit


def _weight(layer, k, value):
    def edit(d):
        d["layers"][layer]["weights"][k] = value(d["layers"][layer]["weights"][k])
        return d
    return edit


def _drop(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


MALFORMED = {
    "truncated JSON": (lambda d: json.dumps(d)[:-30], "not valid JSON"),
    "not JSON": (lambda d: "RTNeural\x00", "not valid JSON"),
    "NaN weight": (lambda d: json.dumps(_weight(2, 1, lambda b: ["NAN"])(d)).replace('"NAN"', "NaN"), "JSON"),
    "not an object": (lambda d: d["layers"], "JSON object"),
    "no in_shape": (_drop("in_shape"), "in_shape"),
    "no layers": (_drop("layers"), "layers"),
    "a state_dict": (lambda d: {"lstm.weight_ih_l0": [[0.0]], "lstm.bias_ih_l0": [0.0]}, "state_dict"),
    "layers not a list": (lambda d: dict(d, layers={"0": d["layers"][0]}), "layers"),
    "in_shape not a shape": (lambda d: dict(d, in_shape=[None, None]), "in_shape"),
    "a 2-D input": (lambda d: dict(d, in_shape=[None, None, 4, 2]), "conv2d"),
    "a layer not an object": (lambda d: dict(d, layers=[d["layers"][0], "lstm"]), "layer 1"),
    "no type": (lambda d: dict(d, layers=[{k: v for k, v in d["layers"][0].items() if k != "type"}]), "layer 0.*type"),
    "no shape": (_edit(1, shape=None), r"layer 1 \(lstm\): shape"),
    "shape of a float": (_edit(1, shape=[None, None, 2.0]), r"layer 1 \(lstm\): shape"),
    "no weights": (_edit(1, weights=None), r"layer 1 \(lstm\): weights"),
    "too few weights": (_edit(1, weights=[[[0.0] * 8] * 3]), r"layer 1 \(lstm\): weights: expected 3"),
    "a transposed kernel": (_weight(0, 0, lambda w: np.array(w).T.tolist()), r"layer 0 \(dense\).*\(2, 3\).*\(3, 2\)"),
    "a wrong recurrent kernel": (_weight(1, 1, lambda w: w[:1]), r"layer 1 \(lstm\): weights\[1\].*\(2, 8\).*\(1, 8\)"),
    "ragged rows": (_weight(1, 0, lambda w: [w[0], w[1][:-1], w[2]]), r"layer 1 \(lstm\).*different lengths"),
    "a string weight": (_weight(1, 2, lambda b: b[:3] + ["0.1"] + b[4:]), r"layer 1 \(lstm\).*numbers.*\"0.1\""),
    "a null weight": (_weight(2, 1, lambda b: [None]), r"layer 2 \(dense\).*numbers.*null"),
    "a bool weight": (_weight(2, 1, lambda b: [True]), r"layer 2 \(dense\).*numbers.*true"),
    "a weight beyond float32": (_weight(2, 1, lambda b: [1e39]), r"layer 2 \(dense\).*float32"),
    "an integer beyond double": (lambda d: json.dumps(_weight(2, 1, lambda b: ["BIG"])(d)).replace('"BIG"', "9" * 400),
                                 r"layer 2 \(dense\).*float32"),
    "an unknown activation": (_edit(0, activation="swish"), r"layer 0 \(dense\): activation 'swish'"),
    "activation not a string": (_edit(0, activation=None), r"layer 0 \(dense\): activation"),
    "an activation layer resizing": (lambda d: dict(d, layers=d["layers"] + [
        {"type": "activation", "activation": "relu", "shape": [None, None, 3], "weights": []}]),
                                     r"layer 3 \(activation\): shape ends in 3.*1 features"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_files_raise_value_error(tmp_path, kind):
    make, message = MALFORMED[kind]
    path = write(tmp_path, make(_valid()))
    with pytest.raises(ValueError, match=message):
        sr.load_rtneural(path)


def test_the_valid_file_of_the_malformed_cases_loads(tmp_path):
    m = sr.load_rtneural(write(tmp_path, _valid()))
    assert [type(b) for b in m.blocks] == [sr.Linear, sr.Tanh, sr.LSTM, sr.Linear]
    assert m(np.zeros((3, 2), np.float32))[0].shape == (3, 1)
