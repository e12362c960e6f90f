# python/streamrnn/serve/_protocol.py: the messages between a streamrnn server and its clients.
# Part of streamrnn, MIT licence.
"""The serving protocol: one WebSocket connection is one stream of the server's pool.

Binary messages are frames, text messages are control messages (JSON objects).

Frames
    Client -> server: k >= 1 steps of float32 little-endian values, k * I of them (I: the model's
    input size), step after step. Server -> client: the k outputs, k * H_out float32 little-endian
    values, in the same order. Every message gets exactly one reply, in the order sent: frames their
    outputs, a control message its ``{"ok": ...}``, and anything refused an error (below).

Control messages (client -> server, each answered in order)
    ``{"op": "open", "state": STATE, "snapshot": B64, "token": "..."}``: the first message of a
    connection; state and snapshot are optional (at most one; neither: the initial state). Answer:
    ``{"ok": "open", "id": n, "input_size": I, "output_size": H_out, "max_frames": k,
    "snapshot_size": bytes, "idle_timeout": seconds or null}``.
    ``{"op": "reset"}`` -> ``{"ok": "reset"}``: back to the initial state.
    ``{"op": "snapshot"}`` -> ``{"ok": "snapshot", "snapshot": B64}``: the pool's snapshot bytes.
    ``{"op": "state"}`` -> ``{"ok": "state", "state": STATE}``.
    ``{"op": "status"}`` -> ``{"ok": "status", "metrics": {...}}``: the numbers of ``/metrics``.
    ``{"op": "close"}`` -> ``{"ok": "close"}``: the slot is free once this answer is sent; the
    server then closes the connection (1000). A connection that drops frees its slot too.

    STATE is ``{"h": nested list}`` (h shaped as ``m.stream(1).state``, (L, 1, H_out)), with
    ``"c"`` beside it for an LSTM. B64 is standard base64 of the snapshot bytes.

Errors
    ``{"error": "message", "kind": "ValueError"}`` (or "TypeError", "KeyError", "RuntimeError", as
    the pool raised them: a state of the wrong structure is a TypeError): the message it
    answers was refused and changed nothing: frames of the wrong size (not a whole number of
    I-value float32 steps), non-finite values, more than max_frames steps in one message, text that
    is not a known control message, a bad state or snapshot at open. The connection stays open.

Close codes (server -> client)
    1013 (try again later): the server is full, every stream slot is taken, at open.
    1008 (policy violation): the open message's token is not the server's, or no open message came
    within the server's open_timeout (10 s). The token is a shared secret compared as is, sent in
    the clear over ws:// (unless a TLS proxy is in front): it keeps a server from being used by
    mistake; it is not authentication.
    1009 (message too big): a message beyond the server's hard size limit (Server.max_message_bytes:
    4 times the largest message it takes, plus 64 KiB); the stream is closed, as if dropped.
    4000 (idle): no message came for idle_timeout seconds. Just before closing, the server sends
    ``{"event": "idle", "snapshot": B64}`` and frees the slot; the client reopens with that
    snapshot (``Client`` does so by itself on its next call) and the stream goes on unchanged. A
    message the client sent after the server decided so is not answered and not stepped.
    1001 (going away): the server stops.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Optional, Union

import numpy as np

CLOSE_FULL = 1013
CLOSE_TOKEN = 1008
CLOSE_TOO_BIG = 1009
CLOSE_IDLE = 4000

FLOAT = np.dtype("<f4")

State = Union[np.ndarray, "tuple[np.ndarray, np.ndarray]"]

# The error kinds a server sends, and what a client raises for them; anything else: RuntimeError.
ERRORS = {"ValueError": ValueError, "KeyError": KeyError, "TypeError": TypeError, "RuntimeError": RuntimeError}


class Refused(ConnectionRefusedError):
    """The server would not open a stream: full (close code 1013) or a wrong token (1008)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the streamrnn server refused the stream (close code {code}): {reason}")
        self.code = code
        self.reason = reason


def control(op: str, **fields: Any) -> str:
    """A control message as sent: {"op": op, ...}, fields that are None left out."""
    return json.dumps({"op": op, **{k: v for k, v in fields.items() if v is not None}})


def reply(ok: str, **fields: Any) -> str:
    return json.dumps({"ok": ok, **fields})


