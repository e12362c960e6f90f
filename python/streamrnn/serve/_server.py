# python/streamrnn/serve/_server.py: Server, a WebSocket server of live streams: one connection is
# one stream of a pool, its frames stepped in batches by a Batcher. Part of streamrnn, MIT licence.
"""The server: asyncio and websockets on one pool and one Batcher (the protocol is _protocol's).

Each connection is read by one task and answered by another, so that a client may send frames
without waiting for their outputs: the reader submits a message's steps to the Batcher at once
and queues their futures; the writer sends the replies in the order of that queue. A control
message (reset, snapshot, ...) first waits until the replies before it are sent, so that it acts
after the frames sent before it. Pool calls run on the event loop: they are short, and waiting
there for a batched step (which a pool call may) keeps every connection's order simple.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hmac
import http
import logging
import signal
import threading
import time
from typing import Any, Callable, Optional, Union

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import _checks
from .._batcher import Batcher
from . import _protocol as p

logger = logging.getLogger("streamrnn.serve")

Reply = Union[str, "tuple[list[concurrent.futures.Future[np.ndarray]], float]"]


class _Metrics:
    """Counters and recent timings; touched on the server's event loop only."""

    def __init__(self, window: float = 10.0, latencies: int = 4096) -> None:
        self.window = window
        self.started = time.monotonic()
        self.frames = 0
        self.messages = 0
        self.errors = 0
        self.refused_full = 0
        self.refused_token = 0
        self.idle_closed = 0
        self.dropped = 0
        self.too_big = 0
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latencies: "collections.deque[float]" = collections.deque(maxlen=latencies)
        self._seconds: "collections.deque[list[int]]" = collections.deque()  # [whole second, frames]

    def stepped(self, frames: int, latency: float) -> None:
        self.frames += frames
        self.messages += 1
        self.latency_sum += latency
        self.latency_count += 1
        self.latencies.append(latency)
        second = int(time.monotonic())
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += frames
        else:
            self._seconds.append([second, frames])

    def frames_per_second(self) -> float:
        now = time.monotonic()
        while self._seconds and self._seconds[0][0] < now - self.window:
            self._seconds.popleft()
        span = min(self.window, max(now - self.started, 1e-3))
        return sum(n for _, n in self._seconds) / span

    def quantiles(self) -> "dict[str, float]":
        if not self.latencies:
            return {"0.5": 0.0, "0.9": 0.0, "0.99": 0.0}
        q = np.percentile(np.fromiter(self.latencies, float), [50, 90, 99])
        return {"0.5": float(q[0]), "0.9": float(q[1]), "0.99": float(q[2])}


# (name, Prometheus type, help) of every number /metrics and the status message give.
_METRICS = [
    ("open_streams", "gauge", "Streams open in the pool."),
    ("capacity", "gauge", "Stream slots (--max-streams)."),
    ("connections", "gauge", "WebSocket connections, opened or not yet."),
    ("frames_total", "counter", "Steps stepped for clients."),
    ("messages_total", "counter", "Frame messages answered."),
    ("frames_per_second", "gauge", "Steps per second over the last 10 seconds."),
    ("batches_total", "counter", "Batched steps of the pool."),
    ("batch_size_mean", "gauge", "Mean streams per batched step, since the start."),
    ("errors_total", "counter", "Messages refused with an error message."),
    ("refused_full_total", "counter", "Opens refused: the server was full (close code 1013)."),
    ("refused_token_total", "counter", "Opens refused: a wrong token (close code 1008)."),
    ("idle_closed_total", "counter", "Streams closed after idle_timeout, their snapshot sent (4000)."),
    ("dropped_total", "counter", "Streams whose connection ended without a close message."),
    ("too_big_total", "counter", "Connections closed for a message past the size limit (1009)."),
]


def prometheus_text(numbers: "dict[str, Any]") -> str:
    """The numbers of Server.metrics() in Prometheus' text format."""
    lines = []
    for name, kind, text in _METRICS:
        lines += [f"# HELP streamrnn_serve_{name} {text}", f"# TYPE streamrnn_serve_{name} {kind}",
                  f"streamrnn_serve_{name} {numbers[name]:.9g}"]
    lines += ["# HELP streamrnn_serve_latency_seconds From a frame message's arrival to its outputs, "
              "over the last 4096 messages.", "# TYPE streamrnn_serve_latency_seconds summary"]
    for q, value in numbers["latency_seconds"].items():
        lines.append(f'streamrnn_serve_latency_seconds{{quantile="{q}"}} {value:.9g}')
    lines += [f"streamrnn_serve_latency_seconds_sum {numbers['latency_seconds_sum']:.9g}",
              f"streamrnn_serve_latency_seconds_count {numbers['latency_seconds_count']}"]
    return "\n".join(lines) + "\n"


