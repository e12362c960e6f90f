# python/streamrnn/_json_models.py: what the loaders of JSON model files (RTNeural's, NAM's) share.
# Part of streamrnn, MIT licence.
"""Reading a JSON model file strictly, and quoting its values in messages."""

from __future__ import annotations

import json
from typing import Any


def read_json(path: str, kind: str) -> Any:
    """The JSON document at `path`; ValueError naming `kind` ("a .nam file") when it is not JSON,
    FileNotFoundError when it is missing. NaN and Infinity are refused: JSON has no such numbers,
    though Python's reader takes them."""
    with open(path, "rb") as file:  # FileNotFoundError passes through
        text = file.read()
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path}: not {kind}: not valid JSON ({err})") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def show(value: Any, limit: int = 60) -> str:
    """A JSON value as a message quotes it, cut short."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."
