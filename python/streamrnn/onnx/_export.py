# python/streamrnn/onnx/_export.py: streamrnn models written as ONNX graphs.
# Part of streamrnn, MIT licence.
"""A model as one ONNX LSTM, GRU or RNN node per layer (opset 14), its cell options as the node's
attributes (activations with their alpha and beta, clip, input_forget) and its peepholes as P,
with the glue a stack needs:
the layers' Y reshaped to the next layer's input, residual Adds, the batch-first transposes, and
the initial states sliced per layer from one optional input each. ONNX Runtime runs the graph
with the model's outputs and final states."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import _modules
from ._nodes import _FUNCTIONS, _PEEPHOLE_ROWS, _TORCH_FROM_ONNX, require_onnx

OPSET = 14  # the first with the recurrent operators' layout attribute, and Slice/Reshape as today


def _kind(model: Any) -> str:
    for kind, cls in (("LSTM", _modules.LSTM), ("GRU", _modules.GRU), ("RNN", _modules.RNN)):
        if isinstance(model, cls):
            return kind
    raise TypeError(f"model: expected a streamrnn.LSTM, GRU or RNN, got {type(model).__name__}")


def node_weights(model: Any, layer: int, direction: int) -> "tuple[np.ndarray, np.ndarray, Any]":
    """W [G*H, I_l], R [G*H, H] and B [2*G*H] (None without a bias) of one layer and direction, in
    ONNX's gate order (LSTM i, o, f, c; GRU z, r, h)."""
    return _onnx_weights(model, model.state_dict(), layer, direction)


def _onnx_weights(model: Any, state: dict, layer: int, direction: int) -> "tuple[np.ndarray, np.ndarray, Any]":
    """node_weights from `state`, the model's state_dict() (taken once for all its layers)."""
    H = model.hidden_size
    order = _TORCH_FROM_ONNX[_kind(model)]
    # ONNX block j is torch block onnx_from_torch[j]: the inverse of _TORCH_FROM_ONNX.
    onnx_from_torch = [order.index(j) for j in range(len(order))]
    suffix = f"_l{layer}" + ("_reverse" if direction else "")

    def onnx_rows(tensor: np.ndarray) -> np.ndarray:
        return np.concatenate([tensor[k * H:(k + 1) * H] for k in onnx_from_torch], axis=0)

    W, R = onnx_rows(state["weight_ih" + suffix]), onnx_rows(state["weight_hh" + suffix])
    B = None
    if model.bias:
        B = np.concatenate([onnx_rows(state["bias_ih" + suffix]), onnx_rows(state["bias_hh" + suffix])])
    return W, R, B


def _cell_attributes(model: Any, kind: str, D: int) -> dict:
    """The recurrent nodes' attributes for the model's cell options: what `parse` reads back."""
    attributes: dict = {}
    if model.clip is not None:
        attributes["clip"] = model.clip
    if kind == "LSTM" and model.input_forget:
        attributes["input_forget"] = 1
    activations = model.activations
    if activations is None and kind == "RNN":
        activations = ((("Relu" if model.nonlinearity == "relu" else "Tanh", 0.0, 0.0),),) * D
    if activations is not None:
        functions = [function for direction in activations for function in direction]
        attributes["activations"] = [name for name, _, _ in functions]
        # Every alpha and beta written out: no reader's defaults apply (ONNX's and ONNX Runtime's differ).
        for index, attribute in enumerate(("activation_alpha", "activation_beta"), 1):
            values = [function[index] for function in functions if _FUNCTIONS[function[0]][0] >= index]
            if values:
                attributes[attribute] = values
    return attributes


