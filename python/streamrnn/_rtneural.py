# python/streamrnn/_rtneural.py: load_rtneural, an RTNeural JSON model file read as one Sequential.
# Part of streamrnn, MIT licence.
"""RTNeural (github.com/jatinchowdhury18/RTNeural) keeps a model in JSON:

    {"in_shape": [..., I], "layers": [{"type": ..., "activation": ..., "shape": [..., out],
                                       "weights": [...]}, ...]}

Its Keras exporter (python/model_utils.py, save_model) writes each layer's get_weights(); its
PyTorch exporter (python/model_utils_torch.py, save_model) converts PyTorch's tensors to the same
Keras layouts. This reads the file as RTNeural's C++ parser does (RTNeural/model_loader.h,
json_parser::parseJson), with sizes from the last entry of "in_shape" and of each layer's "shape":

* "dense", "time-distributed-dense": weights [kernel (in, out), bias (out,)] -> Linear (weight =
  kernel transposed), then the block of the layer's "activation" ("" or absent: none).
* "lstm": [kernel (in, 4H), recurrent kernel (H, 4H), bias (4H,)], gates i, f, c, o (Keras's order,
  PyTorch's i, f, g, o) -> LSTM(in, H); the bias goes to bias_ih_l0, bias_hh_l0 is zero.
* "gru": [kernel (in, 3H), recurrent kernel (H, 3H), bias (2, 3H): input, recurrent], gates z, r, h:
  Keras's reset_after=True GRU, the only one RTNeural runs. PyTorch's GRU computes the same with
  its gates in the order r, z, n, so the columns are reordered -> GRU(in, H).
* "activation": the block of the layer's "activation" alone ("": none, as RTNeural adds none).

Activations: RTNeural's tanh, relu, sigmoid and elu (its alpha is 1), and softsign, which RTNeural
has not (its exporter writes "" for it, its parser no layer) but a file may name.

The "activation" of an lstm or gru layer is ignored, as RTNeural ignores it (its cells are tanh and
sigmoid; the exporters write the Keras layer's, or "tanh"). Refused with a ValueError naming the
layer: softmax, and the types streamrnn has no block for (conv1d, conv2d, prelu, batchnorm,
batchnorm2d, and "unknown", which the exporters write for any other layer and the C++ parser
skips); so is a file RTNeural would misread, such as a kernel of the wrong shape (RTNeural fills
what is missing with zeros, or throws) or a GRU bias of shape (3H,) (Keras's reset_after=False).

RTNeural runs one time step at a time from a zero state, so the model is time-major
(batch_first=False): x (T, I) or (T, B, I) gives y (T, out) or (T, B, out)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _checks
from ._blocks import Linear
from ._json_models import read_json, show
from ._modules import GRU, LSTM, PathLike
from ._sequential import ELU, Identity, ReLU, Sequential, Sigmoid, Softsign, Tanh

Array = np.ndarray

# RTNeural's activation names -> the streamrnn block computing it.
_ACTIVATIONS = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid, "elu": ELU, "softsign": Softsign}

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_rtneural(path: PathLike) -> Any:
    """The Sequential computing the RTNeural model in the JSON file at `path` (the module
    docstring gives the layer types and layouts read). Time-major: x (T, I) or (T, B, I).

    FileNotFoundError for a missing file; ValueError naming the layer (its index in "layers" and
    its type) and what is wrong for anything that is not such a file, or that streamrnn cannot
    compute exactly."""
    document = read_json(_checks.path("path", path), "an RTNeural model file")
    size, layers = _top_level(document)
    blocks: list = []
    for index, layer in enumerate(layers):
        layer_blocks, size = _layer(index, layer, size)
        blocks += layer_blocks
    return Sequential(*(blocks or [Identity()]))  # no layer computes anything: x itself


def _top_level(document: Any) -> "tuple[int, list]":
    """The model's input size and its list of layers."""
    if not isinstance(document, dict):
        raise ValueError(f"an RTNeural model file holds a JSON object, got {show(document)}")
    missing = [key for key in ("in_shape", "layers") if key not in document]
    if missing:
        # A PyTorch state_dict saved as JSON, which RTNeural's torch_helpers.h reads into a model
        # declared in C++, is the likeliest such file: say why it cannot be read.
        raise ValueError(f"not an RTNeural model file: no {' or '.join(map(repr, missing))} (a model file has "
                         "'in_shape' and 'layers'; a PyTorch state_dict saved as JSON has no layer list)")
    layers = document["layers"]
    if not isinstance(layers, list):
        raise ValueError(f"layers: expected a list, got {show(layers)}")
    in_shape = document["in_shape"]
    if isinstance(in_shape, list) and len(in_shape) == 4:
        raise ValueError("in_shape: a 2-D (conv2d) input is not supported; streamrnn reads (time, features) inputs")
    return _last_size(in_shape, "in_shape"), layers


def _layer(index: int, layer: Any, size: int) -> "tuple[list, int]":
    """The blocks of layer `index`, whose input has `size` features, and its output size."""
    if not isinstance(layer, dict):
        raise ValueError(f"layer {index}: expected a JSON object, got {show(layer)}")
    kind = layer.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"layer {index}: 'type' missing or not a string ({show(kind)})")
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"layer {index}: type {kind!r} is not supported; streamrnn reads the types "
                         f"{', '.join(_READERS)}")
    where = f"layer {index} ({kind})"
    return reader(where, layer, size, _last_size(layer.get("shape"), f"{where}: shape"))


