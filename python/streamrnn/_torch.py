# python/streamrnn/_torch.py: from_torch, the one-call move of a PyTorch module to streamrnn.
# Part of streamrnn, MIT licence.
"""Conversion from torch.nn modules. torch is imported only when it is already in use."""

from __future__ import annotations

import sys
from typing import Any

from ._modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, _Module


def from_torch(module: Any) -> _Module:
    """The streamrnn twin of a torch.nn.LSTM / GRU / RNN / LSTMCell / GRUCell / RNNCell, with the
    same architecture and a copy of its weights (float32). TypeError for anything else."""
    nn = sys.modules["torch"].nn if "torch" in sys.modules else None
    if nn is None or not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.LSTM, GRU, RNN or *Cell, got {type(module).__name__}")
    m = module
    if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN)):
        common = dict(bias=m.bias, batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional)
        if isinstance(m, nn.LSTM):
            twin: _Module = LSTM(m.input_size, m.hidden_size, m.num_layers, proj_size=m.proj_size, **common)
        elif isinstance(m, nn.GRU):
            twin = GRU(m.input_size, m.hidden_size, m.num_layers, **common)
        else:
            twin = RNN(m.input_size, m.hidden_size, m.num_layers, nonlinearity=m.nonlinearity, **common)
    elif isinstance(m, nn.LSTMCell):
        twin = LSTMCell(m.input_size, m.hidden_size, m.bias)
    elif isinstance(m, nn.GRUCell):
        twin = GRUCell(m.input_size, m.hidden_size, m.bias)
    elif isinstance(m, nn.RNNCell):
        twin = RNNCell(m.input_size, m.hidden_size, m.bias, m.nonlinearity)
    else:
        raise TypeError(f"module: expected a torch.nn.LSTM, GRU, RNN or *Cell, got {type(module).__name__}")
    twin.load_state_dict(module.state_dict())
    return twin