def _onnx_peepholes(state: dict, layer: int, direction: int) -> np.ndarray:
    """P [3*H] of one layer and direction (ONNX's i, o, f) from `state`, the model's state_dict()."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    return state["weight_peephole" + suffix][list(_PEEPHOLE_ROWS)].reshape(-1)


def to_proto(model: Any) -> Any:
    """The ONNX graph of an sr.LSTM, GRU or RNN, with its weights (see save)."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    kind = _kind(model)
    if kind == "LSTM" and model.proj_size:
        raise ValueError(f"model: proj_size={model.proj_size}: ONNX's LSTM has no projection")
    L, D, H, I = model.num_layers, 2 if model.bidirectional else 1, model.hidden_size, model.input_size
    nodes, initializers = [], []

    def constant(name: str, array: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op: str, inputs: "list[str]", outputs: "list[str]", **attributes: Any) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{len(nodes)}", **attributes))

    time, batch = ("B", "T") if model.batch_first else ("T", "B")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [time, batch, I])]
    if model.batch_first:
        node("Transpose", ["x"], ["x_time_major"], perm=[1, 0, 2])
    layer_input = "x_time_major" if model.batch_first else "x"

    # The initial states: inputs whose initializers (the model's initial state for one row, zeros
    # without one) make them optional, grown to the batch of x when not given.
    node("Shape", [layer_input], ["x_shape"])
    node("Gather", ["x_shape", constant("batch_axis", np.array([1], np.int64))], ["batch"])
    node("Concat", [constant("state_layers", np.array([L * D], np.int64)), "batch",
                    constant("state_width", np.array([H], np.int64))], ["state_shape"], axis=0)
    states = ["h0", "c0"] if kind == "LSTM" else ["h0"]
    initial = model.initial_state
    initial = () if initial is None else initial if isinstance(initial, tuple) else (initial,)
    for k, state in enumerate(states):
        inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT, [L * D, "B", H]))
        row = initial[k] if initial else np.zeros((L * D, H), np.float32)
        constant(state, np.asarray(row, np.float32).reshape(L * D, 1, H))
        node("Expand", [state, "state_shape"], [f"{state}_full"])

    attributes = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward",
                  **_cell_attributes(model, kind, D)}
    if kind == "GRU":
        attributes["linear_before_reset"] = int(model.reset_after)
    final = {state: [] for state in states}
    tensors = model.state_dict()  # once: each call copies every tensor
    for layer in range(L):
        weights = [_onnx_weights(model, tensors, layer, d) for d in range(D)]
        W = constant(f"W_l{layer}", np.stack([w for w, _, _ in weights]))
        R = constant(f"R_l{layer}", np.stack([r for _, r, _ in weights]))
        B = constant(f"B_l{layer}", np.stack([b for _, _, b in weights])) if model.bias else ""
        node_inputs = [layer_input, W, R, B, ""]
        for state in states:
            node("Slice", [f"{state}_full", constant(f"{state}_from_l{layer}", np.array([layer * D], np.int64)),
                           constant(f"{state}_to_l{layer}", np.array([(layer + 1) * D], np.int64)),
                           constant(f"{state}_axes_l{layer}", np.array([0], np.int64))], [f"{state}_l{layer}"])
            node_inputs.append(f"{state}_l{layer}")
            final[state].append(f"{state}_n_l{layer}")
        if kind == "LSTM" and model.peepholes:
            P = np.stack([_onnx_peepholes(tensors, layer, d) for d in range(D)])
            node_inputs.append(constant(f"P_l{layer}", P))
        node(kind, node_inputs, [f"Y_l{layer}"] + [f"{state}_n_l{layer}" for state in states], **attributes)
        # Y [T, D, B, H] -> [T, B, D * H], the layer's output as the model gives it.
        node("Transpose", [f"Y_l{layer}"], [f"Y_l{layer}_t"], perm=[0, 2, 1, 3])
        node("Reshape", [f"Y_l{layer}_t", constant(f"y_shape_l{layer}", np.array([0, 0, D * H], np.int64))],
             [f"y_l{layer}"])
        output = f"y_l{layer}"
        if model.residual and (I if layer == 0 else D * H) == D * H:
            node("Add", [output, layer_input], [f"y_l{layer}_residual"])
            output = f"y_l{layer}_residual"
        layer_input = output
    if model.batch_first:
        node("Transpose", [layer_input], ["y"], perm=[1, 0, 2])
    else:
        node("Identity", [layer_input], ["y"])
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [time, batch, D * H])]
    for state, names in final.items():
        name = "h_n" if state == "h0" else "c_n"
        node("Concat", names, [name], axis=0)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [L * D, "B", H]))

    graph = helper.make_graph(nodes, f"streamrnn_{kind.lower()}", inputs, outputs, initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamrnn")
    onnx.checker.check_model(proto)
    return proto


def save(model: Any, path: Any) -> None:
    """Write `model` (sr.LSTM, GRU or RNN) as an ONNX graph that ONNX Runtime runs with its outputs.

    Inputs: x, in the model's layout; h0 (and an LSTM's c0), (L*D, B, H), optional: when not given,
    the model's initial_state for every row (zeros without one). Outputs: y, (T, B, D*H) or
    batch-first, and h_n (c_n), the final states. Feeding a call's h_n and c_n to the next steps the
    graph as a stream. The whole-sequence call's
    `lengths` is not an input (every sequence runs to T), and dropout is a training-time thing,
    not in the graph. h0 and c0 are optional as initializers that are also inputs (ONNX Runtime
    warns of such initializers when it loads the graph). ValueError for an LSTM with proj_size
    (ONNX's LSTM has no projection)."""
    proto = to_proto(model)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    require_onnx().save(proto, os.fspath(path))
