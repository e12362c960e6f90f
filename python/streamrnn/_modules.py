# python/streamrnn/_modules.py: the Python faces of the layers and cells: signatures, docs, checks.
# Part of streamrnn, MIT licence.
"""Layers (LSTM, GRU, RNN) and cells (LSTMCell, GRUCell, RNNCell) over the C++ engine."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _checks, _core, _device
from . import cuda as _cuda

Array = np.ndarray
State = Union[Array, "tuple[Array, Array]"]
PathLike = Union[str, "os.PathLike[str]"]

# Streams of one model: the engine caps them so that no buffer size can overflow.
_MAX_BATCH = 2**24


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
               reset_after: Any = True, dropout: Any = 0.0, is_cell: bool = False, seed: Any = None,
               peepholes: Any = False, input_forget: Any = False, clip: Any = None,
               activations: Any = None, learn_initial_state: Any = False) -> None:
        # The engine's spec, keyed as its fields: the engine checks the sizes' ranges.
        options = dict(peepholes=_checks.flag("peepholes", peepholes),
                       input_forget=_checks.flag("input_forget", input_forget), clip=_clip(clip))
        if activations is not None:
            options["activations"] = _flat_activations(activations, _FUNCTIONS[mode],
                                                        2 if bidirectional is True else 1)
        spec = dict(mode=mode, input_size=_checks.integer("input_size", input_size),
                    hidden_size=_checks.integer("hidden_size", hidden_size),
                    num_layers=_checks.integer("num_layers", num_layers),
                    proj_size=_checks.integer("proj_size", proj_size), bias=_checks.flag("bias", bias),
                    batch_first=_checks.flag("batch_first", batch_first),
                    bidirectional=_checks.flag("bidirectional", bidirectional),
                    residual=_checks.flag("residual", residual), reset_after=_checks.flag("reset_after", reset_after),
                    dropout=_checks.number("dropout", dropout), is_cell=is_cell,
                    learn_initial_state=_checks.flag("learn_initial_state", learn_initial_state), **options)
        self._core = _core.Model(spec, _checks.seed(seed))

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
        self._core.save(_checks.path("path", path))

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
                 train: bool = False, *, chunk: Optional[int] = None,
                 lookahead: Optional[int] = None) -> "tuple[Array, State]":
        """Run the whole sequence: returns (y, state).

        x: (T, B, I), (B, T, I) when batch_first, or unbatched (T, I).
        state: the initial state (None: m.initial_state, zeros unless set); h is (L*D, B, H_out), an
          LSTM's c (L*D, B, H);
          unbatched input takes and returns them without the B axis.
        lengths: optional integers (B,), each in [0, T]. Steps at or past a sequence's length give
          zeros in y, and the returned state is the state at its last valid step (PyTorch's
          packed-sequence semantics; the reverse direction starts at the last valid step).
        y: (T, B, D*H_out) in x's layout; the returned state has the initial state's structure.
        train: keep what backward() needs, and apply dropout between layers.
        chunk, lookahead: a bidirectional model run in chunks of `chunk` steps, each with the
          `lookahead` steps after it (latency-controlled, as it streams; README "Bidirectional
          streaming"); the returned state's forward entries are the forward directions' state after
          the last step, its reverse entries the reverse directions' at the start of the last chunk.
          A given `lookahead` needs a `chunk`; chunk >= T is the plain forward. With train=True,
          backward() goes back through the chunks (the model learns what it will stream).
        """
        train = _checks.flag("train", train)
        if chunk is not None or lookahead is not None:
            if chunk is None:
                raise ValueError("lookahead: given without chunk; give chunk= (the steps of each chunk) too")
            if self._device_model is not None:
                raise ValueError(f"chunk: chunked calls run on the CPU, and this model is on {self.device}")
            return self._core.forward_chunked(x, state, lengths, chunk, 0 if lookahead is None else lookahead, train)
        if self._device_model is not None:
            return self._device_model.forward(x, state, lengths, train)
        return self._core.forward(x, state, lengths, train)

    # The model on a GPU (streamrnn._device), or None on the CPU.
    _device_model: Optional[_device.DeviceModel] = None

    learn_initial_state = property(lambda self: self._core.learn_initial_state,
                                   doc="Whether the initial state is a parameter (initial_h, initial_c).")

    @property
    def initial_state(self) -> Optional[State]:
        """The state every row starts from when no state is given: whole sequences without state=,
        new streams and pools' streams, and their resets. h (L*D, H_out), and for an LSTM (h, c) with
        c (L*D, H); None means zeros. A parameter (in state_dict() as initial_h, initial_c) when the
        model was made with learn_initial_state=True; else set here, and saved with the model."""
        return self._core.initial_state

    @initial_state.setter
    def initial_state(self, state: Optional[State]) -> None:
        if self._device_model is not None:
            raise ValueError(f"initial_state: set it on the CPU, before to(); this model is on {self.device}")
        self._core.initial_state = state

    @property
    def device(self) -> str:
        """Where calls run: "cpu", or "cuda:N" after to("cuda:N")."""
        return "cpu" if self._device_model is None else f"cuda:{self._device_model.device}"

    def to(self, device: Any) -> "_Layer":
        """Move the model to `device` ("cpu", "cuda", "cuda:N", an int N, or a torch.device) and
        return it (the same object, as torch.nn.Module.to). On a GPU, calls and streams take NumPy
        arrays or GPU arrays (see streamrnn.cuda); RuntimeError when there is no usable GPU."""
        kind, index = _cuda.parse_device(device)
        if kind != "cpu" and self._core.initial_state is not None:
            # The GPU backend starts every row from zeros; it would silently drop the state.
            raise ValueError("device: a model with an initial state runs on the CPU only, for now")
        if kind == "cpu":
            self._device_model = None
        elif self._device_model is None or self._device_model.device != index:
            self._device_model = _device.DeviceModel(self._core, index)
        else:
            self._device_model.sync()
        return self

    def cuda(self, device: Optional[int] = None) -> "_Layer":
        """to("cuda") or to(f"cuda:{device}")."""
        return self.to("cuda" if device is None else _checks.integer("device", device))

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
            return self._device_model.backward(dy, dstate)
        return self._core.backward(dy, dstate)

    def stream(self, batch: int = 1, *, chunk: Optional[int] = None,
               lookahead: Optional[int] = None) -> "Union[_core.Stream, _core.ChunkedStream, _device.DeviceStream]":
        """A Stream of `batch` independent live streams, with state carried between calls.

        Everything it needs is allocated here; Stream.step(x, out=) then allocates nothing.
        A bidirectional model streams in chunks with a look-ahead only (chunk=, lookahead=): a
        ChunkedStream, whose process(x) returns the outputs of the chunks completed so far (a
        chunk's once the `lookahead` steps after it have arrived) and flush() the rest, as
        m(x, chunk=, lookahead=) gives them."""
        batch = _checks.integer("batch", batch)
        if not 1 <= batch <= _MAX_BATCH:
            raise ValueError(f"batch: expected 1 to {_MAX_BATCH} streams, got {batch}")
        if chunk is not None or lookahead is not None:
            if chunk is None:
                raise ValueError("lookahead: given without chunk; give chunk= (the steps of each chunk) too")
            if self._device_model is not None:
                raise ValueError(f"chunk: chunked streams run on the CPU, and this model is on {self.device}")
            return self._core.chunked_stream(batch, chunk, 0 if lookahead is None else lookahead)
        if self.bidirectional:
            raise ValueError("stream: a bidirectional model streams in chunks with a look-ahead only (its reverse "
                             "direction starts at the end): give chunk= and lookahead=, e.g. stream(1, chunk=30, "
                             "lookahead=30)")
        if self._device_model is not None:
            return self._device_model.stream(batch)
        return self._core.stream(batch)

    def pool(self, capacity: int = 256) -> "_core.Pool":
        """A Pool of `capacity` slots for live streams of this model that open and close at any time,
        any of them stepped together as one batch (pool.step(ids, x)), each exactly as
        stream(1) would step it alone. Every buffer for `capacity` streams is made here.
        Unidirectional models on the CPU; a pool reads the weights current at each step."""
        capacity = _checks.integer("capacity", capacity)
        if not 1 <= capacity <= _MAX_BATCH:
            raise ValueError(f"capacity: expected 1 to {_MAX_BATCH} streams, got {capacity}")
        if self.bidirectional:
            raise ValueError("pool: a bidirectional model needs the whole sequence (its reverse direction starts "
                             "at the end); pool a unidirectional model")
        if self._device_model is not None:
            raise ValueError(f"pool: pools run on the CPU, and this model is on {self.device}; "
                             "make the pool from model.cpu() (or a copy of it)")
        return self._core.pool(capacity)

    clip = property(lambda self: _float32(self._core.spec["clip"]) or None,
                    doc="Gate pre-activations are clipped to [-clip, clip] (ONNX's clip); None: not clipped.")

    @property
    def activations(self) -> "Optional[tuple[tuple[tuple[str, float, float], ...], ...]]":
        """The cell's functions (ONNX's f, g, h order), per direction, each (name, alpha, beta);
        None: the cell's own (sigmoid and tanh; an RNN's nonlinearity)."""
        flat = self._core.spec["activations"]
        if not flat:
            return None
        triples = [(f[0], *(_float32(v) for v in (tuple(f[1:]) + (0.0, 0.0))[:2])) for f in flat]
        n = len(triples) // (2 if self.bidirectional else 1)
        return tuple(tuple(triples[d:d + n]) for d in range(0, len(triples), n))

    def _describe(self) -> str:
        parts = [super()._describe()]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        for name in ("batch_first", "bidirectional", "residual", "peepholes", "input_forget"):
            if getattr(self, name, False):
                parts.append(f"{name}=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        if self.clip is not None:
            parts.append(f"clip={self.clip:g}")
        if self.activations is not None:
            parts.append(f"activations={self.activations}")
        return ", ".join(parts)


class LSTM(_Layer):
    """Long short-term memory, PyTorch's equations and gate order (i, f, g, o).

    With proj_size > 0, h = W_hr (o * tanh(c)) has proj_size features (PyTorch's LSTM with
    projections). residual=True adds each layer's input to its output where their sizes match
    (every layer past the first; the first when input_size == D * H_out). Weights are drawn from
    uniform(-1/sqrt(H), 1/sqrt(H)) with `seed` (None: a random seed).

    ONNX's options: peepholes, input_forget (f = 1 - i), clip (of every gate's pre-activation), and
    activations: the functions f (of i, f, o), g (of the cell input) and h (of c'), each a name
    (ONNX's: Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu,
    Softsign, Softplus) or (name, alpha[, beta]); a bidirectional model may give one list per
    direction. The defaults are the equations above."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, proj_size: int = 0, seed: Optional[int] = None, peepholes: bool = False,
                 input_forget: bool = False, clip: Optional[float] = None, activations: Any = None,
                 learn_initial_state: bool = False) -> None:
        self._build("LSTM", input_size, hidden_size, num_layers, proj_size=proj_size, bias=bias,
                    batch_first=batch_first, bidirectional=bidirectional, residual=residual, dropout=dropout,
                    seed=seed, peepholes=peepholes, input_forget=input_forget, clip=clip, activations=activations,
                    learn_initial_state=learn_initial_state)

    proj_size = property(lambda self: self._core.proj_size, doc="P, the projected output size (0: none).")
    peepholes = property(lambda self: self._core.spec["peepholes"],
                         doc="ONNX's peepholes: i and f add P_i * c and P_f * c, o adds P_o * c' "
                             "(weight_peephole_l{k}, rows i, f, o).")
    input_forget = property(lambda self: self._core.spec["input_forget"],
                            doc="ONNX's coupled input and forget gates: f = 1 - i.")

    def _describe(self) -> str:
        return super()._describe() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class GRU(_Layer):
    """Gated recurrent unit, gate order (r, z, n).

    reset_after=True is PyTorch's (and cuDNN's) GRU, n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    reset_after=False is Cho et al. (2014), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), ONNX's
    default (linear_before_reset=0). PyTorch has no reset-before GRU, so from_torch always gives
    reset_after=True; a reset-before model moves across through its state_dict.

    ONNX's options: clip, and activations f (of r and z) and g (of n), as for LSTM."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, reset_after: bool = True, seed: Optional[int] = None,
                 clip: Optional[float] = None, activations: Any = None, learn_initial_state: bool = False) -> None:
        self._build("GRU", input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional, residual=residual, reset_after=reset_after, dropout=dropout,
                    seed=seed, clip=clip, activations=activations, learn_initial_state=learn_initial_state)

    reset_after = property(lambda self: self._core.reset_after, doc="PyTorch's GRU (True) or Cho et al.'s (False).")

    def _describe(self) -> str:
        return super()._describe() + ("" if self.reset_after else ", reset_after=False")


class RNN(_Layer):
    """Elman RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh), or relu with nonlinearity="relu".

    ONNX's options: clip, and activations: the one function f, as for LSTM (["Relu"] is
    nonlinearity="relu")."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 residual: bool = False, seed: Optional[int] = None, clip: Optional[float] = None,
                 activations: Any = None, learn_initial_state: bool = False) -> None:
        mode = _rnn_mode(nonlinearity)
        if activations is not None and mode == "RNN_RELU":
            raise ValueError("activations: give the function there or nonlinearity='relu', not both")
        self._build(mode, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional, residual=residual, dropout=dropout, seed=seed, clip=clip,
                    activations=activations, learn_initial_state=learn_initial_state)

    nonlinearity = property(lambda self: "relu" if self._core.mode == "RNN_RELU" else "tanh",
                            doc='"tanh" or "relu".')

    def _describe(self) -> str:
        return super()._describe() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