def _dense(where: str, layer: dict, size: int, out: int) -> "tuple[list, int]":
    kernel, bias = _weights(where, layer, [("the kernel", (size, out)), ("the bias", (out,))])
    linear = Linear(size, out)
    linear.load_state_dict({"weight": np.ascontiguousarray(kernel.T), "bias": bias})
    return [linear, *_activation(where, layer)], out


def _lstm(where: str, layer: dict, size: int, hidden: int) -> "tuple[list, int]":
    kernel, recurrent, bias = _weights(where, layer, [
        ("the kernel", (size, 4 * hidden)), ("the recurrent kernel", (hidden, 4 * hidden)),
        ("the bias", (4 * hidden,))])
    lstm = LSTM(size, hidden)
    lstm.load_state_dict({"weight_ih_l0": np.ascontiguousarray(kernel.T),
                          "weight_hh_l0": np.ascontiguousarray(recurrent.T),
                          "bias_ih_l0": bias, "bias_hh_l0": np.zeros_like(bias)})
    return [lstm], hidden


def _gru(where: str, layer: dict, size: int, hidden: int) -> "tuple[list, int]":
    kernel, recurrent, bias = _weights(where, layer, [
        ("the kernel", (size, 3 * hidden)), ("the recurrent kernel", (hidden, 3 * hidden)),
        ("the bias (input and recurrent rows, Keras's reset_after=True GRU, the one RTNeural runs)",
         (2, 3 * hidden))])
    gru = GRU(size, hidden)
    gru.load_state_dict({"weight_ih_l0": np.ascontiguousarray(_rzn(kernel, hidden).T),
                         "weight_hh_l0": np.ascontiguousarray(_rzn(recurrent, hidden).T),
                         "bias_ih_l0": _rzn(bias[0], hidden), "bias_hh_l0": _rzn(bias[1], hidden)})
    return [gru], hidden


def _rzn(columns: Array, hidden: int) -> Array:
    """Keras's GRU gate blocks z, r, h (along the last axis) in PyTorch's order r, z, n."""
    z, r, h = (columns[..., k * hidden:(k + 1) * hidden] for k in range(3))
    return np.concatenate([r, z, h], axis=-1)


def _activation_layer(where: str, layer: dict, size: int, out: int) -> "tuple[list, int]":
    if out != size:
        raise ValueError(f"{where}: shape ends in {out}, but the layer's input has {size} features")
    return _activation(where, layer), size


_READERS: "dict[str, Callable[[str, dict, int, int], tuple[list, int]]]" = {
    "dense": _dense, "time-distributed-dense": _dense, "lstm": _lstm, "gru": _gru, "activation": _activation_layer,
}


def _activation(where: str, layer: dict) -> list:
    """The block of the layer's "activation" (none for "" or no such key, as in RTNeural)."""
    name = layer.get("activation", "")
    if not isinstance(name, str):
        raise ValueError(f"{where}: activation: expected a string, got {show(name)}")
    if not name:
        return []
    if name not in _ACTIVATIONS:
        raise ValueError(f"{where}: activation {name!r} is not supported; streamrnn reads "
                         f"{', '.join(map(repr, _ACTIVATIONS))} and '' (none)")
    return [_ACTIVATIONS[name]()]


def _weights(where: str, layer: dict, expected: "list[tuple[str, tuple[int, ...]]]") -> "list[Array]":
    """The layer's weight arrays, checked against the (name, shape) of each one expected."""
    weights = layer.get("weights")
    if not isinstance(weights, list):
        raise ValueError(f"{where}: weights: expected a list of arrays, got {show(weights)}")
    if len(weights) != len(expected):
        names = ", ".join(name.split(" (")[0] for name, _ in expected)
        raise ValueError(f"{where}: weights: expected {len(expected)} arrays ({names}), got {len(weights)}")
    return [_array(f"{where}: weights[{k}], {name},", value, shape)
            for k, (value, (name, shape)) in enumerate(zip(weights, expected))]


def _array(what: str, value: Any, shape: "tuple[int, ...]") -> Array:
    """Nested lists of JSON numbers of exactly `shape`, as float32."""
    stack = [value]
    while stack:  # iteratively: a file may nest deeper than Python's recursion limit
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{what} expected numbers, found {show(item)}")
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer too large for a double
        raise ValueError(f"{what} holds a number beyond float32's range") from None
    except ValueError:  # rows of different lengths
        raise ValueError(f"{what} expected shape {shape}, got rows of different lengths") from None
    if array.shape != shape:
        raise ValueError(f"{what} expected shape {shape}, got {array.shape}")
    if array.size and not np.max(np.abs(array)) <= _FLOAT32_MAX:
        raise ValueError(f"{what} holds a number beyond float32's range")
    return array.astype(np.float32)


def _last_size(shape: Any, what: str) -> int:
    """The size a shape list ends in, as RTNeural reads it (shape.back())."""
    last = shape[-1] if isinstance(shape, list) and shape else None
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"{what}: expected a list ending in a positive size, got {show(shape)}")
    return last


