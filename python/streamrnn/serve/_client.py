# python/streamrnn/serve/_client.py: Client and AsyncClient, one stream of a streamrnn server each.
# Part of streamrnn, MIT licence.
"""Clients of ``python -m streamrnn serve``: Client (blocking, websockets.sync) and AsyncClient
(asyncio). Each holds one connection, that is one stream, and sends one message at a time,
waiting for its answer; a stream closed by the server for idling is reopened from the snapshot
the server sent, on the next call, which then goes on as if nothing happened."""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Union

import numpy as np
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect

from . import _protocol as p

Answer = Union[bytes, "dict[str, Any]"]


class _Idle:
    """The server closed the stream for idling; `blob` is its snapshot."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob


class _Session:
    """What Client and AsyncClient share: the open answer, and reading the server's messages."""

    def __init__(self, url: str, state: Any, snapshot: Optional[bytes], token: Optional[str],
                 timeout: float, options: "dict[str, Any]") -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self._first = p.open_message(state, snapshot, token)
        # Frames are float32 noise to deflate; the server's answers are as large as it allows.
        self._options = {"compression": None, "max_size": None, "open_timeout": timeout, **options}
        self.id = -1
        self.input_size = 0
        self.output_size = 0
        self.max_frames = 1
        self.closed = False

    def _opened(self, answer: Answer) -> None:
        answer = self._expect(answer, "open")
        self.id = int(answer["id"])
        self.input_size = int(answer["input_size"])
        self.output_size = int(answer["output_size"])
        self.max_frames = int(answer["max_frames"])

    @staticmethod
    def _read(data: Union[str, bytes]) -> Union[Answer, _Idle]:
        """One message of the server's: outputs (bytes), an answer, or the idle event; raises the
        exception of an error message."""
        if isinstance(data, bytes):
            return data
        message = p.parse(data)
        if "error" in message:
            raise p.exception_of(message)
        if message.get("event") == "idle":
            return _Idle(p.decode_blob(message.get("snapshot")))
        return message

    @staticmethod
    def _expect(answer: Answer, ok: str) -> "dict[str, Any]":
        if not isinstance(answer, dict) or answer.get("ok") != ok:
            raise RuntimeError(f"the server answered {answer!r:.200} to {ok!r}")
        return answer

    def _outputs(self, answer: Answer, steps: int) -> np.ndarray:
        if not isinstance(answer, bytes):
            raise RuntimeError(f"the server answered {answer!r:.200} to frames")
        return p.outputs_of(answer, self.output_size, steps)

    def _chunks(self, xs: Any) -> "list[tuple[bytes, int]]":
        """xs (T, I) as messages of at most max_frames steps each, with their step counts."""
        data = p.float_frames(xs, self.input_size, single=False)
        step_bytes = 4 * self.input_size
        size = self.max_frames * step_bytes
        return [(data[k:k + size], len(data[k:k + size]) // step_bytes) for k in range(0, len(data), size)]

    @staticmethod
    def _closed(closed: ConnectionClosed) -> Exception:
        """What a call raises when the server has closed the connection."""
        frame = closed.rcvd
        if frame is not None and frame.code in (p.CLOSE_FULL, p.CLOSE_TOKEN):
            return p.Refused(frame.code, frame.reason)
        what = "no close frame" if frame is None else f"close code {frame.code}: {frame.reason or '(no reason)'}"
        error = ConnectionError(f"the streamrnn server closed the stream ({what})")
        error.__cause__ = closed
        return error

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, id={self.id}{', closed' if self.closed else ''})"


class Client(_Session):
    """One stream of a streamrnn server, blocking: ``Client(url)`` opens it at the initial state,
    ``Client(url, state=st)`` at a state shaped as ``m.stream(1).state``, ``Client(url,
    snapshot=blob)`` from a snapshot; `token` if the server wants one. Every wait is bounded by
    `timeout` seconds (TimeoutError); other keywords go to ``websockets.sync.client.connect``.

    A refused frame raises ValueError with the server's message; a full server (or a wrong token)
    raises ConnectionRefusedError (``streamrnn.serve.Refused``) here, and on a later call if the
    server closed the stream for idling and is full by the time it is reopened."""

    def __init__(self, url: str, state: Any = None, snapshot: Optional[bytes] = None, token: Optional[str] = None,
                 *, timeout: float = 30.0, **options: Any) -> None:
        super().__init__(url, state, snapshot, token, timeout, options)
        self._ws: Optional[ClientConnection] = None
        self._connect(self._first)

    def _connect(self, first: str) -> None:
        # Entered as a context manager, as websockets >= 17.1 wants of a connection used directly
        # (close() below is its exit); before that, connect() returns the same connection.
        ws = connect(self.url, **self._options).__enter__()
        try:
            ws.send(first)
            answer = self._receive(ws)
            if isinstance(answer, _Idle):
                raise RuntimeError("the server closed the stream for idling before it opened")
            self._opened(answer)
        except BaseException:
            ws.close()
            raise
        self._ws = ws

    def _receive(self, ws: ClientConnection) -> Union[Answer, _Idle]:
        try:
            data = ws.recv(timeout=self.timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer from the streamrnn server in {self.timeout:g} s") from None
        except ConnectionClosed as closed:
            raise self._closed(closed) from None
        return self._read(data)

    def _exchange(self, message: Union[str, bytes], reopen: bool = True) -> Answer:
        """Sends one message and returns its answer; if the server closed the stream for idling, opens
        it again from the snapshot sent and sends the message there (`reopen`), or returns {}."""
        if self._ws is None:
            raise RuntimeError("the stream is closed")
        try:
            self._ws.send(message)
        except ConnectionClosed:
            pass  # what the server sent before closing (the idle event, say) is still to be read
        answer = self._receive(self._ws)
        if not isinstance(answer, _Idle):
            return answer
        self._ws.close()
        self._ws = None
        if not reopen:
            return {}
        self._connect(p.open_message(None, answer.blob, self.token))
        return self._exchange(message, reopen=False)

    def step(self, x_t: Any) -> np.ndarray:
        """One step: x_t (I,) -> (H_out,)."""
        return self._outputs(self._exchange(p.float_frames(x_t, self.input_size, single=True)), 1)[0]

    def process(self, xs: Any) -> np.ndarray:
        """Steps xs (T, I) in order -> (T, H_out), max_frames steps a message."""
        return np.concatenate([self._outputs(self._exchange(data), k) for data, k in self._chunks(xs)])

    def reset(self) -> None:
        """The stream back to the initial state."""
        self._expect(self._exchange(p.control("reset")), "reset")

    def snapshot(self) -> bytes:
        """The pool's snapshot bytes of this stream (what Client(url, snapshot=) and pool.restore read)."""
        return p.decode_blob(self._expect(self._exchange(p.control("snapshot")), "snapshot")["snapshot"])

    def state(self) -> p.State:
        """A copy of the stream's state, shaped as ``m.stream(1).state``."""
        return p.decode_state(self._expect(self._exchange(p.control("state")), "state")["state"])

    def status(self) -> "dict[str, Any]":
        """The server's numbers (those of its /metrics)."""
        return self._expect(self._exchange(p.control("status")), "status")["metrics"]

    def close(self) -> None:
        """Closes the stream (its slot is free when this returns) and the connection."""
        if self.closed:
            return
        self.closed = True
        if self._ws is None:
            return
        try:
            self._exchange(p.control("close"), reopen=False)
        except (ConnectionError, TimeoutError):
            pass  # the server has let go of the stream already, or will once the connection ends
        finally:
            if self._ws is not None:
                self._ws.close()
                self._ws = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Session):
    """Client for asyncio: ``async with AsyncClient(url) as c: y = await c.step(x_t)`` (or ``c =
    await AsyncClient(url).connect()``). The same calls, as coroutines; calls of one client from
    several tasks are sent one at a time, in the order they wait."""

    def __init__(self, url: str, state: Any = None, snapshot: Optional[bytes] = None, token: Optional[str] = None,
                 *, timeout: float = 30.0, **options: Any) -> None:
        super().__init__(url, state, snapshot, token, timeout, options)
        self._ws: Optional[AsyncConnection] = None
        self._lock = asyncio.Lock()

    async def connect(self) -> "AsyncClient":
        """Opens the stream."""
        if self._ws is not None or self.closed:
            raise RuntimeError("connect(): the stream was opened already")
        await self._connect(self._first)
        return self

    async def _connect(self, first: str) -> None:
        ws = await async_connect(self.url, **self._options)
        try:
            await ws.send(first)
            answer = await self._receive(ws)
            if isinstance(answer, _Idle):
                raise RuntimeError("the server closed the stream for idling before it opened")
            self._opened(answer)
        except BaseException:
            await ws.close()
            raise
        self._ws = ws

    async def _receive(self, ws: AsyncConnection) -> Union[Answer, _Idle]:
        try:
            data = await asyncio.wait_for(ws.recv(), self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer from the streamrnn server in {self.timeout:g} s") from None
        except ConnectionClosed as closed:
            raise self._closed(closed) from None
        return self._read(data)

    async def _exchange(self, message: Union[str, bytes], reopen: bool = True) -> Answer:
        """Client._exchange, one call at a time."""
        async with self._lock:
            return await self._exchange_locked(message, reopen)

    async def _exchange_locked(self, message: Union[str, bytes], reopen: bool) -> Answer:
        if self._ws is None:
            raise RuntimeError("the stream is closed" if self.closed else "the stream is not open: connect() first")
        try:
            await self._ws.send(message)
        except ConnectionClosed:
            pass
        answer = await self._receive(self._ws)
        if not isinstance(answer, _Idle):
            return answer
        await self._ws.close()
        self._ws = None
        if not reopen:
            return {}
        await self._connect(p.open_message(None, answer.blob, self.token))
        return await self._exchange_locked(message, reopen=False)

    async def step(self, x_t: Any) -> np.ndarray:
        return self._outputs(await self._exchange(p.float_frames(x_t, self.input_size, single=True)), 1)[0]

    async def process(self, xs: Any) -> np.ndarray:
        return np.concatenate([self._outputs(await self._exchange(data), k) for data, k in self._chunks(xs)])

    async def reset(self) -> None:
        self._expect(await self._exchange(p.control("reset")), "reset")

    async def snapshot(self) -> bytes:
        return p.decode_blob(self._expect(await self._exchange(p.control("snapshot")), "snapshot")["snapshot"])

    async def state(self) -> p.State:
        return p.decode_state(self._expect(await self._exchange(p.control("state")), "state")["state"])

    async def status(self) -> "dict[str, Any]":
        return self._expect(await self._exchange(p.control("status")), "status")["metrics"]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._ws is None:
            return
        try:
            await self._exchange(p.control("close"), reopen=False)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            if self._ws is not None:
                await self._ws.close()
                self._ws = None

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
