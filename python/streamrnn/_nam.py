# python/streamrnn/_nam.py: load_nam, a Neural Amp Modeler .nam file of its LSTM read as one Sequential.
# Part of streamrnn, MIT licence.
"""A .nam file (github.com/sdatkinson/neural-amp-modeler) is JSON with the keys "version",
"architecture", "config", "weights", "sample_rate" (a number, or null) and "metadata" (an object:
"date", "loudness", "gain", and the user's "name", "modeled_by", "gear_type", "training", ...), as
nam/models/exportable.py (Exportable._get_export_dict) and nam/models/_base.py write them.

For "architecture": "LSTM" the config is {"input_size", "hidden_size", "num_layers"}, and
"weights" is one flat list in the order nam/models/recurrent.py (LSTM._export_weights) writes it
and NeuralAmpModelerCore's NAM/lstm.cpp (LSTMCell's and LSTM's constructors) reads it:

    for each layer k, whose input has I_k features (input_size, then hidden_size):
        [W_ih | W_hh]    4H x (I_k + H), row-major, rows i, f, g, o (PyTorch's)
        b_ih + b_hh      4H
        h0               H      the layer's initial hidden state
        c0               H      the layer's initial cell state
    head weight          H      y = w . h + b, on the last layer's h
    head bias            1

This gives Sequential(LSTM(input_size, hidden_size, num_layers), Linear(hidden_size, 1)) with the
summed bias in bias_ih_l*, bias_hh_l* zero, and the LSTM's initial_state (h0, c0) from the file:
the state NAM's exporter found by running the LSTM from zeros over 48,000 samples of silence
(LSTM._get_initial_state), where the plugin starts (NeuralAmpModelerCore then also pre-warms it on
half a second of silence, which this does not). The model starts there, and a stream's reset()
returns there.

The model's metadata keeps the file's "metadata" entries (strings as they are, other values as
JSON text; null entries are left out), "sample_rate" (as JSON text; absent when the file has
null) and "nam_version" (the file's "version", kept but not checked: NeuralAmpModelerCore takes 0.5.x).

The plugin runs one sample at a time, so the model is time-major (batch_first=False): x (T, I) or
(T, B, I) gives y (T, 1) or (T, B, 1); mono audio x of shape (T,) goes in as x[:, None].
Other architectures (WaveNet, ConvNet, Linear, CatLSTM, ...) are refused with a ValueError."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from . import _checks
from ._blocks import Linear
from ._json_models import read_json, show
from ._modules import LSTM, PathLike
from ._sequential import Sequential

Array = np.ndarray

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_nam(path: PathLike) -> Any:
    """The Sequential (LSTM, then the Linear head) computing the Neural Amp Modeler LSTM model in
    the .nam file at `path`, starting from the file's initial state; see the module docstring.

    FileNotFoundError for a missing file; ValueError for another architecture than LSTM, or a file
    that is not a well-formed LSTM .nam file, saying what is wrong."""
    document = read_json(_checks.path("path", path), "a .nam file")
    if not isinstance(document, dict):
        raise ValueError(f"a .nam file holds a JSON object, got {show(document)}")
    architecture = document.get("architecture")
    if architecture != "LSTM":
        raise ValueError(f"architecture {show(architecture)}: only .nam files of architecture 'LSTM' are "
                         "supported")
    version = document.get("version")
    if not isinstance(version, str):
        raise ValueError(f"version: expected the file format's version as a string, got {show(version)}")
    input_size, hidden_size, num_layers = _config(document)
    weights = _weights(document)
    expected = _weight_count(input_size, hidden_size, num_layers)
    if weights.size != expected:
        raise ValueError(f"weights: expected {expected} numbers for an LSTM of input_size {input_size}, "
                         f"hidden_size {hidden_size} and num_layers {num_layers}, got {weights.size}")
    state, initial_state, head_state = _unpack(weights, input_size, hidden_size, num_layers)
    metadata = _metadata(document, version)
    lstm = LSTM(input_size, hidden_size, num_layers)
    lstm.load_state_dict(state)
    lstm.initial_state = initial_state
    head = Linear(hidden_size, 1)
    head.load_state_dict(head_state)
    return Sequential(lstm, head, metadata=metadata)


def _config(document: dict) -> "tuple[int, int, int]":
    """input_size, hidden_size, num_layers from "config", each a positive integer."""
    config = document.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"config: expected an object with input_size, hidden_size and num_layers, "
                         f"got {show(config)}")
    sizes = []
    for key in ("input_size", "hidden_size", "num_layers"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config: {key}: expected a positive integer, got {show(value)}")
        sizes.append(value)
    return sizes[0], sizes[1], sizes[2]


def _weights(document: dict) -> Array:
    """The file's "weights", a flat list of JSON numbers, as float64 (cast once the count is checked)."""
    weights = document.get("weights")
    if not isinstance(weights, list):
        raise ValueError(f"weights: expected a list of numbers, got {show(weights)}")
    for index, value in enumerate(weights):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"weights[{index}]: expected a number, got {show(value)}")
    try:
        flat = np.array(weights, dtype=np.float64)
    except OverflowError:  # an integer too large for a double
        flat = None
    if flat is None or (flat.size and not np.max(np.abs(flat)) <= _FLOAT32_MAX):
        raise ValueError("weights: a number beyond float32's range")
    return flat


