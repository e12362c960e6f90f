# python/streamrnn/models.py: the three models of the classic RNN tutorial, trainable and streamable.
# Part of streamrnn, MIT licence.
"""LSTMClassifier, Seq2Seq and LanguageModel, composed from streamrnn's blocks.

Each model owns its parts (embeddings, recurrent stacks, linear heads) and an optimizer (Adam
with the given learning rate, gradients clipped to `clip_norm`); `train_step(batch)` runs one
forward, backward and update and returns the loss. `save(path)` writes one safetensors file
(every part's tensors under "<part>.<name>", the configuration in the metadata) that
`streamrnn.load` and `<Model>.load` read back.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import numpy as np

from . import _checks, _core, optim
from ._blocks import Dropout, Embedding, Linear, cross_entropy
from ._modules import GRU, LSTM, Array, PathLike, _Weights

FORMAT = {"format": "streamrnn", "format_version": "1"}


def _ids(name: str, value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer token ids, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions (batch first), got shape {array.shape}")
    return array.astype(np.int64)


class _Composite:
    """Named parts with weights, trained together and saved as one file."""

    _config: "dict[str, Any]"

    def _setup(self, lr: float, clip_norm: Optional[float]) -> None:
        self.clip_norm = clip_norm
        self.optimizer = optim.Adam(list(self.parts().values()), lr=lr)

    def parts(self) -> "dict[str, _Weights]":
        """The parts with weights, by name (what optimizers and state dicts walk)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, _Weights)}

    def state_dict(self) -> "dict[str, Array]":
        """Every part's tensors, named "<part>.<tensor>"."""
        return {f"{part}.{name}": value for part, module in self.parts().items()
                for name, value in module.state_dict().items()}

    def load_state_dict(self, state_dict: "dict[str, Any]") -> None:
        """Strict, as the parts' own: every key present, no other key. Checked in full first."""
        parts = self.parts()
        split: "dict[str, dict[str, Any]]" = {part: {} for part in parts}
        unexpected = []
        for key, value in state_dict.items():
            part, _, name = str(key).partition(".")
            (split[part].__setitem__(name, value) if part in split else unexpected.append(key))
        if unexpected:
            raise ValueError(f"state_dict: unexpected keys {unexpected}")
        backup = {part: module.state_dict() for part, module in parts.items()}
        for part, module in parts.items():
            try:
                module.load_state_dict(split[part])
            except (ValueError, TypeError) as error:
                for name, loaded in parts.items():  # a refused load changes nothing
                    loaded.load_state_dict(backup[name])
                raise type(error)(f"{part} (keys '{part}.*'): {error}") from None

    def zero_grad(self) -> None:
        for module in self.parts().values():
            module.zero_grad()

    def _update(self) -> None:
        if self.clip_norm is not None:
            optim.clip_grad_norm(list(self.parts().values()), self.clip_norm)
        self.optimizer.step()

    def save(self, path: PathLike) -> None:
        """One safetensors file: the tensors of state_dict(), the configuration as metadata."""
        metadata = dict(FORMAT, model=type(self).__name__, config=json.dumps(self._config))
        _core.save_tensors(_checks.path("path", path), self.state_dict(), metadata)

    @classmethod
    def load(cls, path: PathLike) -> "_Composite":
        model = load(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


# Each composite model's _shapes(config): the shapes its config gives the tensors that fix its sizes
# (None: a tensor that must not be there), checked against a file before the model is made, so that
# a small file cannot make it allocate what its sizes claim.


def _stack(prefix: str, gates: int, input_size: int, hidden_size: int, layers: int) -> "dict[str, Optional[tuple]]":
    """The size-fixing tensors of a recurrent stack: its first input weight, its last layer's
    recurrent weight, and no layer past it."""
    return {f"{prefix}.weight_ih_l0": (gates * hidden_size, input_size),
            f"{prefix}.weight_hh_l{layers - 1}": (gates * hidden_size, hidden_size),
            f"{prefix}.weight_hh_l{layers}": None}


def load(path: PathLike) -> _Composite:
    """Read a composite model file written by save(). ValueError for a file whose configuration
    is not JSON, does not fit the model, or claims sizes its tensors do not have."""
    tensors, metadata = _core.load_tensors(_checks.path("path", path))
    kind = metadata.get("model")
    if metadata.get("format") != "streamrnn" or kind not in _MODELS:
        raise ValueError(f"path: not a streamrnn composite model file (metadata model={kind!r})")
    try:
        config = json.loads(metadata.get("config", ""))
    except ValueError as error:
        raise ValueError(f"model file: the {kind}'s metadata 'config' is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"model file: the {kind}'s metadata 'config' is not a JSON object")
    cls = _MODELS[kind]
    try:
        shapes = cls._shapes(config)
    except (KeyError, TypeError) as error:
        raise ValueError(f"model file: the {kind}'s config does not describe one ({error!r})") from None
    for name, shape in shapes.items():
        got = tuple(tensors[name].shape) if name in tensors else None
        if got != shape:
            raise ValueError(f"model file: its config gives '{name}' the shape {shape}, its tensors {got}")
    try:
        model = cls(**config)
    except TypeError as error:
        raise ValueError(f"model file: the {kind}'s config does not fit it ({error})") from None
    model.load_state_dict(tensors)
    return model


class LSTMClassifier(_Composite):
    """Sequence classification: embedding, a (by default 2-layer bidirectional) LSTM, dropout, and a
    linear head on the last states of both directions, concatenated.

    forward(tokens (B, T), lengths) -> logits (B, num_classes); tokens are batch first, padded
    with padding_idx past each length."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, num_classes: int, num_layers: int = 2,
                 *, bidirectional: bool = True, dropout: float = 0.5, padding_idx: Optional[int] = 0,
                 lr: float = 1e-3, clip_norm: Optional[float] = 5.0, seed: Optional[int] = None) -> None:
        self._config = dict(vocab_size=vocab_size, embed_dim=embed_dim, hidden_size=hidden_size,
                            num_classes=num_classes, num_layers=num_layers, bidirectional=bidirectional,
                            dropout=dropout, padding_idx=padding_idx, lr=lr, clip_norm=clip_norm, seed=seed)
        rng = np.random.default_rng(seed)
        seeds = [int(s) for s in rng.integers(0, 2**63, 4)]
        self.embedding = Embedding(vocab_size, embed_dim, padding_idx, seed=seeds[0])
        self.lstm = LSTM(embed_dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                         dropout=dropout, seed=seeds[1])
        self.dropout = Dropout(dropout, seed=seeds[2])
        directions = 2 if bidirectional else 1
        self.head = Linear(directions * hidden_size, num_classes, seed=seeds[3])
        self._setup(lr, clip_norm)

    @staticmethod
    def _shapes(config: "dict[str, Any]") -> "dict[str, Optional[tuple]]":
        D = 2 if config.get("bidirectional", True) else 1
        return {"embedding.weight": (config["vocab_size"], config["embed_dim"]),
                **_stack("lstm", 4, config["embed_dim"], config["hidden_size"], config.get("num_layers", 2)),
                "head.weight": (config["num_classes"], D * config["hidden_size"])}

    def _features(self, h: Array) -> Array:
        """The last layer's final state of each direction, concatenated: (B, D*H)."""
        directions = 2 if self.lstm.bidirectional else 1
        return np.concatenate(list(h[-directions:]), axis=-1)

    def forward(self, tokens: Any, lengths: Any = None, train: bool = False) -> Array:
        """tokens (B, T) -> logits (B, num_classes); train=True keeps what backward() reads."""
        tokens = _ids("tokens", tokens, 2)
        y, (h, _) = self.lstm(self.embedding(tokens, train=train), lengths=lengths, train=train)
        self._y_shape = y.shape
        return self.head(self.dropout(self._features(h), train=train), train=train)

    def backward(self, dlogits: Array) -> None:
        """dL/dlogits of the last training forward: gradients into every part."""
        dfeatures = self.dropout.backward(self.head.backward(dlogits))
        directions = 2 if self.lstm.bidirectional else 1
        H = self.lstm.hidden_size
        # Only the last layer's final states feed the head; the outputs y feed nothing.
        dh = np.zeros((self.lstm.num_layers * directions, dfeatures.shape[0], H), np.float32)
        for d in range(directions):
            dh[d - directions] = dfeatures[:, d * H:(d + 1) * H]
        dx, _ = self.lstm.backward(np.zeros(self._y_shape, np.float32), (dh, np.zeros_like(dh)))
        self.embedding.backward(dx)

    def train_step(self, batch: Sequence[Any]) -> float:
        """batch: (tokens (B, T), labels (B,)) or (tokens, labels, lengths). Returns the loss."""
        tokens, labels, *rest = batch
        lengths = rest[0] if rest else None
        tokens = _ids("tokens", tokens, 2)
        self.zero_grad()
        loss, dlogits = cross_entropy(self.forward(tokens, lengths, train=True), _ids("labels", labels, 1))
        self.backward(dlogits)
        self._update()
        return loss

    def predict(self, tokens: Any, lengths: Any = None) -> Array:
        """Class ids (B,)."""
        return np.argmax(self.forward(tokens, lengths), axis=-1)

    def stream(self, batch: int = 1) -> "ClassifierStream":
        """Running classification of `batch` live token streams: after each token, the logits of
        the sequence so far. Unidirectional models only (a reverse direction needs the end)."""
        return ClassifierStream(self, batch)


class ClassifierStream:
    """LSTMClassifier.stream(): the LSTM as a stream, the head on its last layer's state."""

    def __init__(self, model: LSTMClassifier, batch: int) -> None:
        self._model = model
        self._stream = model.lstm.stream(batch)

    def step(self, tokens: Any) -> Array:
        """tokens (B,) -> logits (B, num_classes) for every token so far."""
        self._stream.step(self._model.embedding(_ids("tokens", tokens, 1)))
        h, _ = self._stream.state
        return self._model.head(h[-1])

    def reset(self, i: Optional[int] = None) -> None:
        """Start stream i (or all) afresh."""
        self._stream.reset(i)


class Seq2Seq(_Composite):
    """Sequence to sequence: a GRU encoder whose final state starts a GRU decoder, which reads the
    previous target token (teacher forcing, with probability teacher_forcing) or its own previous
    prediction, and a linear head over the target vocabulary. Sequences are batch first; target
    sequences end with eos and are padded with pad, which the loss ignores."""

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_dim: int, hidden_size: int, num_layers: int = 1, *,
                 sos: int = 1, eos: int = 2, pad: int = 0, teacher_forcing: float = 0.5, lr: float = 1e-3,
                 clip_norm: Optional[float] = 5.0, seed: Optional[int] = None) -> None:
        self._config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_dim=embed_dim, hidden_size=hidden_size,
                            num_layers=num_layers, sos=sos, eos=eos, pad=pad, teacher_forcing=teacher_forcing,
                            lr=lr, clip_norm=clip_norm, seed=seed)
        self.sos, self.eos, self.pad, self.teacher_forcing = sos, eos, pad, teacher_forcing
        self._rng = np.random.default_rng(seed)
        seeds = [int(s) for s in self._rng.integers(0, 2**63, 5)]
        self.src_embedding = Embedding(src_vocab, embed_dim, pad, seed=seeds[0])
        self.encoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True, seed=seeds[1])
        self.tgt_embedding = Embedding(tgt_vocab, embed_dim, pad, seed=seeds[2])
        self.decoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True, seed=seeds[3])
        self.head = Linear(hidden_size, tgt_vocab, seed=seeds[4])
        self._setup(lr, clip_norm)

    @staticmethod
    def _shapes(config: "dict[str, Any]") -> "dict[str, Optional[tuple]]":
        E, H, L = config["embed_dim"], config["hidden_size"], config.get("num_layers", 1)
        return {"src_embedding.weight": (config["src_vocab"], E), "tgt_embedding.weight": (config["tgt_vocab"], E),
                **_stack("encoder", 3, E, H, L), **_stack("decoder", 3, E, H, L),
                "head.weight": (config["tgt_vocab"], H)}

    def _encode(self, src: Array, lengths: Any, train: bool) -> Array:
        _, h = self.encoder(self.src_embedding(src, train=train), lengths=lengths, train=train)
        return h

    def _decoder_inputs(self, h: Array, tgt: Array) -> Array:
        """The token the decoder reads at each step: sos, then per step the previous target
        (teacher forcing) or the decoder's own previous prediction along this very path."""
        B, T = tgt.shape
        inputs = np.empty((B, T), np.int64)
        inputs[:, 0] = self.sos
        stream = self.decoder.stream(B)
        stream.state = h
        for t in range(1, T):
            y = stream.step(self.tgt_embedding(inputs[:, t - 1]))
            predicted = np.argmax(self.head(y), axis=-1)
            forced = self._rng.random(B) < self.teacher_forcing
            inputs[:, t] = np.where(forced, tgt[:, t - 1], predicted)
        return inputs

    def train_step(self, batch: Sequence[Any]) -> float:
        """batch: (src (B, S), tgt (B, T)) or (src, tgt, src_lengths). Returns the mean
        cross-entropy per target token (pad ignored)."""
        src, tgt, *rest = batch
        src, tgt = _ids("src", src, 2), _ids("tgt", tgt, 2)
        lengths = rest[0] if rest else None
        self.zero_grad()
        h = self._encode(src, lengths, train=True)
        inputs = self._decoder_inputs(h, tgt)
        y, _ = self.decoder(self.tgt_embedding(inputs, train=True), h, train=True)
        loss, dlogits = cross_entropy(self.head(y, train=True), tgt, ignore_index=self.pad)
        dx, dh = self.decoder.backward(self.head.backward(dlogits))
        self.tgt_embedding.backward(dx)
        # The decoder's initial state is the encoder's final state: its gradient flows back.
        dx_src, _ = self.encoder.backward(np.zeros(src.shape + (self.encoder.hidden_size,), np.float32), dh)
        self.src_embedding.backward(dx_src)
        self._update()
        return loss

    def translate(self, src: Any, max_len: int = 50, lengths: Any = None) -> "list[list[int]]":
        """Greedy decoding, token by token on a stream of the decoder: per sequence, the tokens up to
        (not including) eos, at most max_len."""
        src = _ids("src", src, 2)
        B = src.shape[0]
        stream = self.decoder.stream(B)
        stream.state = self._encode(src, lengths, train=False)
        token = np.full(B, self.sos, np.int64)
        out: "list[list[int]]" = [[] for _ in range(B)]
        done = np.zeros(B, bool)
        for _ in range(max_len):
            token = np.argmax(self.head(stream.step(self.tgt_embedding(token))), axis=-1)
            for b in np.flatnonzero(~done):
                if token[b] == self.eos:
                    done[b] = True
                else:
                    out[b].append(int(token[b]))
            if done.all():
                break
        return out


