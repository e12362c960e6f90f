# python/streamrnn/onnx/_nodes.py: ONNX's LSTM, GRU and RNN nodes read into streamrnn models, and
# run as ONNX defines them. Part of streamrnn, MIT licence.
"""One recurrent node: its attributes checked and mapped onto a streamrnn model's options (ONNX's
cell options included: activations with their alpha and beta, clip, input_forget), its W, R, B, P
tensors onto the model's state_dict (ONNX's gate order to PyTorch's), and a call of the model in
the node's layout, direction and outputs. `onnx` is imported only by the functions that
read protobufs (`attributes_of`, `load`); building and running a model needs NumPy alone."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from .. import _modules

# ONNX's gate blocks in PyTorch's order: torch block k is ONNX block _TORCH_FROM_ONNX[kind][k].
# LSTM: ONNX i, o, f, c; PyTorch i, f, g, o. GRU: ONNX z, r, h; PyTorch r, z, n.
_TORCH_FROM_ONNX = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}
# ONNX's P rows (i, o, f) in streamrnn's order (i, f, o); the swap is its own inverse.
_PEEPHOLE_ROWS = (0, 2, 1)
# What each operator's activations default to, per direction (ONNX's operator definitions).
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
# ONNX's activation functions: how many of (alpha, beta) each takes from activation_alpha and
# activation_beta, consumed in the order of the functions, and their defaults when those lists run
# out: ONNX's operators', as its spec says (ONNX Runtime gives Affine, ScaledTanh and
# ThresholdedRelu 0 instead; save writes every value, so its files read the same in both).
_FUNCTIONS = {"Relu": (0, 0.0, 0.0), "Tanh": (0, 0.0, 0.0), "Sigmoid": (0, 0.0, 0.0), "Softsign": (0, 0.0, 0.0),
              "Softplus": (0, 0.0, 0.0), "LeakyRelu": (1, 0.01, 0.0), "ThresholdedRelu": (1, 1.0, 0.0),
              "Elu": (1, 1.0, 0.0), "Affine": (2, 1.0, 0.0), "ScaledTanh": (2, 1.0, 1.0),
              "HardSigmoid": (2, 0.2, 0.5)}
# Names in any case, as ONNX Runtime's LSTM and GRU read them.
_FUNCTION_NAMES = {name.lower(): name for name in _FUNCTIONS}
# The operators' inputs and outputs, in ONNX's order.
_INPUTS = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
           "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
           "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
_OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}
_ATTRIBUTES = {kind: {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size",
                      "layout"} | extra
               for kind, extra in (("LSTM", {"input_forget"}), ("GRU", {"linear_before_reset"}), ("RNN", set()))}


def require_onnx() -> Any:
    """The onnx package, or ImportError saying how to get it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("streamrnn.onnx needs the onnx package: pip install 'streamrnn[onnx]' "
                          "(or pip install onnx)") from error
    return onnx


@dataclasses.dataclass(frozen=True)
class Node:
    """A recurrent node's options, checked: what a streamrnn model and a call of it need."""

    name: str              # for messages: the node's name, or its operator and index
    kind: str              # "LSTM", "GRU" or "RNN"
    hidden_size: Optional[int]  # None: taken from R
    direction: str         # "forward", "reverse" or "bidirectional"
    layout: int            # 0: X is [T, B, I]; 1: [B, T, I]
    reset_after: bool      # GRU: linear_before_reset
    nonlinearity: str      # RNN: "tanh" or "relu"
    activations: Optional[tuple]  # None: the defaults (and nonlinearity); else per direction, (name, alpha, beta)s
    clip: Optional[float]  # None: no clipping
    input_forget: bool     # LSTM: f = 1 - i
    inputs: dict           # ONNX input name ("X", "W", ...) -> the graph's value name ("" or absent: none)
    outputs: dict          # ONNX output name ("Y", "Y_h", "Y_c") -> the graph's value name

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def peepholes(self) -> bool:
        return "P" in self.inputs


