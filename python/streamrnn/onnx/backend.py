# python/streamrnn/onnx/backend.py: an onnx.backend.base.Backend over streamrnn.
# Part of streamrnn, MIT licence.
"""An ONNX backend (onnx.backend.base.Backend) that runs graphs of one LSTM, GRU or RNN node, and
single nodes, with streamrnn, so that ONNX's test runner can check streamrnn against ONNX's
definitions:

    import onnx.backend.test, streamrnn.onnx.backend
    tests = onnx.backend.test.BackendTest(streamrnn.onnx.backend, __name__)
    tests.include(r"^test_(lstm|gru|rnn|simple_rnn)_")

Weights may be graph inputs here (ONNX's node tests feed them at run time): the model is built
from them at each run. The engine computes in float32; outputs come back in X's type. A reverse
node runs as its forward model over each sequence reversed within its length. Every attribute
is read as streamrnn.onnx.load reads it; what is invalid raises ValueError naming the node and
the attribute."""

from __future__ import annotations

from typing import Any

from ._nodes import Node, attributes_of, constants_of, evaluate, parse, recurrent_node_of, require_onnx

require_onnx()  # ImportError saying what to install, before onnx's own imports below
from onnx.backend.base import Backend as _Backend  # noqa: E402
from onnx.backend.base import BackendRep as _BackendRep  # noqa: E402
from onnx.backend.base import namedtupledict  # noqa: E402


def _outputs(node: Node, values: dict, inputs: "dict[str, Any]", names: "list[str]") -> tuple:
    """Runs `node` on its inputs (by value name) and returns the values named `names`."""

    def value(what: str) -> Any:
        name = node.inputs[what]
        if name not in inputs:
            raise ValueError(f"node {node.name!r} ({node.kind}): input {what} ({name!r}) was not given")
        return inputs[name]

    produced = evaluate(node, {what: value(what) for what in node.inputs})
    by_name = {name: produced[what] for what, name in node.outputs.items()}
    for name in names:
        if name not in by_name and name not in values:
            raise ValueError(f"graph output {name!r} is not an output of node {node.name!r} ({node.kind})")
    return namedtupledict("Outputs", names)(*[by_name[n] if n in by_name else values[n] for n in names])


class StreamrnnRep(_BackendRep):
    """A prepared graph: run(inputs) takes its non-initializer inputs in order (or a dict by name)."""

    def __init__(self, model: Any) -> None:
        graph = model.graph
        self._node = recurrent_node_of(graph)
        self._constants = constants_of(graph)
        self._inputs = [i.name for i in graph.input if i.name not in self._constants]
        self._outputs = [o.name for o in graph.output]

    def run(self, inputs: Any, **kwargs: Any) -> tuple:  # noqa: ARG002 (the base class's signature)
        if isinstance(inputs, dict):
            given = dict(inputs)
        else:
            inputs = list(inputs)
            if len(inputs) > len(self._inputs):
                raise ValueError(f"inputs: the graph takes {len(self._inputs)} ({self._inputs}), got {len(inputs)}")
            given = dict(zip(self._inputs, inputs))
        return _outputs(self._node, self._constants, {**self._constants, **given}, self._outputs)


class StreamrnnBackend(_Backend):
    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:  # noqa: ARG003
        try:
            recurrent_node_of(model.graph)
        except ValueError:
            return False
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> StreamrnnRep:  # noqa: ARG003
        if not cls.supports_device(device):
            raise ValueError(f"device: streamrnn's ONNX backend runs on the CPU, got {device!r}")
        return StreamrnnRep(model)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None,  # noqa: ARG003
                 **kwargs: Any) -> tuple:
        if not cls.supports_device(device):
            raise ValueError(f"device: streamrnn's ONNX backend runs on the CPU, got {device!r}")
        parsed = parse(node.op_type, node.name or node.op_type, list(node.input), list(node.output),
                       attributes_of(node))
        names = [n for n in node.input if n]
        given = dict(zip(names, inputs)) if not isinstance(inputs, dict) else dict(inputs)
        return _outputs(parsed, {}, given, [n for n in node.output if n])

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper() == "CPU"


is_compatible = StreamrnnBackend.is_compatible
prepare = StreamrnnBackend.prepare
run_model = StreamrnnBackend.run_model
run_node = StreamrnnBackend.run_node
supports_device = StreamrnnBackend.supports_device
