# python/streamrnn/onnx/__init__.py: ONNX interop. Part of streamrnn, MIT licence.
"""streamrnn and ONNX: `load` reads a graph of one LSTM, GRU or RNN node as a streamrnn model;
`streamrnn.onnx.backend` is an onnx.backend.base.Backend for such graphs (ONNX's own test runner
runs against it).

The onnx package is optional (pip install 'streamrnn[onnx]'): `import streamrnn` works without
it, and these functions raise ImportError saying what to install."""

from ._nodes import load

__all__ = ["load"]