def error(exc: BaseException) -> str:
    """An error message for a refused message; KeyError's str() quotes, so its argument is used."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    kind = type(exc).__name__ if type(exc).__name__ in ERRORS else "RuntimeError"
    return json.dumps({"error": str(text), "kind": kind})


def exception_of(message: "dict[str, Any]") -> Exception:
    """The exception a client raises for an error message."""
    return ERRORS.get(message.get("kind", ""), RuntimeError)(str(message.get("error", "(no message)")))


def parse(text: str) -> "dict[str, Any]":
    """A text message as a JSON object; ValueError for anything else."""
    try:
        message = json.loads(text)
    except ValueError:
        raise ValueError("a text message must be a JSON object (a control message)") from None
    if not isinstance(message, dict):
        raise ValueError(f"a text message must be a JSON object, got {type(message).__name__}")
    return message


def encode_blob(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def decode_blob(text: Any, what: str = "snapshot") -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{what}: not base64 text") from None


def encode_state(state: Any) -> "dict[str, Any]":
    """A one-stream state (h, or an LSTM's (h, c)) as STATE."""
    if isinstance(state, tuple):
        h, c = state
        return {"h": np.asarray(h, FLOAT).tolist(), "c": np.asarray(c, FLOAT).tolist()}
    return {"h": np.asarray(state, FLOAT).tolist()}


def decode_state(message: Any) -> State:
    """STATE as arrays for pool.open (which checks the shapes); ValueError if it is no STATE."""
    if not isinstance(message, dict) or "h" not in message or set(message) - {"h", "c"}:
        raise ValueError('state: expected {"h": [...]} or, for an LSTM, {"h": [...], "c": [...]}')
    try:
        h = np.asarray(message["h"], FLOAT)
        return (h, np.asarray(message["c"], FLOAT)) if "c" in message else h
    except (TypeError, ValueError):
        raise ValueError("state: h and c must be nested lists of numbers (a rectangular array)") from None


def frames_of(data: bytes, input_size: int, max_frames: int) -> np.ndarray:
    """A binary message as (k, I) float32 steps; ValueError (changing nothing) when it is not that."""
    step_bytes = input_size * FLOAT.itemsize
    if not data or len(data) % step_bytes:
        raise ValueError(f"frames: expected float32 steps of {input_size} values ({step_bytes} bytes each), "
                         f"got {len(data)} bytes")
    k = len(data) // step_bytes
    if k > max_frames:
        raise ValueError(f"frames: {k} steps in one message; this server takes at most {max_frames}")
    x = np.frombuffer(data, FLOAT).reshape(k, input_size)
    if not np.isfinite(x).all():
        raise ValueError("frames: non-finite values (NaN or infinity); a stream only takes finite ones")
    return x


def outputs_of(data: bytes, output_size: int, steps: int) -> np.ndarray:
    """The server's answer to `steps` steps, (steps, H_out); ValueError if it is not that size."""
    y = np.frombuffer(data, FLOAT)
    if y.size != steps * output_size:
        raise ValueError(f"the server answered {y.size} values for {steps} steps of {output_size}")
    return y.reshape(steps, output_size).astype(np.float32)  # a writable, native-order copy


def float_frames(x: Any, input_size: int, single: bool) -> bytes:
    """x (I,) for one step (`single`) or (T, I) as a binary message; ValueError for another shape."""
    a = np.asarray(x, dtype=np.float32)
    expected = "(I,)" if single else "(T, I)"
    if (single and a.shape != (input_size,)) or (not single and (a.ndim != 2 or a.shape[1] != input_size)):
        raise ValueError(f"x: expected {expected} with I = {input_size}, got shape {a.shape}")
    if not single and a.shape[0] == 0:
        raise ValueError("xs: expected at least one step")
    return np.ascontiguousarray(a, FLOAT).tobytes()


def open_message(state: Optional[Any], snapshot: Optional[bytes], token: Optional[str]) -> str:
    if state is not None and snapshot is not None:
        raise ValueError("open: give a state or a snapshot, not both")
    return control("open", state=None if state is None else encode_state(state),
                   snapshot=None if snapshot is None else encode_blob(bytes(snapshot)), token=token)


def idle_event(blob: bytes) -> str:
    return json.dumps({"event": "idle", "snapshot": encode_blob(blob)})
