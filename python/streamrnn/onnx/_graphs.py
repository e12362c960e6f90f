# python/streamrnn/onnx/_graphs.py: graphs of stacked recurrent nodes (torch.onnx.export's, and
# sr.onnx.save's) read as one streamrnn model. Part of streamrnn, MIT licence.
"""A stack is read in two steps. First the graph is taken apart: its recurrent nodes must form a
chain (each one's X computed from the one before's Y), agree on kind and options, and carry their
weights as constants; every other node must be one of the operators exporters use to join them
(Shape, Gather, Concat, Expand, Transpose, Reshape, ...). Then the glue is folded by checking
what it computes: the streamrnn model those nodes make (batch-first or not, residual or not) is
run beside ONNX's reference evaluator on random inputs of two shapes, and each graph output must be
the model's y, h_n or c_n. The evaluator runs the glue; the recurrent nodes in it run as
streamrnn's single-node models (ONNX's reference has neither Relu nor the other activations, nor
clip), so this checks the glue, and the tests check single nodes against ONNX Runtime. A graph
whose glue computes anything else is refused, never approximated."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._nodes import (_INPUTS, _OUTPUTS, _TORCH_FROM_ONNX, Node, attributes_of, build, constant_weights, constants_of,
                     evaluate, new_model, parse, require_onnx)

# What exporters join recurrent layers with: shapes and states (Shape, Gather, Unsqueeze, Concat,
# Expand, ConstantOfShape, Cast, Slice), layouts (Transpose, Reshape, Squeeze), residual stacks
# (Add), and names (Identity).
GLUE = {"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Expand", "ConstantOfShape", "Cast",
        "Slice", "Transpose", "Reshape", "Identity", "Add"}
RECURRENT = {"LSTM", "GRU", "RNN"}


def _upstream(value: str, producers: dict) -> "tuple[set, set]":
    """What `value` is computed from: the indices of the nodes, and the names of the values."""
    nodes, values, stack = set(), set(), [value]
    while stack:
        name = stack.pop()
        if name in values:
            continue
        values.add(name)
        node = producers.get(name)
        if node is not None:
            nodes.add(node[0])
            stack.extend(i for i in node[1].input if i)
    return nodes, values


def _model_of(nodes: "list[Node]", weights: "list[dict]", batch_first: bool, residual: bool) -> Any:
    """The streamrnn stack of these layers: each layer's model built as one node, its tensors
    moved into the stack's state_dict under the layer's names."""
    first = nodes[0]
    layers = [build(node, w["W"], w["R"], w.get("B", _zero_bias(node, w)), w.get("P")) for node, w in
              zip(nodes, weights)]
    model = new_model(first, layers[0].input_size, layers[0].hidden_size, len(layers), peepholes=first.peepholes,
                      bias=True, bidirectional=first.directions == 2, batch_first=batch_first, residual=residual)
    state = {}
    for index, layer in enumerate(layers):
        for name, value in layer.state_dict().items():
            state[name.replace("_l0", f"_l{index}")] = value
    model.load_state_dict(state)
    return model


def _zero_bias(node: Node, weights: dict) -> np.ndarray:
    gates, D = len(_TORCH_FROM_ONNX[node.kind]), weights["W"].shape[0]
    return np.zeros((D, 2 * gates * weights["R"].shape[2]), np.float32)


def load_stack(proto: Any) -> Any:
    """The streamrnn model that an onnx.ModelProto of stacked recurrent nodes computes (see the
    module's doc)."""
    require_onnx()
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    producers, nodes, protos = {}, [], []
    for index, node_proto in enumerate(graph.node):
        name = node_proto.name or f"{node_proto.op_type}_{index}"
        for output in node_proto.output:
            producers[output] = (index, node_proto)
        if node_proto.op_type in RECURRENT:
            nodes.append(parse(node_proto.op_type, name, list(node_proto.input), list(node_proto.output),
                               attributes_of(node_proto)))
            protos.append((index, node_proto))
        elif node_proto.op_type not in GLUE:
            raise ValueError(f"node {name!r}: operator {node_proto.op_type} is not supported (a graph of LSTM, GRU "
                             f"or RNN nodes joined by {', '.join(sorted(GLUE))})")
    if not nodes:
        raise ValueError("graph: no LSTM, GRU or RNN node")
    first = nodes[0]
    for node in nodes[1:]:
        for option in ("kind", "direction", "reset_after", "nonlinearity", "activations", "clip", "input_forget",
                       "peepholes"):
            if getattr(node, option) != getattr(first, option):
                raise ValueError(f"node {node.name!r} ({node.kind}): its {option} differs from node {first.name!r}'s; "
                                 "a streamrnn stack has one cell")
    if first.direction == "reverse":
        raise ValueError(f"node {first.name!r} ({first.kind}): attribute direction: 'reverse' has no streamrnn "
                         "model yet (a stream runs forward in time)")
    for node in nodes:
        if node.layout != 0 or "sequence_lens" in node.inputs:
            what = "layout" if node.layout != 0 else "input sequence_lens"
            raise ValueError(f"node {node.name!r} ({node.kind}): {what} inside a stack is not supported")
    # A chain: each layer's X computed from the layer before's Y.
    for k in range(1, len(nodes)):
        if protos[k - 1][0] not in _upstream(nodes[k].inputs["X"], producers)[0]:
            raise ValueError(f"node {nodes[k].name!r} ({nodes[k].kind}): its X does not come from node "
                             f"{nodes[k - 1].name!r}: not a stack of layers")
    constants = constants_of(graph)
    weights = [constant_weights(node, constants) for node in nodes]
    H = weights[0]["R"].shape[2]
    for node, w in zip(nodes[1:], weights[1:]):
        if w["R"].shape[2] != H:
            raise ValueError(f"node {node.name!r} ({node.kind}): hidden size {w['R'].shape[2]} differs from {H}")

    inputs = {i.name: i for i in graph.input if i.name not in constants}
    x_name = [name for name in inputs if name in _upstream(first.inputs["X"], producers)[1]]
    if len(x_name) != 1:
        raise ValueError(f"graph: expected one input that the first recurrent node's X comes from, found {x_name}")
    x_name = x_name[0]
    state_names = [name for name in inputs if name != x_name]
    state_count = 2 if first.kind == "LSTM" else 1
    if state_names and len(state_names) != state_count:
        raise ValueError(f"graph: inputs {state_names}: expected none or {state_count} initial states besides "
                         f"{x_name!r}")

    D, L, I = first.directions, len(nodes), weights[0]["W"].shape[2]
    evaluator = ReferenceEvaluator(proto, new_ops=[_streamrnn_node(kind) for kind in RECURRENT])
    rng = np.random.default_rng(0)
    residual_options = (False, True) if any(p.op_type == "Add" for p in graph.node) else (False,)
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inputs[x_name].type.tensor_type.shape.dim]
    dims = dims if len(dims) == 3 else [0, 0, 0]
    for batch_first, residual in itertools.product((False, True), residual_options):
        # The sizes x declares, where it fixes them (exporters often do), else two of ours.
        T, B = (dims[1], dims[0]) if batch_first else (dims[0], dims[1])
        shapes = [(T, B)] if T and B else [(T or 5, B or 3), (T or 2, B or 4)]
        model = _model_of(nodes, weights, batch_first, residual)
        if all(_agrees(model, evaluator, x_name, state_names, rng, t, b, I, L * D, H, first.kind)
               for t, b in shapes):
            return model
    raise ValueError(f"graph: its {len(graph.node) - L} nodes around the {L} {first.kind} nodes do not compute a "
                     "streamrnn stack's outputs (y, h_n, c_n) from its input")


