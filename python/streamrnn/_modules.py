# python/streamrnn/_modules.py: the Python faces of the layers and cells: signatures, docs, checks.
# Part of streamrnn, MIT licence.
"""Layers (LSTM, GRU, RNN) and cells (LSTMCell, GRUCell, RNNCell) over the C++ engine."""

from __future__ import annotations

import operator
import os
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _core
from . import cuda as _cuda

Array = np.ndarray
State = Union[Array, "tuple[Array, Array]"]
PathLike = Union[str, "os.PathLike[str]"]


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None


def _seed(seed: Optional[int]) -> Optional[int]:
    return None if seed is None else _integer("seed", seed) % 2**64


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


class _Weights:
    """What every module with weights shares: state dicts and gradients."""

    _core: Any

    def state_dict(self) -> "dict[str, Array]":
        """Copies of every weight, under PyTorch's names and shapes (weight_ih_l0, ...)."""
        return self._core.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy weights in from NumPy arrays or torch tensors, e.g. a torch module's state_dict().

        Strict: every key of state_dict() must be there with its exact shape, and no other key.
        A refused call (ValueError / TypeError) changes nothing."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        self._core.load_state_dict(dict(state_dict))

    def grads(self) -> "dict[str, Array]":
        """Copies of the accumulated gradients, keyed and shaped like state_dict() (zeros before
        the first backward)."""
        return self._core.grads()

    def zero_grad(self) -> None:
        """Set the accumulated gradients to zero."""
        self._core.zero_grad()