class Server:
    """A WebSocket server of live streams of `model` (LSTM, GRU or RNN, unidirectional): a pool of
    `max_streams` slots, one connection per stream, frames stepped in batches by a Batcher
    (`max_batch`, `max_delay` seconds). The protocol is in ``streamrnn.serve._protocol``.

    `idle_timeout` seconds (None: never) without a message close a stream, its snapshot sent to
    the client first. `token`, if given, must be in every open message: a shared secret against
    mistakes, not authentication. `max_frames`: steps one message may hold.

    ``await server.run()`` serves until ``stop()``; ``start()`` runs that on a thread of its own
    (and ``with server:`` too) and returns once the port is bound: ``server.url``.
    """

    def __init__(self, model: Any, *, host: str = "127.0.0.1", port: int = 8765, max_streams: int = 64,
                 max_batch: Optional[int] = None, max_delay: float = 0.002,
                 idle_timeout: Optional[float] = 300.0, token: Optional[str] = None, max_frames: int = 4096,
                 open_timeout: float = 10.0) -> None:
        if not callable(getattr(model, "pool", None)):
            raise TypeError(f"model: expected an LSTM, GRU or RNN (a model with pools), got {type(model).__name__}")
        self.pool = model.pool(_checks.integer("max_streams", max_streams))
        self.max_batch = max_batch
        self.max_delay = max_delay
        Batcher(self.pool, max_batch, max_delay).close()  # its arguments are checked here, not at run()
        self.host = host
        self.port = _checks.integer_in("port", port, 0, 65535)
        self.idle_timeout = None if idle_timeout is None else _positive("idle_timeout", idle_timeout)
        self.open_timeout = _positive("open_timeout", open_timeout)
        self.token = token
        self.max_frames = _checks.integer_in("max_frames", max_frames, 1, 2**24)
        state = model.stream(1).state
        h = state[0] if isinstance(state, tuple) else state
        self.input_size = int(model.input_size)
        self.output_size = int(h.shape[-1])
        state_values = sum(np.asarray(s).size for s in (state if isinstance(state, tuple) else (state,)))
        # Messages up to a few times the largest one taken (max_frames steps, or an open message with a
        # state) are read and refused with an error message; beyond, websockets closes the
        # connection (1009) without reading them.
        largest = max(self.max_frames * self.input_size * 4, 32 * state_values + 2 * self.pool.snapshot_size)
        self.max_message_bytes = 4 * largest + 65536
        self.counters = _Metrics()
        self.connections = 0
        self._batcher: Optional[Batcher] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._failed: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def batcher(self) -> Batcher:
        if self._batcher is None:
            raise RuntimeError("the server is not running")
        return self._batcher

    def metrics(self) -> "dict[str, Any]":
        """The numbers of /metrics and the status message; for the server's event loop (elsewhere,
        GET /metrics)."""
        m = self.counters
        stats = self._batcher.stats() if self._batcher is not None else {"batches": 0, "frames": 0}
        return {
            "open_streams": len(self.pool), "capacity": self.pool.capacity, "connections": self.connections,
            "frames_total": m.frames, "messages_total": m.messages, "frames_per_second": m.frames_per_second(),
            "batches_total": stats["batches"],
            "batch_size_mean": stats["frames"] / stats["batches"] if stats["batches"] else 0.0,
            "errors_total": m.errors, "refused_full_total": m.refused_full, "refused_token_total": m.refused_token,
            "idle_closed_total": m.idle_closed, "dropped_total": m.dropped, "too_big_total": m.too_big,
            "latency_seconds": m.quantiles(), "latency_seconds_sum": m.latency_sum,
            "latency_seconds_count": m.latency_count,
        }

    async def run(self, on_ready: Optional[Callable[["Server"], None]] = None) -> None:
        """Serves until stop(); on_ready(self) once the port is bound (self.port is the real one)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        with Batcher(self.pool, self.max_batch, self.max_delay) as self._batcher:
            async with ws_serve(self._connection, self.host, self.port, process_request=self._http,
                                max_size=self.max_message_bytes, compression=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                if on_ready is not None:
                    on_ready(self)
                await self._stopping.wait()
        self._batcher = None

    def start(self, timeout: float = 10.0) -> "Server":
        """run() on a thread of its own; returns once it serves (RuntimeError if it did not start)."""
        if self._thread is not None:
            raise RuntimeError("the server was started already")
        self._thread = threading.Thread(target=self._run_thread, name="streamrnn-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failed is not None:
            raise RuntimeError(f"the streamrnn server did not start on {self.host}:{self.port}") from self._failed
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Closes every connection (1001) and stops serving; from any thread."""
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.run(on_ready=lambda _: self._ready.set()))
        except BaseException as exc:  # noqa: BLE001 (start() reports it)
            self._failed = exc
            logger.exception("the streamrnn server stopped on an error")
        finally:
            self._ready.set()

    def _http(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        """/metrics and /health over plain HTTP; any other path goes on to the WebSocket handshake."""
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            response = connection.respond(http.HTTPStatus.OK, prometheus_text(self.metrics()))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if path == "/health":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        return None

    async def _connection(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            await _Stream(self, ws).run()
        finally:
            self.connections -= 1


class _Stream:
    """One connection: opens its stream, then reads (reader) and answers in order (writer)."""

    def __init__(self, server: Server, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.pool = server.pool
        self.id: Optional[int] = None
        # Bounded, so that a client sending faster than it is answered is not read meanwhile.
        self.replies: "asyncio.Queue[Reply]" = asyncio.Queue(maxsize=64)
        self.unanswered = 0  # replies queued and not yet sent

    async def run(self) -> None:
        writer: Optional[asyncio.Task[None]] = None
        try:
            if not await self._open():
                return
            writer = asyncio.create_task(self._write())
            await self._read()
        except ConnectionClosed as closed:
            if _sent_code(closed) == p.CLOSE_TOO_BIG:
                self.server.counters.too_big += 1
            if self.id is not None:
                self.server.counters.dropped += 1
        finally:
            if writer is not None:
                writer.cancel()
            self._free()  # a client that vanished, too: its slot is free for the next one

    def _free(self) -> None:
        if self.id is not None:
            self.pool.close(self.id)
            self.id = None

    async def _recv(self, timeout: Optional[float]) -> Union[str, bytes]:
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def _open(self) -> bool:
        """Waits for the open message; True once the stream is open and the client told."""
        server = self.server
        while True:
            try:
                message = await self._recv(server.open_timeout)
            except asyncio.TimeoutError:
                await self.ws.close(p.CLOSE_TOKEN, "no open message in time")
                return False
            try:
                if isinstance(message, bytes):
                    raise ValueError('frames before the stream is open: send {"op": "open"} first')
                request = p.parse(message)
                if request.get("op") != "open":
                    raise ValueError(f'expected {{"op": "open"}} first, got op {request.get("op")!r}')
                if not self._token_ok(request.get("token")):
                    server.counters.refused_token += 1
                    await self.ws.close(p.CLOSE_TOKEN, "wrong or missing token")
                    return False
                if len(self.pool) >= self.pool.capacity:
                    server.counters.refused_full += 1
                    await self.ws.close(p.CLOSE_FULL, f"the server is full: all {self.pool.capacity} streams are "
                                                      "taken; try again later")
                    return False
                self.id = self._open_stream(request)
            except (ValueError, TypeError) as exc:
                server.counters.errors += 1
                await self.ws.send(p.error(exc))
                continue
            await self.ws.send(p.reply("open", id=self.id, input_size=server.input_size,
                                       output_size=server.output_size, max_frames=server.max_frames,
                                       snapshot_size=self.pool.snapshot_size, idle_timeout=server.idle_timeout))
            return True

    def _token_ok(self, token: Any) -> bool:
        if self.server.token is None:
            return True
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.server.token.encode())

    def _open_stream(self, request: "dict[str, Any]") -> int:
        unknown = set(request) - {"op", "state", "snapshot", "token"}
        if unknown:
            raise ValueError(f"open: unknown fields {sorted(unknown)}")
        if request.get("state") is not None and request.get("snapshot") is not None:
            raise ValueError("open: give a state or a snapshot, not both")
        if request.get("snapshot") is not None:
            return self.pool.restore(p.decode_blob(request["snapshot"]))
        if request.get("state") is not None:
            return self.pool.open(p.decode_state(request["state"]))
        return self.pool.open()

    async def _read(self) -> None:
        """Reads until the client closes the stream, the connection ends or the stream idles."""
        while True:
            try:
                message = await self._recv(self.server.idle_timeout)
            except asyncio.TimeoutError:
                if self.unanswered:
                    await self.replies.join()  # idle counts from the last answer
                    continue
                await self._idle()
                return
            if isinstance(message, bytes):
                await self._put(self._frames(message))
            elif await self._control(message):
                return

    async def _put(self, reply: Reply) -> None:
        self.unanswered += 1
        await self.replies.put(reply)

    def _frames(self, data: bytes) -> Reply:
        arrived = time.perf_counter()
        try:
            x = p.frames_of(data, self.server.input_size, self.server.max_frames)
        except ValueError as exc:
            self.server.counters.errors += 1
            return p.error(exc)
        submit = self.server.batcher.submit
        return [submit(self.id, row) for row in x], arrived

    async def _control(self, text: str) -> bool:
        """One control message, answered after the replies before it; True when the stream closed."""
        try:
            request = p.parse(text)
            op = request.get("op")
            call = {"reset": self._reset, "snapshot": self._snapshot, "state": self._state,
                    "status": self._status, "close": self._close}.get(op)
            if call is None:
                raise ValueError(f"unknown op {op!r}" if op != "open" else "open: the stream is open already")
        except ValueError as exc:
            self.server.counters.errors += 1
            await self._put(p.error(exc))
            return False
        await self.replies.join()  # the frames sent before it are stepped first
        try:
            answer = call()
        except (ValueError, KeyError, TypeError) as exc:
            self.server.counters.errors += 1
            answer = p.error(exc)
        await self._put(answer)
        if op != "close":
            return False
        await self.replies.join()
        await self.ws.close()
        return True

    def _reset(self) -> str:
        self.pool.reset(self.id)
        return p.reply("reset")

    def _snapshot(self) -> str:
        return p.reply("snapshot", snapshot=p.encode_blob(self.pool.snapshot(self.id)))

    def _state(self) -> str:
        return p.reply("state", state=p.encode_state(self.pool.state(self.id)))

    def _status(self) -> str:
        return p.reply("status", metrics=self.server.metrics())

    def _close(self) -> str:
        self._free()
        return p.reply("close")

    async def _idle(self) -> None:
        blob = self.pool.snapshot(self.id)
        self._free()
        self.server.counters.idle_closed += 1
        await self.ws.send(p.idle_event(blob))
        await self.ws.close(p.CLOSE_IDLE, f"idle for {self.server.idle_timeout:g} s; reopen with the snapshot sent")

    async def _write(self) -> None:
        """Sends the replies in order, each once it is ready; to the end, even on a closed connection,
        so that waiting for the queue (join) never hangs."""
        while True:
            reply = await self.replies.get()
            try:
                await self._send(reply)
            except ConnectionClosed:
                pass  # the reader sees the end too
            except Exception:  # noqa: BLE001 (a bug here must not stall the connection's queue)
                logger.exception("streamrnn.serve: sending a reply failed")
            finally:
                self.unanswered -= 1
                self.replies.task_done()

    async def _send(self, reply: Reply) -> None:
        if isinstance(reply, str):
            await self.ws.send(reply)
            return
        futures, arrived = reply
        try:
            # One stream's steps complete in order, so mostly only the first wait is a real one.
            ys = [f.result() if f.done() else await asyncio.wrap_future(f) for f in futures]
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            self.server.counters.errors += 1
            await self.ws.send(p.error(exc))
            return
        self.server.counters.stepped(len(ys), time.perf_counter() - arrived)
        await self.ws.send(np.stack(ys).astype(p.FLOAT, copy=False).tobytes())


def _sent_code(closed: ConnectionClosed) -> Optional[int]:
    return None if closed.sent is None else closed.sent.code


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}: expected a number of seconds > 0, got {value!r}")
    return float(value)


def serve(model: Any, **options: Any) -> None:
    """Serves `model` (Server's options) until Ctrl-C or SIGTERM; what ``python -m streamrnn serve``
    runs."""
    server = Server(model, **options)

    def announce(s: Server) -> None:
        print(f"streamrnn: serving {s.pool.capacity} streams of {model} at {s.url} "
              f"(metrics: http://{s.host}:{s.port}/metrics)", flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, server.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        await server.run(on_ready=announce)

    asyncio.run(main())