def _streamrnn_node(kind: str) -> Any:
    """The reference evaluator's operator `kind` (LSTM, GRU or RNN), run by streamrnn as one node."""
    from onnx.reference.op_run import OpRun

    def _run(self: Any, *inputs: Any, **attributes: Any) -> tuple:  # noqa: ARG001 (parse reads the node's)
        proto = self.onnx_node
        node = parse(kind, proto.name or kind, list(proto.input), list(proto.output), attributes_of(proto))
        outputs = evaluate(node, {what: v for what, v in zip(_INPUTS[kind], inputs) if v is not None})
        return tuple(outputs[name] for name in _OUTPUTS[kind][:len(proto.output)])

    # The evaluator takes an operator's implementation by its class name.
    return type(kind, (OpRun,), {"op_domain": "", "_run": _run})


def _agrees(model: Any, evaluator: Any, x_name: str, state_names: "list[str]", rng: Any, T: int, B: int, I: int,
            LD: int, H: int, kind: str) -> bool:
    """Whether every output of the graph, run on random x (and initial states) of this size, is
    the model's y, h_n or c_n for the same inputs (the states tried in either order)."""
    x = rng.standard_normal((B, T, I) if model.batch_first else (T, B, I)).astype(np.float32)
    states = [rng.standard_normal((LD, B, H)).astype(np.float32) * 0.5 for _ in state_names]
    orders = itertools.permutations(range(len(states))) if states else [()]
    for order in orders:
        feeds = {x_name: x, **{state_names[k]: states[j] for k, j in enumerate(order)}}
        try:
            got = evaluator.run(None, feeds)
        except Exception:  # the glue does not run at this layout or shape: not this candidate
            return False
        state = None
        if states:
            state = (states[0], states[1]) if kind == "LSTM" else states[0]
        y, final = model(x, state)
        expected = [y, *(final if kind == "LSTM" else (final,))]
        if all(any(e.shape == g.shape and np.allclose(e, g, rtol=0, atol=1e-5) for e in expected) for g in got):
            return True
    return False