def attributes_of(node: Any) -> dict:
    """A NodeProto's attributes as Python values (strings decoded, lists as tuples)."""
    onnx = require_onnx()
    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, (list, tuple)):
            value = tuple(v.decode() if isinstance(v, bytes) else v for v in value)
        values[attribute.name] = value
    return values


def parse(op_type: str, name: str, inputs: "list[str]", outputs: "list[str]", attributes: dict) -> Node:
    """Checks a recurrent node's attributes: ValueError naming the node and the attribute for
    anything a streamrnn model does not compute exactly as ONNX defines it."""
    if op_type not in _INPUTS:
        raise ValueError(f"node {name!r}: operator {op_type} is not a recurrent operator (LSTM, GRU or RNN)")
    kind = op_type

    def refuse(attribute: str, why: str) -> ValueError:
        return ValueError(f"node {name!r} ({kind}): attribute {attribute}: {why}")

    unknown = sorted(set(attributes) - _ATTRIBUTES[kind])
    if unknown:
        raise refuse(unknown[0], f"{kind} has no such attribute")

    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise refuse("direction", f"expected 'forward', 'reverse' or 'bidirectional', got {direction!r}")
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise refuse("layout", f"expected 0 or 1, got {layout!r}")
    hidden_size = attributes.get("hidden_size")
    if hidden_size is not None and (not isinstance(hidden_size, int) or hidden_size < 1):
        raise refuse("hidden_size", f"expected a positive integer, got {hidden_size!r}")
    clip = attributes.get("clip")
    if clip is not None and not (isinstance(clip, (int, float)) and 0 < clip < float("inf")):
        raise refuse("clip", f"expected a positive finite number, got {clip!r}")
    input_forget = attributes.get("input_forget", 0)
    if input_forget not in (0, 1):
        raise refuse("input_forget", f"expected 0 or 1, got {input_forget!r}")

    activations, nonlinearity = _activations(kind, 2 if direction == "bidirectional" else 1, attributes, refuse)

    linear_before_reset = attributes.get("linear_before_reset", 0)
    if linear_before_reset not in (0, 1):
        raise refuse("linear_before_reset", f"expected 0 or 1, got {linear_before_reset!r}")

    names = _INPUTS[kind]
    if len(inputs) > len(names):
        raise ValueError(f"node {name!r} ({kind}): {len(inputs)} inputs, at most {len(names)}")
    if len(inputs) < 3 or not all(inputs[:3]):
        raise ValueError(f"node {name!r} ({kind}): inputs X, W and R are required")
    if len(outputs) > len(_OUTPUTS[kind]):
        raise ValueError(f"node {name!r} ({kind}): {len(outputs)} outputs, at most {len(_OUTPUTS[kind])}")
    return Node(name=name, kind=kind, hidden_size=hidden_size, direction=direction, layout=layout,
                reset_after=linear_before_reset == 1, nonlinearity=nonlinearity, activations=activations,
                clip=None if clip is None else float(clip), input_forget=input_forget == 1,
                inputs={k: v for k, v in zip(names, inputs) if v},
                outputs={k: v for k, v in zip(_OUTPUTS[kind], outputs) if v})


def _activations(kind: str, directions: int, attributes: dict, refuse: Any) -> "tuple[Optional[tuple], str]":
    """The node's activations as a Node holds them, and an RNN's nonlinearity: each function with
    the alpha and beta it takes, read from the attributes as ONNX Runtime does (see _FUNCTIONS)."""
    defaults = _DEFAULT_ACTIVATIONS[kind]
    names = attributes.get("activations", defaults * directions)
    if not isinstance(names, tuple) or len(names) != len(defaults) * directions:
        raise refuse("activations", f"expected {len(defaults) * directions} names ({len(defaults)} per direction), "
                                    f"got {names!r}")
    parameters = {}
    for attribute in ("activation_alpha", "activation_beta"):
        values = attributes.get(attribute, ())
        if not isinstance(values, tuple) or not all(isinstance(v, (int, float)) for v in values):
            raise refuse(attribute, f"expected a list of floats, got {values!r}")
        parameters[attribute] = iter(values)
    functions = []
    for given in names:
        function = _FUNCTION_NAMES.get(given.lower()) if isinstance(given, str) else None
        if function is None:
            raise refuse("activations", f"unknown function {given!r} (expected one of {', '.join(_FUNCTIONS)})")
        takes, alpha, beta = _FUNCTIONS[function]
        if takes > 0:
            alpha = next(parameters["activation_alpha"], alpha)
        if takes > 1:
            beta = next(parameters["activation_beta"], beta)
        functions.append((function, float(alpha), float(beta)))
    for attribute, rest in parameters.items():
        extra = len(list(rest))
        if extra:
            raise refuse(attribute, f"{extra} more values than the functions {list(names)} take")
    n = len(defaults)
    per_direction = tuple(tuple(functions[d * n:(d + 1) * n]) for d in range(directions))
    if kind == "RNN" and set(per_direction) == {(("Relu", 0.0, 0.0),)}:
        return None, "relu"
    if set(per_direction) == {tuple((name, 0.0, 0.0) for name in defaults)}:
        return None, "tanh"
    return per_direction, "tanh"


