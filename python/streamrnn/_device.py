# python/streamrnn/_device.py: how a layer on a GPU runs: its GPU copy of the weights, kept in step
# with the CPU model's, and its streams there. Part of streamrnn, MIT licence.
"""The GPU policy of a layer (streamrnn.LSTM etc. after .to("cuda")).

The engine's CPU model keeps the weights: state_dict, load_state_dict, save and the optimizers
work on it, and the GPU copy follows it by version before every call. Training runs on the GPU
(forward with train=True, backward); the weight gradients come back into the CPU model's grads(),
where the optimizers read them."""

from __future__ import annotations

from typing import Any, Optional

from . import _checks, _core
from . import cuda as _cuda


class DeviceModel:
    """A layer's model on one GPU: the CUDA backend's DeviceModel, synced to the CPU model."""

    def __init__(self, core: _core.Model, index: int) -> None:
        self._core = core
        # The spec as the engine gives it, dropout and all: both backends read the same fields.
        self._model = _cuda.backend(index).DeviceModel(core.spec, index)
        self.sync()

    @property
    def device(self) -> int:
        return self._model.device

    def sync(self) -> Any:
        """The device model, with the CPU model's current weights and the TF32 mode of now."""
        model = self._model
        if model.loaded_version != self._core.version:
            version, values = self._core.weights()  # one version, values and number together
            model.load(values, version)
        if model.allow_tf32 != _cuda.allow_tf32():
            model.allow_tf32 = _cuda.allow_tf32()
        return model

    def forward(self, x: Any, state: Any, lengths: Any, train: bool) -> Any:
        return self.sync().forward(x, state, lengths, train)

    def backward(self, dy: Any, dstate: Any) -> Any:
        dx, dstate0, gradients = self._model.backward(dy, dstate)
        self._core.add_gradients(gradients)
        return dx, dstate0

    def stream(self, batch: int) -> "DeviceStream":
        return DeviceStream(self, self._model.stream(batch))


class DeviceStream:
    """Live streams of a model on a GPU, from m.stream(batch) after m.to("cuda"): the API of
    streamrnn.Stream, with the state kept on the GPU. x may be a NumPy array (the result is one) or
    a GPU array (the result is a streamrnn.cuda.DeviceArray, or out). Weights loaded into the model
    take effect on the next call, as on the CPU. A step is one CUDA graph launch for the whole
    stack, and returns when its output is written."""

    def __init__(self, model: DeviceModel, stream: Any) -> None:
        self._model = model
        self._stream = stream

    def step(self, x: Any, out: Any = None) -> Any:
        """One time step: x (B, I), or (I,) when B == 1 -> (B, H_out) or (H_out,); into out if given
        (a NumPy array for NumPy x, a GPU array for GPU x)."""
        self._model.sync()
        return self._stream.step(x, out)

    def process(self, x_chunk: Any) -> Any:
        """T time steps: x_chunk (T, B, I) ((B, T, I) when batch_first), or (T, I) when B == 1."""
        self._model.sync()
        return self._stream.process(x_chunk)

    @property
    def state(self) -> Any:
        """The state as NumPy copies: h (L, B, H_out), or (h, c) for an LSTM, c (L, B, H). Setting
        takes NumPy or GPU arrays (None: zeros), checked in full before anything changes."""
        return self._stream.state

    @state.setter
    def state(self, state: Any) -> None:
        self._stream.state = state

    def reset(self, i: Optional[int] = None) -> None:
        """Zeros the state of every stream, or of stream i only (IndexError when out of range)."""
        self._stream.reset(None if i is None else _checks.integer("i", i))

    @property
    def batch(self) -> int:
        """Number of independent streams."""
        return self._stream.batch

    @property
    def device(self) -> str:
        return f"cuda:{self._model.device}"
