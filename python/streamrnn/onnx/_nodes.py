# python/streamrnn/onnx/_nodes.py: ONNX's LSTM, GRU and RNN nodes read into streamrnn models, and
# run as ONNX defines them. Part of streamrnn, MIT licence.
"""One recurrent node: its attributes checked and mapped onto a streamrnn model's options, its
W, R, B tensors onto the model's state_dict (ONNX's gate order to PyTorch's), and a call of the
model in the node's layout, direction and outputs. `onnx` is imported only by the functions that
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
# What each operator's activations default to, per direction (ONNX's operator definitions).
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
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
    inputs: dict           # ONNX input name ("X", "W", ...) -> the graph's value name ("" or absent: none)
    outputs: dict          # ONNX output name ("Y", "Y_h", "Y_c") -> the graph's value name

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


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
    if "clip" in attributes:
        raise refuse("clip", "clipping the gates is not supported yet")
    if attributes.get("input_forget", 0) != 0:
        raise refuse("input_forget", "coupled input and forget gates are not supported yet")

    directions = 2 if direction == "bidirectional" else 1
    defaults = _DEFAULT_ACTIVATIONS[kind]
    activations = attributes.get("activations")
    nonlinearity = "tanh"
    if activations is not None:
        if len(activations) != len(defaults) * directions:
            raise refuse("activations", f"expected {len(defaults) * directions} names ({len(defaults)} per direction), "
                                        f"got {len(activations)}")
        per_direction = {tuple(activations[d * len(defaults):(d + 1) * len(defaults)]) for d in range(directions)}
        if kind == "RNN" and per_direction == {("Relu",)}:
            nonlinearity = "relu"
        elif per_direction != {defaults}:
            raise refuse("activations", f"{list(activations)} is not supported yet (only {list(defaults)}"
                                        + (", or Relu" if kind == "RNN" else "") + " in every direction)")
    # alpha and beta parameterise only activations that take them, none of those accepted above.
    for attribute in ("activation_alpha", "activation_beta"):
        if attributes.get(attribute):
            raise refuse(attribute, "no accepted activation takes it (only the defaults are supported yet)")

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
                reset_after=linear_before_reset == 1, nonlinearity=nonlinearity,
                inputs={k: v for k, v in zip(names, inputs) if v},
                outputs={k: v for k, v in zip(_OUTPUTS[kind], outputs) if v})


def _float32(node: Node, what: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"node {node.name!r} ({node.kind}): input {what}: expected a floating point tensor, "
                        f"got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def build(node: Node, W: Any, R: Any, B: Any = None, P: Any = None, batch_first: bool = False) -> Any:
    """The streamrnn model of a node with these weights (of a reverse node, the forward model that
    `run` steps over the reversed sequence). ValueError for shapes that disagree with the node or
    with one another, or for peepholes that are not all zero."""
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
        if np.any(P != 0):
            raise ValueError(f"node {node.name!r} ({node.kind}): input P: peepholes are not supported yet "
                             "(only all-zero P)")

    options = dict(bias=B is not None, bidirectional=D == 2, batch_first=batch_first)
    if node.kind == "LSTM":
        model = _modules.LSTM(I, H, **options)
    elif node.kind == "GRU":
        model = _modules.GRU(I, H, reset_after=node.reset_after, **options)
    else:
        model = _modules.RNN(I, H, nonlinearity=node.nonlinearity, **options)

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

    Float64 or float16 weights are read as float32, the engine's type. ValueError naming the node
    and the attribute for what is not supported yet: direction 'reverse' (a model that runs
    backwards in time), clip, input_forget, activations other than ONNX's defaults (and Relu for
    RNN), non-zero peepholes, other operators, and glue that computes anything else. ImportError
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
