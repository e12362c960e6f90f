# python/streamrnn/_torch.py: from_torch, the one-call move of a PyTorch module to streamrnn.
# Part of streamrnn, MIT licence.
"""Conversion from torch.nn modules. torch is imported only when it is already in use."""

from __future__ import annotations

import sys
from typing import Any

from ._blocks import Embedding, Linear
from ._modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, _Weights


def from_torch(module: Any) -> _Weights:
    """The streamrnn twin of a torch.nn.LSTM / GRU / RNN / LSTMCell / GRUCell / RNNCell / Linear /
    Embedding, with the same architecture and a copy of its weights (float32). TypeError for
    anything else."""
    nn = sys.modules["torch"].nn if "torch" in sys.modules else None
    if nn is None or not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.LSTM, GRU, RNN, *Cell, Linear or Embedding, "
                        f"got {type(module).__name__}")
    m = module
    if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN)):
        common = dict(bias=m.bias, batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional)
        if isinstance(m, nn.LSTM):
            twin: _Weights = LSTM(m.input_size, m.hidden_size, m.num_layers, proj_size=m.proj_size, **common)
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
    elif isinstance(m, nn.Linear):
        twin = Linear(m.in_features, m.out_features, m.bias is not None)
    elif isinstance(m, nn.Embedding):
        twin = Embedding(m.num_embeddings, m.embedding_dim, m.padding_idx)
    else:
        raise TypeError(f"module: expected a torch.nn.LSTM, GRU, RNN, *Cell, Linear or Embedding, "
                        f"got {type(module).__name__}")
    twin.load_state_dict(module.state_dict())
    return twin
