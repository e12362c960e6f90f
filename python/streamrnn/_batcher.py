# python/streamrnn/_batcher.py: Batcher, one frame of one stream at a time from any thread or
# asyncio task, stepped in batches by the engine's own thread. Part of streamrnn, MIT licence.
"""The Batcher: many producers, one batched step."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import weakref
from typing import Any, Optional

import numpy as np

from . import _checks, _core


class Batcher:
    """Steps the frames that any number of threads (or asyncio tasks) submit, one frame of one
    stream at a time, as batches of a pool's streams.

    A thread of the engine (C++, without the GIL) takes the pending frames of different streams
    into one ``pool.step``: up to `max_batch` of them (None: 64, or the pool's capacity if
    smaller), the oldest waiting at most `max_delay` seconds for more. The frames of one stream
    are stepped in the order submitted. Each submit returns a ``concurrent.futures.Future`` of
    that frame's output (H_out,); a frame that fails (a malformed x, a stream that is not open)
    fails its own future only.

    The pool's other calls (open, close, snapshot, ...) may go on meanwhile, from any thread;
    stepping the pool directly at the same time is refused there while the batcher steps.
    ``close()`` (or leaving a ``with`` block) steps the pending frames first.
    """

    def __init__(self, pool: "_core.Pool", max_batch: Optional[int] = None, max_delay: float = 0.002) -> None:
        if not isinstance(pool, _core.Pool):
            raise TypeError(f"pool: expected a streamrnn pool (model.pool(capacity)), got {type(pool).__name__}")
        max_batch = min(64, pool.capacity) if max_batch is None else _checks.integer("max_batch", max_batch)
        if not 1 <= max_batch <= pool.capacity:
            raise ValueError(f"max_batch: expected 1 to the pool's capacity ({pool.capacity}), got {max_batch}")
        if isinstance(max_delay, (bool, np.bool_)) or not isinstance(max_delay, (int, float, np.floating, np.integer)):
            raise TypeError(f"max_delay: expected a number of seconds, got {type(max_delay).__name__}")
        max_delay = float(max_delay)
        if not (math.isfinite(max_delay) and max_delay >= 0.0):
            raise ValueError(f"max_delay: expected a finite number of seconds >= 0, got {max_delay}")
        self._core = _core.Batcher(pool, max_batch, max_delay)
        self.max_batch = max_batch
        self.max_delay = max_delay
        # Closed when garbage-collected or at interpreter exit, before the GIL is gone.
        self._finalizer = weakref.finalize(self, self._core.close)

    @property
    def pool(self) -> "_core.Pool":
        return self._core.pool

    def submit(self, id: int, x: Any) -> "concurrent.futures.Future[np.ndarray]":
        """Queues one frame x (I,) of stream `id`; returns the future of its output (H_out,).
        RuntimeError once closed."""
        return self._core.submit(id, x)

    async def asubmit(self, id: int, x: Any) -> np.ndarray:
        """submit() for asyncio: awaits the frame's output."""
        return await asyncio.wrap_future(self._core.submit(id, x))

    @property
    def pending(self) -> int:
        """Frames submitted and not yet delivered."""
        return 0 if self._core.closed else self._core.pending

    @property
    def closed(self) -> bool:
        return self._core.closed

    def stats(self) -> "dict[str, int]":
        """Batched steps so far and the frames they stepped (0 once closed)."""
        if self._core.closed:
            return {"batches": 0, "frames": 0}
        return {"batches": self._core.batches, "frames": self._core.frames}

    def close(self) -> None:
        """Steps the pending frames, then stops the thread. Later submits raise RuntimeError."""
        self._finalizer()

    def __enter__(self) -> "Batcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pending={self.pending}"
        return f"Batcher(max_batch={self.max_batch}, max_delay={self.max_delay:g}, {state})"