# Functions per direction of each mode's cell (ONNX's f, g, h).
_FUNCTIONS = {"LSTM": 3, "GRU": 2, "RNN_TANH": 1, "RNN_RELU": 1}


def _float32(value: float) -> float:
    """A float32 the engine holds, as its shortest decimal (0.2, not 0.2000000029...)."""
    return float(str(np.float32(value)))


def _clip(clip: Any) -> float:
    """ONNX's clip for the engine, where 0 means none."""
    if clip is None:
        return 0.0
    value = _checks.number("clip", clip)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"clip: expected a positive number (None: no clipping), got {clip!r}")
    return value


def _is_function(entry: Any) -> bool:
    """A name, or (name, numbers...)."""
    return isinstance(entry, str) or (isinstance(entry, (list, tuple)) and len(entry) > 0 and
                                      isinstance(entry[0], str) and
                                      not any(isinstance(v, (str, list, tuple)) for v in entry[1:]))


def _flat_activations(activations: Any, n: int, directions: int) -> list:
    """The functions of every direction, forward first, from one list for all directions, one
    list per direction, or ONNX's flat list; each entry a name or (name, alpha[, beta])."""
    if isinstance(activations, str) or not isinstance(activations, (list, tuple)):
        raise TypeError(f"activations: expected a list of {n} function(s), got {type(activations).__name__}")
    entries = list(activations)
    # One list per direction: lists of functions. (A list of one name reads the same either way.)
    if entries and all(isinstance(e, (list, tuple)) and all(_is_function(f) for f in e) for e in entries):
        entries = [f for direction in entries for f in direction]
    if len(entries) == n:
        entries = entries * directions
    if len(entries) != n * directions:
        raise ValueError(f"activations: expected {n} function(s)" + (
            f" (or {n} for each of the 2 directions)" if directions == 2 else "") + f", got {list(activations)}")
    return [tuple(e) if isinstance(e, (list, tuple)) else e for e in entries]


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
        new_state = self._core.cell_forward(x, state, _checks.flag("train", train))
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
    a cell, a Sequential, or a composite model of streamrnn.models).

    FileNotFoundError for a missing file; ValueError for a truncated, corrupt or foreign one."""
    path = _checks.path("path", path)
    _, metadata = _core.load_tensors(path)
    if metadata.get("model") not in (None, "Sequential"):
        from . import models
        return models.load(path)
    loaded = _core.load_any(path)
    if isinstance(loaded, tuple):
        from ._sequential import Sequential
        return Sequential._from_file(*loaded)
    return (_CELLS if loaded.is_cell else _LAYERS)[loaded.mode]._wrap(loaded)
