# python/streamrnn/_sequential.py: sr.Sequential, whole models, and the element-wise blocks.
# Part of streamrnn, MIT licence.
"""Whole models: Linear layers and element-wise functions before, between and after recurrent
layers, run by the engine as one model (whole sequences, training, one call per stream step, one
file that the C API loads too). Python only describes the blocks."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from . import _checks, _core
from ._blocks import Linear
from ._modules import Array, PathLike, _Layer, _Weights


class _Function:
    """An element-wise block; `_name` is the engine's (and the file's) name of it."""

    _name = ""
    _alpha = 0.0

    def _spec(self) -> "tuple[str, float]":
        return (self._name, self._alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Tanh(_Function):
    """tanh(x), element by element."""
    _name = "Tanh"


class Sigmoid(_Function):
    """1 / (1 + exp(-x))."""
    _name = "Sigmoid"


class ReLU(_Function):
    """max(0, x)."""
    _name = "ReLU"


class Softsign(_Function):
    """x / (1 + |x|)."""
    _name = "Softsign"


class GELU(_Function):
    """x * Phi(x), Phi the normal CDF: torch.nn.GELU() (approximate='none')."""
    _name = "GELU"


class Identity(_Function):
    """x."""
    _name = "Identity"


class LeakyReLU(_Function):
    """x if x >= 0 else negative_slope * x, as torch.nn.LeakyReLU."""
    _name = "LeakyReLU"

    def __init__(self, negative_slope: float = 0.01) -> None:
        self._alpha = _checks.number("negative_slope", negative_slope)

    negative_slope = property(lambda self: self._alpha)

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self._alpha})"


class ELU(_Function):
    """x if x > 0 else alpha * (exp(x) - 1), as torch.nn.ELU."""
    _name = "ELU"

    def __init__(self, alpha: float = 1.0) -> None:
        self._alpha = _checks.number("alpha", alpha)

    alpha = property(lambda self: self._alpha)

    def __repr__(self) -> str:
        return f"ELU(alpha={self._alpha})"


_FUNCTIONS = {cls._name: cls for cls in (Tanh, Sigmoid, ReLU, Softsign, GELU, Identity, LeakyReLU, ELU)}


def _function(name: str, alpha: float) -> _Function:
    cls = _FUNCTIONS[name]
    return cls(alpha) if cls in (LeakyReLU, ELU) else cls()


class Sequential(_Weights):
    """Blocks run one after another on every step: sr.Linear, element-wise functions (sr.Tanh,
    sr.Sigmoid, sr.ReLU, sr.LeakyReLU, sr.ELU, sr.Softsign, sr.GELU, sr.Identity) and recurrent
    layers (sr.LSTM, sr.GRU, sr.RNN). The blocks keep their own weights: m.blocks[k] is the object
    given, and changing it changes the model.

    Layout: time-major (T, B, I), or (B, T, I) when the recurrent blocks are batch_first (they must
    agree); unbatched (T, I) too. The state is the recurrent block's ((h, c) for an LSTM, h else),
    or a tuple of theirs with several, in order; None where it is not given means each block's
    initial_state. `metadata` (str to str, such as a sample rate) is kept on m.metadata and saved
    with the model."""

    def __init__(self, *blocks: Any, metadata: Optional[Mapping[str, str]] = None) -> None:
        for k, block in enumerate(blocks):
            if not isinstance(block, (Linear, _Layer, _Function)):
                raise TypeError(f"blocks[{k}]: expected sr.Linear, an element-wise block (sr.Tanh, ...) or a "
                                f"recurrent layer (sr.LSTM, sr.GRU, sr.RNN), got {type(block).__name__}")
            if isinstance(block, _Layer) and block.device != "cpu":
                raise ValueError(f"blocks[{k}]: whole models run on the CPU; this block is on {block.device}")
        self.blocks = list(blocks)
        self._core = _core.Sequential([b._spec() if isinstance(b, _Function) else b._core for b in blocks])
        self.metadata = dict(metadata or {})

    @classmethod
    def _from_file(cls, core: Any, items: list, metadata: "dict[str, str]") -> "Sequential":
        model = cls.__new__(cls)
        model.blocks = [_wrap(item) for item in items]
        model._core = core
        model.metadata = metadata
        return model

    input_size = property(lambda self: self._core.input_size, doc="Features per input step.")
    output_size = property(lambda self: self._core.output_size, doc="Features per output step.")
    batch_first = property(lambda self: self._core.batch_first)

    def parts(self) -> "dict[str, _Weights]":
        """The blocks with weights, by index (what optimizers and clipping walk)."""
        return {str(k): b for k, b in enumerate(self.blocks) if isinstance(b, _Weights)}

    def state_dict(self) -> "dict[str, Array]":
        """Every block's tensors under "<index>.<name>", as torch.nn.Sequential's."""
        return {f"{k}.{name}": value for k, part in self.parts().items() for name, value in part.state_dict().items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Strict, as the blocks' own; checked in full first, so a refused call changes nothing."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        parts = self.parts()
        split: "dict[str, dict[str, Any]]" = {k: {} for k in parts}
        unexpected = []
        for key, value in state_dict.items():
            k, _, name = str(key).partition(".")
            (split[k].__setitem__(name, value) if k in split else unexpected.append(key))
        if unexpected:
            raise ValueError(f"state_dict: unexpected keys {unexpected}")
        backup = {k: part.state_dict() for k, part in parts.items()}
        for k, part in parts.items():
            try:
                part.load_state_dict(split[k])
            except (ValueError, TypeError) as error:
                for name, loaded in parts.items():
                    loaded.load_state_dict(backup[name])
                raise type(error)(f"blocks[{k}] (keys '{k}.*'): {error}") from None

    def grads(self) -> "dict[str, Array]":
        return {f"{k}.{name}": value for k, part in self.parts().items() for name, value in part.grads().items()}

    def zero_grad(self) -> None:
        for part in self.parts().values():
            part.zero_grad()

    @property
    def initial_state(self) -> Any:
        """The recurrent block's initial_state, or a tuple of theirs (set it the same way)."""
        layers = self._layers()
        states = tuple(layer.initial_state for layer in layers)
        return states[0] if len(layers) == 1 else states

    @initial_state.setter
    def initial_state(self, state: Any) -> None:
        layers = self._layers()
        if len(layers) == 1:
            layers[0].initial_state = state
            return
        if not isinstance(state, (tuple, list)) or len(state) != len(layers):
            raise ValueError(f"initial_state: expected a tuple of {len(layers)} states, one per recurrent block")
        for layer, part in zip(layers, state):
            layer.initial_state = part

    def _layers(self) -> "list[_Layer]":
        return [b for b in self.blocks if isinstance(b, _Layer)]

    def __call__(self, x: Any, state: Any = None, lengths: Any = None, train: bool = False) -> "tuple[Array, Any]":
        """Run the whole sequence through every block: (y, state). lengths as the layers' (steps at
        or past a row's length give zeros in y); train=True keeps what backward() reads."""
        return self._core.forward(x, state, lengths, _checks.flag("train", train))

    def backward(self, dy: Any, dstate: Any = None) -> "tuple[Array, Any]":
        """BPTT through every block of the last training call: (dx, dstate0); the blocks' weight
        gradients (and learned initial states') accumulate in their grads()."""
        return self._core.backward(dy, dstate)

    def stream(self, batch: int = 1) -> Any:
        """Live streams through every block: step(x_t, out=None), process(xs), state, reset(i=None),
        as a layer's stream; one call steps the whole model, allocation-free with out=."""
        return self._core.stream(batch)

    def save(self, path: PathLike) -> None:
        """One safetensors file: block k's tensors under "k.<name>", the blocks and m.metadata in
        its metadata. streamrnn.load and the C API read it."""
        self._core.save(_checks.path("path", path), {str(k): str(v) for k, v in self.metadata.items()})

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, k: int) -> Any:
        return self.blocks[k]

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(b) for b in self.blocks) + ")"


def _wrap(item: Any) -> Any:
    """A block of a loaded file: its engine object (Linear, Model) or (name, alpha), as Python's."""
    from ._modules import _LAYERS
    if isinstance(item, tuple):
        return _function(*item)
    if isinstance(item, _core.Linear):
        linear = Linear.__new__(Linear)
        linear._core = item
        return linear
    return _LAYERS[item.mode]._wrap(item)
