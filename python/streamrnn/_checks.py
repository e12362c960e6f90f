# python/streamrnn/_checks.py: the argument checks every module of the package shares.
# Part of streamrnn, MIT licence.
"""Checks of Python arguments before they reach the engine: each raises TypeError or ValueError
naming the argument, as the engine's own checks do."""

from __future__ import annotations

import math
import operator
import os
from typing import Any, Optional

import numpy as np


def integer(name: str, value: Any) -> int:
    """An int (or anything with __index__), not a bool."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None


def integer_in(name: str, value: Any, low: int, high: int) -> int:
    """integer() within [low, high]."""
    value = integer(name, value)
    if not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value}")
    return value


def seed(value: Optional[int]) -> Optional[int]:
    return None if value is None else integer("seed", value) % 2**64


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def number(name: str, value: Any) -> float:
    """A real number as float (NaN and infinities pass: ranges are the caller's to check)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """number() that is finite and above 0."""
    value = number(name, value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name}: expected a finite number above 0, got {value}")
    return value


def path(name: str, value: Any) -> str:
    """A file system path (str, bytes or os.PathLike) as str; ValueError for an embedded NUL byte,
    which the file system would read as the end of the path, as open() refuses it."""
    try:
        text = os.fsdecode(os.fspath(value))
    except TypeError:
        raise TypeError(f"{name}: expected a str, bytes or os.PathLike path, got {type(value).__name__}") from None
    if "\0" in text:
        raise ValueError(f"{name}: embedded null byte")
    return text