def _weight_count(input_size: int, hidden_size: int, num_layers: int) -> int:
    """How many numbers the weights of this LSTM are; in closed form, since a loop over the layers
    would run for as many as the file claims."""
    H = hidden_size
    per_layer = 4 * H + 2 * H  # bias, h0, c0
    return (4 * H * (input_size + H) + per_layer) + (num_layers - 1) * (4 * H * 2 * H + per_layer) + H + 1


def _unpack(weights: Array, input_size: int, hidden_size: int, num_layers: int) -> "tuple[dict, tuple, dict]":
    """The LSTM's state_dict, its initial state (h0, c0), each (num_layers, H), and the head's
    state_dict, from the flat weights (in the order of the module docstring)."""
    H = hidden_size
    flat = weights.astype(np.float32)
    offset = 0

    def take(n: int) -> Array:
        nonlocal offset
        offset += n
        return flat[offset - n:offset]

    state, h0, c0 = {}, [], []
    for k in range(num_layers):
        I = input_size if k == 0 else H
        w = take(4 * H * (I + H)).reshape(4 * H, I + H)
        bias = take(4 * H)
        state.update({f"weight_ih_l{k}": np.ascontiguousarray(w[:, :I]),
                      f"weight_hh_l{k}": np.ascontiguousarray(w[:, I:]),
                      f"bias_ih_l{k}": bias.copy(), f"bias_hh_l{k}": np.zeros(4 * H, np.float32)})
        h0.append(take(H))
        c0.append(take(H))
    head = {"weight": take(H).reshape(1, H).copy(), "bias": take(1).copy()}
    return state, (np.stack(h0), np.stack(c0)), head


def _metadata(document: dict, version: str) -> "dict[str, str]":
    """The model's metadata: the file's entries as strings, its sample rate and format version."""
    entries = document.get("metadata")
    if entries is None:
        entries = {}
    if not isinstance(entries, dict):
        raise ValueError(f"metadata: expected an object, got {show(entries)}")
    metadata = {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in entries.items() if value is not None}
    sample_rate = document.get("sample_rate")
    if sample_rate is not None:
        # (a comparison, not math.isfinite, which overflows on a huge integer)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 < sample_rate < math.inf:
            raise ValueError(f"sample_rate: expected a positive number (Hz) or null, got {show(sample_rate)}")
        metadata["sample_rate"] = json.dumps(sample_rate)
    metadata["nam_version"] = version
    return metadata


