# python/streamrnn/__init__.py: the public names of streamrnn.
# Part of streamrnn, MIT licence.
"""streamrnn: low-latency, stateful RNN, LSTM and GRU inference on live streams, with PyTorch parity."""

from . import cuda, models, onnx, optim
from ._batcher import Batcher
from ._blocks import Dropout, Embedding, Linear, cross_entropy, mse_loss
from ._core import Pool, Stream, get_num_threads, set_num_threads
from ._keras import from_keras
from ._modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, load
from ._nam import load_nam
from ._rtneural import load_rtneural
from ._sequential import ELU, GELU, Identity, LeakyReLU, ReLU, Sequential, Sigmoid, Softsign, Tanh
from ._torch import from_torch
from .optim import clip_grad_norm, clip_grad_value

__version__ = "0.1.0"
__all__ = ["cuda", "models", "onnx", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Stream", "Pool", "Batcher", "load", "from_torch", "optim",
           "clip_grad_norm", "clip_grad_value", "Linear", "Embedding", "Dropout", "cross_entropy", "mse_loss", "set_num_threads", "get_num_threads",
           "Sequential", "from_keras", "load_rtneural", "load_nam", "Tanh", "Sigmoid", "ReLU", "LeakyReLU", "ELU", "Softsign", "GELU", "Identity"]