class _Module(_Weights):
    """What recurrent layers and cells share: the engine model and its files."""

    _core: _core.Model

    def _build(self, mode: str, input_size: Any, hidden_size: Any, num_layers: Any = 1, *, proj_size: Any = 0,
               bias: Any = True, batch_first: Any = False, bidirectional: Any = False, residual: Any = False,
               reset_after: Any = True, dropout: Any = 0.0, is_cell: bool = False, seed: Any = None) -> None:
        self._core = _core.Model(
            mode, _integer("input_size", input_size), _integer("hidden_size", hidden_size),
            _integer("num_layers", num_layers), _integer("proj_size", proj_size), _flag("bias", bias),
            _flag("batch_first", batch_first), _flag("bidirectional", bidirectional), _flag("residual", residual),
            _flag("reset_after", reset_after), _probability("dropout", dropout), is_cell, _seed(seed))

    @classmethod
    def _wrap(cls, core: _core.Model) -> "_Module":
        module = cls.__new__(cls)
        module._core = core
        return module

    input_size = property(lambda self: self._core.input_size, doc="I, features per input step.")
    hidden_size = property(lambda self: self._core.hidden_size, doc="H, units per layer and direction.")
    bias = property(lambda self: self._core.bias, doc="Whether the cells have bias vectors.")

    def save(self, path: PathLike) -> None:
        """Write the model to one safetensors file: the tensors under their state_dict() names, the
        architecture in its metadata. streamrnn.load and the C++ runtime read it back."""
        self._core.save(os.fspath(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def _describe(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class _Layer(_Module):
    """What LSTM, GRU and RNN share: whole sequences and streams."""

    num_layers = property(lambda self: self._core.num_layers, doc="L, stacked layers.")
    batch_first = property(lambda self: self._core.batch_first, doc="Whether x is (B, T, I) rather than (T, B, I).")
    dropout = property(lambda self: self._core.dropout, doc="Dropout between layers (training only).")
    bidirectional = property(lambda self: self._core.bidirectional, doc="Whether a reverse direction runs too.")
    residual = property(lambda self: self._core.residual, doc="Whether layers add their input to their output.")

    def __call__(self, x: Any, state: Optional[State] = None, lengths: Any = None,
                 train: bool = False) -> "tuple[Array, State]":
        """Run the whole sequence: returns (y, state).

        x: (T, B, I), (B, T, I) when batch_first, or unbatched (T, I).
        state: the initial state (None: zeros); h is (L*D, B, H_out), an LSTM's c (L*D, B, H);
          unbatched input takes and returns them without the B axis.
        lengths: optional integers (B,), each in [0, T]. Steps at or past a sequence's length give
          zeros in y, and the returned state is the state at its last valid step (PyTorch's
          packed-sequence semantics; the reverse direction starts at the last valid step).
        y: (T, B, D*H_out) in x's layout; the returned state has the initial state's structure.
        train: keep what backward() needs, and apply dropout between layers.
        """
        train = _flag("train", train)
        if self._device_model is not None:
            if train:
                raise NotImplementedError(f"train=True: training on the GPU is not implemented yet; move the model "
                                          f"with .to('cpu') to train it ({self.device} now)")
            return _synced(self._core, self._device_model).forward(x, state, lengths)
        return self._core.forward(x, state, lengths, train)

    # The GPU copy of the weights (streamrnn.cuda), or None on the CPU. The engine's weights stay
    # the reference: state_dict, load_state_dict, save and the optimizers work on them, and the
    # GPU copy follows them before each call.
    _device_model: Any = None

    @property
    def device(self) -> str:
        """Where calls run: "cpu", or "cuda:N" after to("cuda:N")."""
        return "cpu" if self._device_model is None else f"cuda:{self._device_model.device}"

    def to(self, device: Any) -> "_Layer":
        """Move the model to `device` ("cpu", "cuda", "cuda:N", an int N, or a torch.device) and
        return it (the same object, as torch.nn.Module.to). On a GPU, calls and streams take NumPy
        arrays or GPU arrays (see streamrnn.cuda); RuntimeError when there is no usable GPU."""
        kind, index = _cuda.parse_device(device)
        if kind == "cpu":
            self._device_model = None
            return self
        backend = _cuda.backend(index)
        if self._device_model is None or self._device_model.device != index:
            core = self._core
            self._device_model = backend.DeviceModel(
                core.mode, core.input_size, core.hidden_size, core.num_layers, core.proj_size, core.bias,
                core.batch_first, core.bidirectional, core.residual, core.reset_after, core.is_cell, index)
        _synced(self._core, self._device_model)
        return self

    def cuda(self, device: Optional[int] = None) -> "_Layer":
        """to("cuda") or to(f"cuda:{device}")."""
        return self.to("cuda" if device is None else _integer("device", device))

    def cpu(self) -> "_Layer":
        """to("cpu")."""
        return self.to("cpu")

    def backward(self, dy: Any, dstate: Optional[State] = None) -> "tuple[Array, State]":
        """Backpropagation through time over the last call with train=True: returns (dx, dstate0).

        dy: dL/dy, shaped like that call's y; dstate: dL/d(the returned state), shaped like it
        (None: zeros). dx is shaped like x, dstate0 (dL/d(initial state)) like the state. The
        weights' gradients add into grads() until zero_grad(). Truncated BPTT over a long stream:
        carry the state from chunk to chunk (its values, not its graph), backward each chunk.
        On a GPU, dy and dstate may be GPU arrays (dx and dstate0 then are too), and the weights'
        gradients come back to grads(), where the optimizers read them.
        """
        if self._device_model is not None:
            dx, dstate0, gradients = self._device_model.backward(dy, dstate)
            self._core.add_gradients(gradients)
            return dx, dstate0
        return self._core.backward(dy, dstate)

    def stream(self, batch: int = 1) -> "Union[_core.Stream, DeviceStream]":
        """A Stream of `batch` independent live streams, with state carried between calls.

        Everything it needs is allocated here; Stream.step(x, out=) then allocates nothing.
        Bidirectional models cannot stream (their reverse direction needs the sequence's end)."""
        batch = _integer("batch", batch)
        if self._device_model is not None:
            return DeviceStream(self._core, self._device_model, self._device_model.stream(batch))
        return self._core.stream(batch)

    def _describe(self) -> str:
        parts = [super()._describe()]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        for name in ("batch_first", "bidirectional", "residual"):
            if getattr(self, name):
                parts.append(f"{name}=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        return ", ".join(parts)


def _synced(core: _core.Model, device_model: Any) -> Any:
    """device_model, its weights and TF32 mode made those of now."""
    if device_model.loaded_version != core.version:
        device_model.load(core.parameter_view(), core.version)
    if device_model.allow_tf32 != _cuda.allow_tf32():
        device_model.allow_tf32 = _cuda.allow_tf32()
    return device_model


class DeviceStream:
    """Live streams of a model on a GPU, from m.stream(batch) after m.to("cuda"): the API of
    streamrnn.Stream, with the state kept on the GPU. x may be a NumPy array (the result is one) or
    a GPU array (the result is a streamrnn.cuda.DeviceArray, or out). Weights loaded into the model
    take effect on the next call, as on the CPU. A step is one CUDA graph launch for the whole
    stack, and returns when its output is written."""

    def __init__(self, core: _core.Model, device_model: Any, stream: Any) -> None:
        self._core = core
        self._device_model = device_model
        self._stream = stream

    def step(self, x: Any, out: Any = None) -> Any:
        """One time step: x (B, I), or (I,) when B == 1 -> (B, H_out) or (H_out,); into out if given
        (a NumPy array for NumPy x, a GPU array for GPU x)."""
        _synced(self._core, self._device_model)
        return self._stream.step(x, out)

    def process(self, x_chunk: Any) -> Any:
        """T time steps: x_chunk (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1."""
        _synced(self._core, self._device_model)
        return self._stream.process(x_chunk)

    @property
    def state(self) -> State:
        """The state as NumPy copies: h (L, B, H_out), or (h, c) for an LSTM, c (L, B, H). Setting
        takes NumPy or GPU arrays (None: zeros), checked in full before anything changes."""
        return self._stream.state

    @state.setter
    def state(self, state: Optional[State]) -> None:
        self._stream.state = state

    def reset(self, i: Optional[int] = None) -> None:
        """Zeros the state of every stream, or of stream i only (IndexError when out of range)."""
        self._stream.reset(None if i is None else _integer("i", i))

    @property
    def batch(self) -> int:
        """Number of independent streams."""
        return self._stream.batch

    @property
    def device(self) -> str:
        return f"cuda:{self._device_model.device}"


class LSTM(_Layer):
    """Long short-term memory, PyTorch's equations and gate order (i, f, g, o).

    With proj_size > 0, h = W_hr (o * tanh(c)) has proj_size features (PyTorch's LSTM with
    projections). residual=True adds each layer's input to its output where their sizes match
    (every layer past the first; the first when input_size == D * H_out). Weights are drawn from
    uniform(-1/sqrt(H), 1/sqrt(H)) with `seed` (None: a random seed)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, proj_size: int = 0, seed: Optional[int] = None) -> None:
        self._build("LSTM", input_size, hidden_size, num_layers, proj_size=proj_size, bias=bias,
                    batch_first=batch_first, bidirectional=bidirectional, residual=residual, dropout=dropout,
                    seed=seed)

    proj_size = property(lambda self: self._core.proj_size, doc="P, the projected output size (0: none).")

    def _describe(self) -> str:
        return super()._describe() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class GRU(_Layer):
    """Gated recurrent unit, gate order (r, z, n).

    reset_after=True is PyTorch's (and cuDNN's) GRU, n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    reset_after=False is Cho et al. (2014), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), ONNX's
    default (linear_before_reset=0). PyTorch has no reset-before GRU, so from_torch always gives
    reset_after=True; a reset-before model moves across through its state_dict."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, reset_after: bool = True, seed: Optional[int] = None) -> None:
        self._build("GRU", input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional, residual=residual, reset_after=reset_after, dropout=dropout,
                    seed=seed)

    reset_after = property(lambda self: self._core.reset_after, doc="PyTorch's GRU (True) or Cho et al.'s (False).")

    def _describe(self) -> str:
        return super()._describe() + ("" if self.reset_after else ", reset_after=False")


class RNN(_Layer):
    """Elman RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh), or relu with nonlinearity="relu"."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, seed: Optional[int] = None) -> None:
        self._build(_rnn_mode(nonlinearity), input_size, hidden_size, num_layers, bias=bias,
                    batch_first=batch_first, bidirectional=bidirectional, residual=residual, dropout=dropout,
                    seed=seed)

    nonlinearity = property(lambda self: "relu" if self._core.mode == "RNN_RELU" else "tanh",
                            doc='"tanh" or "relu".')

    def _describe(self) -> str:
        return super()._describe() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


def _rnn_mode(nonlinearity: Any) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class _Cell(_Module):
    """What the cells share: one step of one layer."""

    _batched = True

    def __call__(self, x: Any, state: Optional[State] = None, train: bool = False) -> State:
        """One step. x: (B, I) or unbatched (I,); state: the previous state (None: zeros), h of shape
        (B, H) (LSTM: (h, c), both (B, H)), unbatched without B. Returns the new state.
        train: keep what backward() needs."""
        new_state = self._core.cell_forward(x, state, _flag("train", train))
        if train:
            self._batched = np.ndim(new_state[0] if isinstance(new_state, tuple) else new_state) == 2
        return new_state

    def backward(self, dstate: Optional[State]) -> "tuple[Array, State]":
        """Back through the last step taken with train=True: dstate is dL/d(the new state), shaped
        like it; returns (dx, dstate0), dL/dx and dL/d(the previous state). The weights'
        gradients add into grads()."""
        return self._core.cell_backward(dstate, self._batched)


class LSTMCell(_Cell):
    """One LSTM step, as torch.nn.LSTMCell: (h, c) = cell(x, (h, c))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, seed: Optional[int] = None) -> None:
        self._build("LSTM", input_size, hidden_size, bias=bias, is_cell=True, seed=seed)


class GRUCell(_Cell):
    """One GRU step, as torch.nn.GRUCell (reset_after=True) or Cho et al. (reset_after=False)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, reset_after: bool = True,
                 seed: Optional[int] = None) -> None:
        self._build("GRU", input_size, hidden_size, bias=bias, reset_after=reset_after, is_cell=True, seed=seed)

    reset_after = GRU.reset_after


class RNNCell(_Cell):
    """One Elman RNN step, as torch.nn.RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 seed: Optional[int] = None) -> None:
        self._build(_rnn_mode(nonlinearity), input_size, hidden_size, bias=bias, is_cell=True, seed=seed)

    nonlinearity = RNN.nonlinearity


_LAYERS = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN, "RNN_RELU": RNN}
_CELLS = {"LSTM": LSTMCell, "GRU": GRUCell, "RNN_TANH": RNNCell, "RNN_RELU": RNNCell}


def load(path: PathLike) -> Any:
    """Read a model file written by save(): returns the same class with the same weights (a layer,
    a cell, or a composite model of streamrnn.models).

    FileNotFoundError for a missing file; ValueError for a truncated, corrupt or foreign one."""
    path = os.fspath(path)
    _, metadata = _core.load_tensors(path)
    if "model" in metadata:
        from . import models
        return models.load(path)
    core = _core.load(path)
    return (_CELLS if core.is_cell else _LAYERS)[core.mode]._wrap(core)
