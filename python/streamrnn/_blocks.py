# python/streamrnn/_blocks.py: Linear, Embedding, Dropout and the losses, over the engine's math.
# Part of streamrnn, MIT licence.
"""The blocks around a recurrent model, each with forward (train=True keeps what backward reads)
and backward, and the losses that start a backward pass."""

from __future__ import annotations

from typing import Any, Optional

from . import _checks, _core
from ._modules import Array, _Weights


class Linear(_Weights):
    """y = x W^T + b, as torch.nn.Linear: weight (out_features, in_features), bias (out_features,),
    both from uniform(-1/sqrt(in_features), 1/sqrt(in_features))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, seed: Optional[int] = None) -> None:
        self._core = _core.Linear(_checks.integer("in_features", in_features), _checks.integer("out_features", out_features),
                                  _checks.flag("bias", bias), _checks.seed(seed))

    in_features = property(lambda self: self._core.in_features)
    out_features = property(lambda self: self._core.out_features)
    bias = property(lambda self: self._core.bias)

    def __call__(self, x: Any, train: bool = False) -> Array:
        """x (..., in_features) -> (..., out_features); train=True keeps x for backward()."""
        return self._core.forward(x, _checks.flag("train", train))

    def backward(self, dy: Any) -> Array:
        """dL/dy of the last training call -> dL/dx; dL/dW and dL/db add into grads()."""
        return self._core.backward(dy)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}{'' if self.bias else ', bias=False'})"


class Embedding(_Weights):
    """Rows of a table looked up by integer id, as torch.nn.Embedding: weight (num_embeddings,
    embedding_dim) from N(0, 1); the padding_idx row is zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None, *,
                 seed: Optional[int] = None) -> None:
        num = _checks.integer("num_embeddings", num_embeddings)
        if padding_idx is not None:
            padding_idx = _checks.integer("padding_idx", padding_idx)
            if padding_idx < 0:  # PyTorch counts a negative padding_idx from the end
                padding_idx += num
            if padding_idx < 0:
                raise ValueError(f"padding_idx: expected an id in [-{num}, {num}), got {padding_idx - num}")
        self._core = _core.Embedding(num, _checks.integer("embedding_dim", embedding_dim),
                                     -1 if padding_idx is None else padding_idx, _checks.seed(seed))

    num_embeddings = property(lambda self: self._core.num_embeddings)
    embedding_dim = property(lambda self: self._core.embedding_dim)
    padding_idx = property(lambda self: None if self._core.padding_idx < 0 else self._core.padding_idx)

    def __call__(self, ids: Any, train: bool = False) -> Array:
        """Integer ids of any shape (...) -> (..., embedding_dim); IndexError for an id outside
        [0, num_embeddings). train=True keeps the ids for backward()."""
        return self._core.forward(ids, _checks.flag("train", train))

    def backward(self, dy: Any) -> None:
        """dL/dy of the last training call: adds into the gradient of the rows it looked up."""
        self._core.backward(dy)

    def __repr__(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad})"


class Dropout:
    """Inverted dropout, as torch.nn.Dropout: in training, each element is kept with probability
    1 - p and scaled by 1/(1 - p); otherwise the identity."""

    def __init__(self, p: float = 0.5, *, seed: Optional[int] = None) -> None:
        self._core = _core.Dropout(_checks.number("p", p), _checks.seed(seed))

    p = property(lambda self: self._core.p)

    def __call__(self, x: Any, train: bool = False) -> Array:
        """x (any shape) -> the same shape, dropped out when train=True (the mask kept for backward)."""
        return self._core.forward(x, _checks.flag("train", train))

    def backward(self, dy: Any) -> Array:
        """dL/dy of the last training call -> dL/dx, through the same mask."""
        return self._core.backward(dy)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p:g})"


def cross_entropy(logits: Any, targets: Any, *, ignore_index: int = -100,
                  mask: Any = None) -> "tuple[float, Array]":
    """Mean cross-entropy of logits (..., C) against integer class ids (...), as
    torch.nn.functional.cross_entropy over any leading shape (e.g. (T, B) of a sequence). Targets
    equal to ignore_index, and positions where mask (same shape as targets) is 0, count for
    nothing; the mean is over the rest (weighted by mask). Returns (loss, dL/dlogits)."""
    return _core.cross_entropy(logits, targets, _checks.integer("ignore_index", ignore_index), mask)


def mse_loss(prediction: Any, target: Any) -> "tuple[float, Array]":
    """Mean squared error, as torch.nn.functional.mse_loss: returns (loss, dL/dprediction)."""
    return _core.mse_loss(prediction, target)

