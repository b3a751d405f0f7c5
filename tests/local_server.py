"""The one way tests run an HTTP server: 127.0.0.1 only, a random port, a daemon thread."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import TypeVar

__all__ = ["LoopbackServer"]

_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """Runs ``server`` while the ``with`` block lasts; subclasses add the routes' state."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        host = server.server_address[0]
        if host != "127.0.0.1":
            raise ValueError(f"test servers listen on 127.0.0.1 only, not {host!r}")
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
