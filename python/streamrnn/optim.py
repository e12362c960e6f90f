# python/streamrnn/optim.py: sr.optim.SGD, Adam and AdamW over the engine's update rules.
# Part of streamrnn, MIT licence.
"""Optimizers that update streamrnn modules from their accumulated gradients (m.grads()).

Each takes the modules to train (one, or a list) and PyTorch's hyper-parameters with PyTorch's
defaults; the updates follow torch.optim's step for step. A module without gradients yet (no
backward since it was made) is left alone, as PyTorch skips parameters whose grad is None.
"""

from __future__ import annotations

from typing import Any, Iterable, Union

from . import _core
from ._checks import number as _number
from ._modules import _Weights

Modules = Union[_Weights, Iterable[_Weights]]


def _cores(modules: Modules, name: str = "modules") -> "list[_core.Model]":
    items = [modules] if isinstance(modules, _Weights) or hasattr(modules, "parts") else list(modules)
    cores = []
    for item in items:
        # A composite model (streamrnn.models) stands for its parts.
        parts = list(item.parts().values()) if hasattr(item, "parts") else [item]
        for part in parts:
            if not isinstance(part, _Weights):
                raise TypeError(f"{name}: expected streamrnn modules, got {type(part).__name__}")
            cores.append(part._core)
    return cores


class _Optimizer:
    _core: Any
    _kind: str
    _options: "dict[str, Any]"

    def step(self) -> None:
        """Update every module's weights from its accumulated gradients."""
        self._core.step()

    def zero_grad(self) -> None:
        """Set every module's accumulated gradients to zero."""
        self._core.zero_grad()

    def state_dict(self) -> "dict[str, Any]":
        """The optimizer's hyper-parameters and per-module state (copies), for load_state_dict."""
        return {"type": self._kind, "options": dict(self._options), "state": self._core.state()}

    def load_state_dict(self, state_dict: "dict[str, Any]") -> None:
        """Restore the per-module state of state_dict() (from an optimizer of the same type over
        modules of the same sizes). A refused state (ValueError / TypeError) changes nothing."""
        if not isinstance(state_dict, dict) or state_dict.get("type") != self._kind:
            raise ValueError(f"state_dict: expected the state_dict() of a {self._kind} optimizer")
        state = state_dict.get("state")
        if not isinstance(state, list) or not all(isinstance(entry, dict) for entry in state):
            raise TypeError("state_dict['state']: expected a list of dicts, one per module")
        self._core.set_state(state)


class SGD(_Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's rules (momentum, dampening, nesterov,
    weight_decay, maximize)."""

    def __init__(self, modules: Modules, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        self._kind = "SGD"
        self._options = dict(lr=_number("lr", lr), momentum=_number("momentum", momentum),
                             dampening=_number("dampening", dampening),
                             weight_decay=_number("weight_decay", weight_decay), nesterov=bool(nesterov),
                             maximize=bool(maximize))
        self._core = _core.SGD(_cores(modules), **self._options)


class Adam(_Optimizer):
    """Adam, torch.optim.Adam's rules (L2 weight_decay added to the gradient, amsgrad, maximize)."""

    _decoupled = False

    def __init__(self, modules: Modules, lr: float = 1e-3, betas: "tuple[float, float]" = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        self._kind = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self._options = dict(lr=_number("lr", lr), betas=(_number("betas[0]", betas[0]), _number("betas[1]", betas[1])),
                             eps=_number("eps", eps), weight_decay=_number("weight_decay", weight_decay),
                             amsgrad=bool(amsgrad), maximize=bool(maximize))
        o = self._options
        self._core = _core.Adam(_cores(modules), o["lr"], o["betas"][0], o["betas"][1], o["eps"], o["weight_decay"],
                                o["amsgrad"], self._decoupled, o["maximize"])


class AdamW(Adam):
    """AdamW, torch.optim.AdamW's rules: weight decay decoupled from the gradient
    (p *= 1 - lr * weight_decay), default weight_decay 1e-2."""

    _decoupled = True

    def __init__(self, modules: Modules, lr: float = 1e-3, betas: "tuple[float, float]" = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(modules, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


def clip_grad_norm(modules: Modules, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients of `modules` together so that their norm is at most max_norm; returns
    the norm before clipping (torch.nn.utils.clip_grad_norm_). norm_type may be float('inf')."""
    return _core.clip_grad_norm(_cores(modules), _number("max_norm", max_norm), _number("norm_type", norm_type))


def clip_grad_value(modules: Modules, clip_value: float) -> None:
    """Clamp every gradient of `modules` to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_)."""
    _core.clip_grad_value(_cores(modules), _number("clip_value", clip_value))
