# python/streamrnn/cuda.py: the CUDA backend's Python face: whether it is there, and device names.
# Part of streamrnn, MIT licence.
"""streamrnn on NVIDIA GPUs.

A layer moves with ``m.to("cuda")`` (or ``m.cuda()``, ``"cuda:1"``), and back with ``m.to("cpu")``.
On the GPU, ``m(x, state, lengths)`` and ``m.stream(batch)`` take NumPy arrays (copied to the GPU
and back, results as NumPy arrays) or GPU arrays: anything with ``__cuda_array_interface__`` or
DLPack (CuPy arrays, PyTorch CUDA tensors), used in place, with results as :class:`DeviceArray`
(``torch.as_tensor(y, device="cuda")``, ``cupy.asarray(y)``, ``y.numpy()``).

The backend is a module of its own (``streamrnn._cuda``), built when CMake finds nvcc and cuBLAS,
and imported only when a model first moves to a GPU: without it, or without a GPU, everything
else works and :func:`is_available` is False."""

from __future__ import annotations

import ctypes
import os
import sys
from types import ModuleType
from typing import Any, Optional, Tuple

_backend: Optional[ModuleType] = None
_why_not: Optional[str] = None
_allow_tf32 = False


def _preload_cublas() -> None:
    """Loads libcublas from the nvidia-cublas wheel (PyTorch's CUDA builds bring one) when it is
    not on the loader's path, so that the backend module, linked against it, finds it."""
    for entry in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cublas/lib"):
            folder = os.path.join(entry, sub)
            for name in ("libcublas.so.13", "libcublas.so.12"):
                if os.path.isfile(os.path.join(folder, name)):
                    try:
                        ctypes.CDLL(os.path.join(folder, name), mode=ctypes.RTLD_GLOBAL)
                        return
                    except OSError:
                        continue


def _load() -> Optional[ModuleType]:
    global _backend, _why_not
    if _backend is not None or _why_not is not None:
        return _backend
    try:
        from . import _cuda
    except ImportError:
        _preload_cublas()
        try:
            from . import _cuda
        except ImportError as error:
            _why_not = (f"the CUDA backend could not be loaded ({error}); it is built when CMake finds nvcc and "
                        "cuBLAS (pip install nvidia-cublas), and needs an NVIDIA driver")
            return None
    _backend = _cuda
    return _backend


def device_count() -> int:
    """GPUs that the CUDA backend sees; 0 when it is not built, or there is no driver or GPU."""
    backend = _load()
    return backend.device_count() if backend is not None else 0


def is_available() -> bool:
    """Whether models can move to a GPU here."""
    return device_count() > 0


def set_allow_tf32(allow: bool) -> None:
    """Let the GPU's matrix products use TF32 tensor cores (inputs rounded to 10-bit mantissas:
    faster, about 1e-3 relative error). Off by default, so that GPU and CPU agree to float32
    rounding. Applies to every model's next call."""
    global _allow_tf32
    if not isinstance(allow, bool):
        raise TypeError(f"allow: expected a bool, got {type(allow).__name__}")
    _allow_tf32 = allow


def allow_tf32() -> bool:
    """Whether GPU products may use TF32 (see set_allow_tf32)."""
    return _allow_tf32


def parse_device(device: Any) -> Tuple[str, int]:
    """("cpu", 0) or ("cuda", index) for "cpu", "cuda", "cuda:N", an int N (a GPU), or a
    torch.device. TypeError for another type, ValueError for another name."""
    if isinstance(device, bool):
        raise TypeError("device: expected 'cpu', 'cuda' or 'cuda:N', got bool")
    if isinstance(device, int):
        if device < 0:
            raise ValueError(f"device: expected a GPU index >= 0, got {device}")
        return "cuda", device
    if not isinstance(device, str):
        if type(device).__name__ != "device":  # torch.device, without importing torch
            raise TypeError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__}")
        device = str(device)
    name = device.strip().lower()
    if name == "cpu":
        return "cpu", 0
    if name == "cuda":
        return "cuda", 0
    if name.startswith("cuda:") and name[5:].isdigit():
        return "cuda", int(name[5:])
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def backend(index: int) -> ModuleType:
    """The backend module, once GPU `index` is known to exist; RuntimeError saying why not."""
    module = _load()
    if module is None:
        raise RuntimeError(f"cuda:{index}: {_why_not}")
    count = module.device_count()
    if index >= count:
        raise RuntimeError(f"cuda:{index}: no such GPU ({count} CUDA device{'' if count == 1 else 's'} seen)")
    return module


def __getattr__(name: str) -> Any:
    # DeviceArray lives in the backend module, which is loaded only on demand.
    if name == "DeviceArray":
        module = _load()
        if module is None:
            raise AttributeError(f"streamrnn.cuda.DeviceArray: {_why_not}")
        return module.DeviceArray
    raise AttributeError(f"module 'streamrnn.cuda' has no attribute {name!r}")


__all__ = ["is_available", "device_count", "set_allow_tf32", "allow_tf32", "DeviceArray"]