class LanguageModel(_Composite):
    """Next-token prediction: embedding, LSTM, linear head over the vocabulary. generate() samples
    token by token from a stream of the LSTM, its state carried."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, num_layers: int = 1, *,
                 dropout: float = 0.0, lr: float = 1e-3, clip_norm: Optional[float] = 5.0,
                 seed: Optional[int] = None) -> None:
        self._config = dict(vocab_size=vocab_size, embed_dim=embed_dim, hidden_size=hidden_size,
                            num_layers=num_layers, dropout=dropout, lr=lr, clip_norm=clip_norm, seed=seed)
        self._rng = np.random.default_rng(seed)
        seeds = [int(s) for s in self._rng.integers(0, 2**63, 3)]
        self.embedding = Embedding(vocab_size, embed_dim, seed=seeds[0])
        self.lstm = LSTM(embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout, seed=seeds[1])
        self.head = Linear(hidden_size, vocab_size, seed=seeds[2])
        self._setup(lr, clip_norm)

    @staticmethod
    def _shapes(config: "dict[str, Any]") -> "dict[str, Optional[tuple]]":
        V, E, H = config["vocab_size"], config["embed_dim"], config["hidden_size"]
        return {"embedding.weight": (V, E), **_stack("lstm", 4, E, H, config.get("num_layers", 1)),
                "head.weight": (V, H)}

    def forward(self, tokens: Any, state: Any = None, train: bool = False) -> "tuple[Array, Any]":
        """tokens (B, T) -> logits (B, T, vocab_size), and the LSTM's final state."""
        y, state = self.lstm(self.embedding(_ids("tokens", tokens, 2), train=train), state, train=train)
        return self.head(y, train=train), state

    def train_step(self, batch: Any) -> float:
        """batch: tokens (B, T + 1); the model reads tokens[:, :-1] and predicts tokens[:, 1:].
        Returns the mean cross-entropy per token (nats)."""
        tokens = _ids("batch", batch, 2)
        self.zero_grad()
        logits, _ = self.forward(tokens[:, :-1], train=True)
        loss, dlogits = cross_entropy(logits, tokens[:, 1:])
        dx, _ = self.lstm.backward(self.head.backward(dlogits))
        self.embedding.backward(dx)
        self._update()
        return loss

    def generate(self, start: Sequence[int], max_len: int, temperature: float = 1.0,
                 eos: Optional[int] = None) -> "list[int]":
        """Continue `start` (token ids, at least one) by sampling up to max_len tokens from
        softmax(logits / temperature) (temperature 0: the most likely token), stopping after eos.
        The LSTM runs as a stream: the prompt is processed once, then one step per token."""
        start = [int(t) for t in start]
        if not start:
            raise ValueError("start: expected at least one token")
        temperature = _checks.number("temperature", temperature)
        if not (temperature >= 0.0 and np.isfinite(temperature)):
            raise ValueError(f"temperature: expected a finite number >= 0 (0: the most likely token), got {temperature}")
        stream = self.lstm.stream(1)
        x = self.embedding(np.asarray(start, np.int64))
        y = stream.process(x)[-1]
        out: "list[int]" = []
        for _ in range(max_len):
            logits = self.head(y).astype(np.float64)
            if temperature <= 0:
                token = int(np.argmax(logits))
            else:
                p = np.exp((logits - logits.max()) / temperature)
                token = int(self._rng.choice(len(p), p=p / p.sum()))
            out.append(token)
            if token == eos:
                break
            y = stream.step(self.embedding(np.asarray([token], np.int64))[0])
        return out


_MODELS = {cls.__name__: cls for cls in (LSTMClassifier, Seq2Seq, LanguageModel)}