def _float32(node: Node, what: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"node {node.name!r} ({node.kind}): input {what}: expected a floating point tensor, "
                        f"got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def new_model(node: Node, input_size: int, hidden_size: int, num_layers: int = 1, *, peepholes: bool = False,
              **options: Any) -> Any:
    """A streamrnn model (its weights still to be loaded) whose cells compute the node's, with the
    layer options `options` (bias, bidirectional, batch_first, residual)."""
    cell = dict(activations=node.activations, clip=node.clip)
    if node.kind == "LSTM":
        return _modules.LSTM(input_size, hidden_size, num_layers, peepholes=peepholes, input_forget=node.input_forget,
                             **cell, **options)
    if node.kind == "GRU":
        return _modules.GRU(input_size, hidden_size, num_layers, reset_after=node.reset_after, **cell, **options)
    return _modules.RNN(input_size, hidden_size, num_layers, nonlinearity=node.nonlinearity, **cell, **options)


def build(node: Node, W: Any, R: Any, B: Any = None, P: Any = None, batch_first: bool = False) -> Any:
    """The streamrnn model of a node with these weights (of a reverse node, the forward model that
    `run` steps over the reversed sequence), with peepholes when P is given. ValueError for shapes
    that disagree with the node or with one another."""
    W, R = _float32(node, "W", W), _float32(node, "R", R)
    gates = len(_TORCH_FROM_ONNX[node.kind])
    D = node.directions
    if W.ndim != 3 or R.ndim != 3:
        raise ValueError(f"node {node.name!r} ({node.kind}): W and R must have 3 dimensions, got shapes "
                         f"{W.shape} and {R.shape}")
    H = node.hidden_size if node.hidden_size is not None else R.shape[2]
    I = W.shape[2]
    for what, array, shape in (("W", W, (D, gates * H, I)), ("R", R, (D, gates * H, H))):
        if array.shape != shape:
            raise ValueError(f"node {node.name!r} ({node.kind}): input {what}: expected shape {shape} "
                             f"(directions, {gates} * hidden_size, ...), got {array.shape}")
    if B is not None:
        B = _float32(node, "B", B)
        if B.shape != (D, 2 * gates * H):
            raise ValueError(f"node {node.name!r} ({node.kind}): input B: expected shape {(D, 2 * gates * H)}, "
                             f"got {B.shape}")
    if P is not None:
        P = _float32(node, "P", P)
        if P.shape != (D, 3 * H):
            raise ValueError(f"node {node.name!r} ({node.kind}): input P: expected shape {(D, 3 * H)}, got {P.shape}")

    model = new_model(node, I, H, peepholes=P is not None, bias=B is not None, bidirectional=D == 2,
                      batch_first=batch_first)
    order = _TORCH_FROM_ONNX[node.kind]

    def torch_rows(tensor: np.ndarray) -> np.ndarray:
        return np.concatenate([tensor[k * H:(k + 1) * H] for k in order], axis=0)

    state = {}
    for d in range(D):
        suffix = "_l0" + ("_reverse" if d == 1 else "")
        state["weight_ih" + suffix] = torch_rows(W[d])
        state["weight_hh" + suffix] = torch_rows(R[d])
        if B is not None:
            state["bias_ih" + suffix] = torch_rows(B[d, :gates * H])
            state["bias_hh" + suffix] = torch_rows(B[d, gates * H:])
        if P is not None:
            state["weight_peephole" + suffix] = P[d].reshape(3, H)[list(_PEEPHOLE_ROWS)]
    model.load_state_dict(state)
    return model


