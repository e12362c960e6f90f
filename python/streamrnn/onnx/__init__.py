# python/streamrnn/onnx/__init__.py: ONNX interop. Part of streamrnn, MIT licence.
"""streamrnn and ONNX: `load` reads a graph of one LSTM, GRU or RNN node, or of such nodes stacked
(torch.onnx.export's), as a streamrnn model; `save` writes a model as a graph that ONNX Runtime
runs (`to_proto` gives it as an onnx.ModelProto, `node_weights` a layer's tensors in ONNX's
layout); `streamrnn.onnx.backend` is an onnx.backend.base.Backend for graphs of one node (ONNX's
own test runner runs against it).

The onnx package is optional (pip install 'streamrnn[onnx]'): `import streamrnn` works without
it, and these functions raise ImportError saying what to install."""

from ._export import node_weights, save, to_proto
from ._nodes import load

__all__ = ["load", "node_weights", "save", "to_proto"]
