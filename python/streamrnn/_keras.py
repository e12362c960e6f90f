# python/streamrnn/_keras.py: from_keras, the one-call move of a Keras 3 layer or Sequential to streamrnn.
# Part of streamrnn, MIT licence.
"""Conversion from Keras 3 layers and keras.Sequential models. keras is imported only when
from_keras is called (it is an optional dependency).

Mapping (Keras is batch-first, so every recurrent block is made with batch_first=True):

* LSTM, GRU, SimpleRNN (or keras.layers.RNN of an LSTMCell / GRUCell / SimpleRNNCell) ->
  LSTM / GRU / RNN with num_layers=1. Keras's kernel (I, G*H) and recurrent_kernel (H, G*H) are
  transposed to weight_ih_l0 (G*H, I) and weight_hh_l0 (G*H, H). An LSTM's gates are i, f, c, o in
  both libraries; a GRU's are z, r, h in Keras and r, z, n in streamrnn, so their rows are
  reordered. Keras's single bias goes to bias_ih_l0 with bias_hh_l0 zero; a reset_after=True GRU
  has two (input, recurrent), which go to bias_ih_l0 and bias_hh_l0; a reset_after=False GRU
  becomes GRU(reset_after=False) (Cho et al.'s equations, Keras's). use_bias=False -> bias=False.
  SimpleRNN's activation tanh or relu -> RNN(nonlinearity=...).
* Bidirectional(LSTM / GRU / SimpleRNN), merge_mode="concat" -> the same block with
  bidirectional=True: the forward layer's weights are *_l0, the backward layer's *_l0_reverse, and
  the output is [forward, backward] on the feature axis, as in Keras.
* Dense and TimeDistributed(Dense) -> Linear (kernel (I, O) transposed to weight (O, I)); Linear
  acts on every step of a (B, T, I) input, as Keras's Dense does. An activation= other than linear
  adds its block after the Linear.
* Activation, LeakyReLU, ReLU, ELU layers, and the activations linear (Identity), tanh, sigmoid,
  relu, leaky_relu (Keras's negative_slope, 0.2 for the function, 0.3 for the layer), elu,
  softsign, gelu (the exact, erf form only) -> Identity, Tanh, Sigmoid, ReLU, LeakyReLU, ELU,
  Softsign, GELU.
* keras.Sequential -> Sequential(*blocks), nested Sequentials flattened. keras.Input / InputLayer
  entries, and Dropout layers (the identity at inference), add no block. Consecutive recurrent
  layers stay separate blocks.

Ignored, since they do not change what a trained model computes on a sequence: dropout and
recurrent_dropout (Keras applies them in training only; the streamrnn model does not apply them,
with train=True either), stateful (a Keras layer's carried state is not copied; a streamrnn stream
carries state from call to call itself), return_state (the streamrnn model returns its state
anyway), unroll, unit_forget_bias and the initialisers.

Refused, with a ValueError naming the layer and the attribute: any other layer type or
activation; a recurrent activation other than the cell's own (LSTM/GRU: tanh and sigmoid;
SimpleRNN: tanh or relu); return_sequences=False (streamrnn models return every step: build the
layer with return_sequences=True and take y[:, -1] for Keras's last-step output); go_backwards=True
outside a Bidirectional; time_major; a Bidirectional merge_mode other than "concat"; a functional
keras.Model (only keras.Sequential); quantized layers; layers not yet built (no weights)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import numpy as np

from . import _sequential
from ._blocks import Linear
from ._modules import GRU, LSTM, RNN

Array = np.ndarray

# Activation functions with a streamrnn block: the Keras name -> (the block's name, the keyword
# arguments read from the Keras function's defaults, as the block's keyword). Read from the
# function itself, not written here, since Keras's defaults (leaky_relu's 0.2) differ from PyTorch's.
_ACTIVATIONS: "dict[str, tuple[str, dict[str, str]]]" = {
    "linear": ("Identity", {}), "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}), "relu": ("ReLU", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": "negative_slope"}), "elu": ("ELU", {"alpha": "alpha"}),
    "softsign": ("Softsign", {}), "gelu": ("GELU", {}),
}

# The recurrent cells, by Keras cell class name: (streamrnn block, gates, the cell's own activation
# and recurrent_activation; None: no recurrent activation).
_CELLS: "dict[str, tuple[type, int, str, Optional[str]]]" = {
    "LSTMCell": (LSTM, 4, "tanh", "sigmoid"), "GRUCell": (GRU, 3, "tanh", "sigmoid"),
    "SimpleRNNCell": (RNN, 1, "tanh", None),
}

_SUPPORTED = ("LSTM, GRU, SimpleRNN, RNN of their cells, Bidirectional of those, Dense, TimeDistributed(Dense), "
              "Activation, LeakyReLU, ReLU, ELU, Dropout, InputLayer and Sequential")


def from_keras(model: Any) -> Any:
    """The streamrnn twin of a Keras 3 layer or keras.Sequential, with a copy of its weights
    (float32). The twin takes (B, T, I) float32 inputs, as Keras does, and gives every step's
    output: Keras's model(x) with return_sequences=True on each recurrent layer.

    A keras.Sequential becomes a Sequential of blocks; one recurrent layer (or Bidirectional) an
    LSTM / GRU / RNN with batch_first=True; one Dense a Linear (with an activation, a Sequential of
    the Linear and the activation's block); one activation layer its block. The module docstring
    lists the mapping, what is ignored (dropout, stateful, ...) and what is refused.

    ImportError without keras; TypeError for an object that is not a Keras layer or model;
    ValueError naming the layer and the attribute for anything that cannot be converted exactly."""
    keras = _import_keras()
    if isinstance(model, keras.Sequential):
        # A model of no-ops (Input and Dropout only) still computes something: the identity.
        return _sequential.Sequential(*(_sequential_blocks(model, keras) or [_sequential.Identity()]))
    if isinstance(model, keras.Model):
        raise ValueError(f"{_where(model)}: a functional or subclassed keras.Model cannot be converted; "
                         "only keras.Sequential models and single layers can")
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"model: expected a Keras layer or keras.Sequential, got {type(model).__name__}")
    blocks = _layer_blocks(model, keras, _where(model)) or [_sequential.Identity()]
    return blocks[0] if len(blocks) == 1 else _sequential.Sequential(*blocks)


def _import_keras() -> Any:
    try:
        import keras
    except ImportError as err:  # keras itself is missing, or its backend (e.g. TensorFlow) is
        raise ImportError(f"from_keras needs Keras 3 and a backend for it (pip install keras; "
                          f"e.g. KERAS_BACKEND=torch): {err}") from err
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"from_keras needs Keras 3 (pip install -U keras), found {keras.__version__}")
    return keras


def _where(layer: Any, index: Optional[int] = None) -> str:
    """How a message names a layer: its position in the Sequential (when in one), name and class."""
    at = "" if index is None else f" {index}"
    return f"layer{at} {getattr(layer, 'name', '?')!r} ({type(layer).__name__})"


def _sequential_blocks(model: Any, keras: Any) -> list:
    blocks: list = []
    # .layers leaves out the InputLayer of a keras.Input; an InputLayer given as a layer adds no block.
    for index, layer in enumerate(model.layers):
        blocks += _layer_blocks(layer, keras, _where(layer, index))
    return blocks


def _layer_blocks(layer: Any, keras: Any, where: str) -> list:
    """The blocks one Keras layer becomes (none for an InputLayer or Dropout)."""
    layers = keras.layers
    if getattr(layer, "quantization_mode", None):
        raise ValueError(f"{where}: quantization_mode={layer.quantization_mode!r}: quantized layers cannot be "
                         "converted; convert the float model")
    if isinstance(layer, keras.Sequential):
        return _sequential_blocks(layer, keras)
    if isinstance(layer, (layers.InputLayer, layers.Dropout)):
        return []
    if isinstance(layer, layers.Bidirectional):
        return [_bidirectional(layer, keras, where)]
    if isinstance(layer, layers.RNN):
        return [_recurrent(layer, keras, where)]
    if isinstance(layer, layers.TimeDistributed):
        # TimeDistributed(Dense) is Dense on a (B, T, I) input: Linear acts on the last axis.
        if not isinstance(layer.layer, layers.Dense):
            raise ValueError(f"{where}: TimeDistributed({type(layer.layer).__name__}) cannot be converted; "
                             "only TimeDistributed(Dense)")
        return _dense(layer.layer, keras, f"{where} of {_where(layer.layer)}")
    if isinstance(layer, layers.Dense):
        return _dense(layer, keras, where)
    if isinstance(layer, (layers.Activation, layers.LeakyReLU, layers.ReLU, layers.ELU)):
        return [_activation_layer(layer, keras, where)]
    raise ValueError(f"{where}: no streamrnn block for this layer type; supported: {_SUPPORTED}")


def _numpy(keras: Any, variable: Any) -> Array:
    return np.array(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _check_built(layer: Any, where: str) -> None:
    if not layer.built or not layer.weights:
        raise ValueError(f"{where}: not built, so it has no weights yet; call the model on an input, or "
                         "start the keras.Sequential with keras.Input(shape=(T, I))")


def _dense(layer: Any, keras: Any, where: str) -> list:
    _check_built(layer, where)
    # layer.kernel, not the variable: with LoRA enabled it is the sum the layer multiplies by.
    kernel = _numpy(keras, layer.kernel)
    linear = Linear(kernel.shape[0], kernel.shape[1], bias=bool(layer.use_bias))
    weights = {"weight": kernel.T.copy()}
    if layer.use_bias:
        weights["bias"] = _numpy(keras, layer.bias)
    linear.load_state_dict(weights)
    # Dense's own activation defaults to linear, which adds no block.
    activation = _activation_block(layer.activation, keras, where, "activation", omit_linear=True)
    return [linear] + ([] if activation is None else [activation])


def _activation_layer(layer: Any, keras: Any, where: str) -> Any:
    layers, sr = keras.layers, _sequential
    if isinstance(layer, layers.Activation):
        return _activation_block(layer.activation, keras, where, "activation", omit_linear=False)
    if isinstance(layer, layers.LeakyReLU):
        return sr.LeakyReLU(negative_slope=float(layer.negative_slope))
    if isinstance(layer, layers.ELU):
        return sr.ELU(alpha=float(layer.alpha))
    # ReLU: a plain or leaky ReLU only; a cap or a threshold has no block.
    if layer.max_value is not None:
        raise ValueError(f"{where}: max_value={layer.max_value}: only ReLU(max_value=None) can be converted")
    if float(layer.threshold) != 0.0:
        raise ValueError(f"{where}: threshold={layer.threshold}: only ReLU(threshold=0) can be converted")
    slope = float(layer.negative_slope)
    return sr.LeakyReLU(negative_slope=slope) if slope else sr.ReLU()


def _activation_name(function: Any, keras: Any) -> Optional[str]:
    """The Keras name of a built-in activation function with its defaults, or None."""
    for name in _ACTIVATIONS:
        if function is keras.activations.get(name):
            return name
    return None


def _activation_block(function: Any, keras: Any, where: str, attribute: str, omit_linear: bool) -> Any:
    """The block of a layer's activation function (None for linear when omit_linear)."""
    layers = keras.layers
    # Keras accepts an activation layer as the function: Dense(activation=keras.layers.LeakyReLU(0.1)).
    if isinstance(function, (layers.Activation, layers.LeakyReLU, layers.ReLU, layers.ELU)):
        return _activation_layer(function, keras, f"{where} {attribute}")
    name = _activation_name(function, keras)
    label = getattr(function, "__name__", repr(function))
    if name is None:
        raise ValueError(f"{where}: {attribute}={label!r} has no streamrnn block; supported: "
                         f"{', '.join(_ACTIVATIONS)} (Keras's functions, with their default arguments)")
    if name == "linear" and omit_linear:
        return None
    defaults = {p.name: p.default for p in inspect.signature(function).parameters.values()}
    if name == "gelu" and defaults.get("approximate", False):
        # streamrnn's GELU is the erf form; this Keras's gelu defaults to the tanh approximation.
        raise ValueError(f"{where}: {attribute}='gelu' is the tanh approximation here (approximate=True); "
                         "streamrnn's GELU is the exact erf form")
    block_name, arguments = _ACTIVATIONS[name]
    kwargs = {block_kw: float(defaults[keras_kw]) for block_kw, keras_kw in arguments.items()}
    return getattr(_sequential, block_name)(**kwargs)


def _cell_spec(layer: Any, keras: Any, where: str) -> "tuple[type, int, dict[str, Any]]":
    """(block class, gates, keyword arguments of the block) for a recurrent layer, after refusing
    what the block cannot compute exactly."""
    cell = layer.cell
    kind = type(cell).__name__
    # The exact class: a subclass may compute something else.
    if kind not in _CELLS or type(cell) is not getattr(keras.layers, kind):
        raise ValueError(f"{where}: cell {kind} cannot be converted; only LSTMCell, GRUCell and SimpleRNNCell")
    block, gates, own, recurrent_own = _CELLS[kind]
    kwargs: "dict[str, Any]" = dict(bias=bool(cell.use_bias), batch_first=True)
    activation = _activation_name(cell.activation, keras)
    if block is RNN and activation in ("tanh", "relu"):
        kwargs["nonlinearity"] = activation
    elif activation != own:
        raise ValueError(f"{where}: activation={getattr(cell.activation, '__name__', cell.activation)!r}: "
                         f"only the cell's own ({own}{' or relu' if block is RNN else ''}) can be converted")
    if recurrent_own is not None and _activation_name(cell.recurrent_activation, keras) != recurrent_own:
        name = getattr(cell.recurrent_activation, "__name__", cell.recurrent_activation)
        raise ValueError(f"{where}: recurrent_activation={name!r}: only the cell's own ({recurrent_own}) "
                         "can be converted")
    if block is GRU:
        kwargs["reset_after"] = bool(cell.reset_after)
    return block, gates, kwargs


def _check_sequence_flags(layer: Any, where: str, backwards: bool = False) -> None:
    if not layer.return_sequences:
        raise ValueError(f"{where}: return_sequences=False: streamrnn models return every step; build the layer "
                         "with return_sequences=True (y[:, -1] of the converted model is then Keras's output)")
    if bool(layer.go_backwards) != backwards:
        raise ValueError(f"{where}: go_backwards={layer.go_backwards}: a reversed layer converts only as a "
                         "Bidirectional's backward layer")
    if getattr(layer, "time_major", False):
        raise ValueError(f"{where}: time_major=True cannot be converted; use batch-major inputs")


def _recurrent(layer: Any, keras: Any, where: str) -> Any:
    _check_sequence_flags(layer, where)
    block, gates, kwargs = _cell_spec(layer, keras, where)
    weights = _cell_weights(layer, keras, where, gates, bool(kwargs.get("reset_after", True)))
    twin = block(weights["weight_ih_l0"].shape[1], weights["weight_hh_l0"].shape[1], **kwargs)
    twin.load_state_dict(weights)
    return twin


def _bidirectional(layer: Any, keras: Any, where: str) -> Any:
    if layer.merge_mode != "concat":
        raise ValueError(f"{where}: merge_mode={layer.merge_mode!r}: only 'concat' can be converted")
    forward, backward = layer.forward_layer, layer.backward_layer
    f_where, b_where = f"{where} forward {_where(forward)}", f"{where} backward {_where(backward)}"
    for sub, sub_where, backwards in ((forward, f_where, False), (backward, b_where, True)):
        if not isinstance(sub, keras.layers.RNN):
            raise ValueError(f"{sub_where}: only recurrent layers can be converted inside a Bidirectional")
        _check_sequence_flags(sub, sub_where, backwards)
    block, gates, kwargs = _cell_spec(forward, keras, f_where)
    backward_spec = _cell_spec(backward, keras, b_where)
    # One block holds both directions, so they must share every architectural choice.
    if backward_spec[0] is not block or backward_spec[2] != kwargs or forward.cell.units != backward.cell.units:
        raise ValueError(f"{where}: backward_layer differs from forward_layer (cell, units, use_bias, activation "
                         "or reset_after); only matching directions can be converted")
    reset_after = bool(kwargs.get("reset_after", True))
    weights = _cell_weights(forward, keras, f_where, gates, reset_after)
    weights.update({k + "_reverse": v for k, v in _cell_weights(backward, keras, b_where, gates, reset_after).items()})
    twin = block(weights["weight_ih_l0"].shape[1], weights["weight_hh_l0"].shape[1], bidirectional=True, **kwargs)
    twin.load_state_dict(weights)
    return twin


def _cell_weights(layer: Any, keras: Any, where: str, gates: int, reset_after: bool) -> "dict[str, Array]":
    """A Keras recurrent layer's weights as the state_dict of a one-layer streamrnn block."""
    _check_built(layer, where)
    cell = layer.cell
    kernel, recurrent = _numpy(keras, cell.kernel), _numpy(keras, cell.recurrent_kernel)
    bias = _numpy(keras, cell.bias) if cell.use_bias else None
    return _state_dict(kernel, recurrent, bias, gates, reset_after)


def _state_dict(kernel: Array, recurrent: Array, bias: Optional[Array], gates: int,
                        reset_after: bool = True) -> "dict[str, Array]":
    """Keras cell weights -> PyTorch's names and layout (one layer, one direction).

    kernel (I, G*H), recurrent (H, G*H), bias (G*H,) or, for a reset_after GRU, (2, G*H):
    columns in Keras's gate order, which is PyTorch's except for the GRU (z, r, h -> r, z, n)."""
    order: Callable[[Array], Array] = _gru_order if gates == 3 else (lambda a: a)
    weights = {"weight_ih_l0": np.ascontiguousarray(order(kernel).T),
               "weight_hh_l0": np.ascontiguousarray(order(recurrent).T)}
    if bias is not None:
        # A reset_after GRU keeps the recurrent bias apart (it is multiplied by r); every other
        # Keras cell has the one bias, which is bias_ih with bias_hh zero.
        two = gates == 3 and reset_after
        weights["bias_ih_l0"] = order(bias[0] if two else bias).copy()
        weights["bias_hh_l0"] = order(bias[1]).copy() if two else np.zeros_like(weights["bias_ih_l0"])
    return weights


def _gru_order(a: Array) -> Array:
    """Keras's GRU gate blocks (z, r, h) on the last axis, in streamrnn's order (r, z, n)."""
    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)