def _reverse_within(x: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """x [T, B, ...] with each sequence's first lengths[b] steps in reverse order (the padding
    after them left where it is)."""
    T, B = x.shape[0], x.shape[1]
    if lengths is None:
        return x[::-1]
    t = np.arange(T)[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return np.take_along_axis(x, source.reshape(T, B, *([1] * (x.ndim - 2))), axis=0)


def run(node: Node, model: Any, X: Any, sequence_lens: Any = None, initial_h: Any = None,
        initial_c: Any = None) -> dict:
    """The node's outputs ({"Y": ..., "Y_h": ..., "Y_c": ...}, in X's floating point type) from
    `model` (build's, time-major), in the node's layout and direction."""
    X = np.asarray(X)
    dtype = X.dtype if X.dtype.kind == "f" else np.float32
    x = _float32(node, "X", X)
    if x.ndim != 3:
        raise ValueError(f"node {node.name!r} ({node.kind}): input X: expected 3 dimensions "
                         f"({'[batch, seq, input]' if node.layout else '[seq, batch, input]'}), got shape {x.shape}")
    if node.layout == 1:
        x = x.transpose(1, 0, 2)  # time-major, as the model runs
    T, B = x.shape[0], x.shape[1]
    lengths = None
    if sequence_lens is not None:
        lengths = np.asarray(sequence_lens)
        if lengths.dtype.kind not in "iu" or lengths.shape != (B,):
            raise ValueError(f"node {node.name!r} ({node.kind}): input sequence_lens: expected integers of shape "
                             f"({B},), got {lengths.dtype} of shape {lengths.shape}")
        if np.any(lengths < 0) or np.any(lengths > T):
            raise ValueError(f"node {node.name!r} ({node.kind}): input sequence_lens: each must be in [0, {T}], "
                             f"got {lengths.tolist()}")
        lengths = lengths.astype(np.int64)

    D, H = node.directions, model.hidden_size

    def state_in(what: str, value: Any) -> np.ndarray:
        if value is None:
            return np.zeros((D, B, H), np.float32)
        array = _float32(node, what, value)
        expected = (B, D, H) if node.layout == 1 else (D, B, H)
        if array.shape != expected:
            raise ValueError(f"node {node.name!r} ({node.kind}): input {what}: expected shape {expected}, "
                             f"got {array.shape}")
        return np.ascontiguousarray(array.transpose(1, 0, 2)) if node.layout == 1 else array

    state: Any = state_in("initial_h", initial_h)
    if node.kind == "LSTM":
        state = (state, state_in("initial_c", initial_c))
    reverse = node.direction == "reverse"
    if reverse:
        x = _reverse_within(x, lengths)
    y, state = model(np.ascontiguousarray(x), state, lengths)
    y = y.reshape(T, B, D, H)
    if reverse:
        y = _reverse_within(y, lengths)
    h, c = state if node.kind == "LSTM" else (state, None)
    if node.layout == 1:
        outputs = {"Y": y.transpose(1, 0, 2, 3), "Y_h": h.transpose(1, 0, 2)}
        if c is not None:
            outputs["Y_c"] = c.transpose(1, 0, 2)
    else:
        outputs = {"Y": y.transpose(0, 2, 1, 3), "Y_h": h}
        if c is not None:
            outputs["Y_c"] = c
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in outputs.items()}


def evaluate(node: Node, tensors: dict) -> dict:
    """The node's outputs (as `run` gives them) from its inputs by ONNX's names ("X", "W", ...;
    absent: not given), the model built from them."""
    model = build(node, tensors["W"], tensors["R"], tensors.get("B"), tensors.get("P"))
    return run(node, model, tensors["X"], tensors.get("sequence_lens"), tensors.get("initial_h"),
               tensors.get("initial_c"))


def _model_proto(source: Any) -> Any:
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (str, bytes, os.PathLike)):
        return onnx.load(os.fspath(source))
    raise TypeError(f"source: expected a path or an onnx.ModelProto, got {type(source).__name__}")


