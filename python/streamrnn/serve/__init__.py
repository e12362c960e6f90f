# python/streamrnn/serve/__init__.py: streamrnn.serve, live streams over WebSockets (the `serve`
# extra: pip install streamrnn[serve]). Part of streamrnn, MIT licence.
"""Serving: ``python -m streamrnn serve MODEL`` (or ``serve(model)``, ``Server(model).start()``)
runs a WebSocket server on a pool of the model's streams, one connection per stream, its frames
stepped in batches by a Batcher; ``Client`` and ``AsyncClient`` are its clients. The protocol (for
clients in other languages) is in ``streamrnn.serve._protocol``'s docstring."""

from ._client import AsyncClient, Client
from ._protocol import CLOSE_FULL, CLOSE_IDLE, CLOSE_TOKEN, CLOSE_TOO_BIG, Refused
from ._server import Server, prometheus_text, serve

__all__ = ["Client", "AsyncClient", "Server", "serve", "Refused", "prometheus_text", "CLOSE_FULL", "CLOSE_TOKEN",
           "CLOSE_TOO_BIG", "CLOSE_IDLE"]