def constants_of(graph: Any) -> dict:
    """The graph's initializers and Constant nodes' tensors, by value name."""
    onnx = require_onnx()
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attributes = {a.name: a for a in node.attribute}
            if "value" not in attributes:
                raise ValueError(f"node {node.name or node.output[0]!r} (Constant): only a tensor 'value' is "
                                 f"supported, got {sorted(attributes)}")
            values[node.output[0]] = onnx.numpy_helper.to_array(attributes["value"].t)
    return values


def constant_weights(node: Node, constants: dict) -> dict:
    """The node's W, R and, where it has them, B and P, from the graph's constants: ValueError
    for one that is a graph input (a model's weights are fixed when it is made)."""
    weights = {}
    for what in ("W", "R", "B", "P"):
        value = node.inputs.get(what)
        if value is None:
            continue
        if value not in constants:
            raise ValueError(f"node {node.name!r} ({node.kind}): input {what} ({value!r}) must be an initializer "
                             "or a Constant, not a graph input")
        weights[what] = constants[value]
    return weights


def recurrent_node_of(graph: Any) -> Node:
    """The graph's one recurrent node: ValueError naming any other node that is not a Constant."""
    recurrent = []
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type in _INPUTS:
            recurrent.append(parse(node.op_type, name, list(node.input), list(node.output), attributes_of(node)))
        elif node.op_type != "Constant":
            raise ValueError(f"node {name!r}: operator {node.op_type} is not supported yet (graphs of one LSTM, GRU "
                             "or RNN node, with Constants)")
    if len(recurrent) != 1:
        raise ValueError(f"graph: expected one LSTM, GRU or RNN node, found {len(recurrent)}")
    return recurrent[0]


def load(source: Any) -> Any:
    """A streamrnn model (sr.LSTM, sr.GRU or sr.RNN) from an ONNX graph: a path or an
    onnx.ModelProto.

    - One LSTM, GRU or RNN node whose W, R (and B, P) are initializers or Constants: the model of
      that node, batch_first for layout=1. It takes the node's X (in its layout) and gives y as
      (T, B, D*H) (or batch-first), with ONNX's sequence_lens as `lengths` and
      initial_h/initial_c as its state, (D, B, H); ONNX's Y is
      y.reshape(T, B, D, H).transpose(0, 2, 1, 3).
    - Recurrent nodes stacked with the glue exporters write (torch.onnx.export's, sr.onnx.save's):
      the stack, once the glue is found to compute its y, h_n and c_n (_graphs.py).

    Every attribute of the three operators is read: activations with activation_alpha and
    activation_beta (as ONNX Runtime reads them: each list consumed in the order of the functions
    that take its values; those it runs out for take ONNX Runtime's defaults), clip, input_forget,
    and P as the model's peepholes. Float64 or float16 weights are read as float32, the engine's
    type. ValueError naming the node and the attribute for what is invalid (an unknown function, a
    count that does not fit, clip <= 0, ...) or not supported: direction 'reverse' (a model that
    runs backwards in time), other operators, and glue that computes anything else. ImportError
    without the onnx package."""
    proto = _model_proto(source)
    graph = proto.graph
    if sum(n.op_type in _INPUTS for n in graph.node) != 1 or any(
            n.op_type not in _INPUTS and n.op_type != "Constant" for n in graph.node):
        from ._graphs import load_stack

        return load_stack(proto)
    node = recurrent_node_of(graph)
    if node.direction == "reverse":
        raise ValueError(f"node {node.name!r} ({node.kind}): attribute direction: 'reverse' has no streamrnn "
                         "model yet (a stream runs forward in time); streamrnn.onnx.backend runs such nodes")
    weights = constant_weights(node, constants_of(graph))
    return build(node, weights["W"], weights["R"], weights.get("B"), weights.get("P"), batch_first=node.layout == 1)
