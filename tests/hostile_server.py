"""A local HTTP server that misbehaves on purpose, for the fetch tests.

Listens on 127.0.0.1 only (random port). Every route is a way a real image host or API has
been seen to fail: lying types and lengths, trickling bodies, endless headers, bombs, redirect
chains, rate limits, resets. Counters (``hits``) let tests check how many attempts were made;
``?id=`` keys the stateful routes so tests do not share state.
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import struct
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from tests.local_server import LoopbackServer

__all__ = ["HostileServer", "tiny_png"]

GZIP_BOMB_SIZE = 8 * 1024 * 1024  # decompressed; the wire carries a few kilobytes


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # -- helpers ---------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _count(self, key: str) -> int:
        with self.server.lock:
            self.server.state[key] += 1
            return self.server.state[key]

    def _trickle(self, data: bytes, every: float, limit: float = 20.0) -> None:
        end = time.monotonic() + limit
        try:
            while time.monotonic() < end:
                self.wfile.write(data)
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            return

    # -- routes ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = parts.path.strip("/").split("/")
        with self.server.lock:
            self.server.hits[parts.path] += 1
        handler = getattr(self, "route_" + route[0].replace("-", "_").replace(".", "_"), None)
        if handler is None:
            self._send(404, b"not found", "text/plain")
            return
        handler(route[1:], query)

    def route_img_png(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, self.server.png, "image/png")

    def route_photo_jpeg(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, self.server.png, "image/jpeg")  # PNG bytes under a .jpeg name

    def route_html(self, rest: list[str], query: dict[str, str]) -> None:
        body = b"<!doctype html><html><body>Access denied</body></html>"
        self._send(200, body, query.get("type", "text/html"))

    def route_json(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, json.dumps({"ok": True, "items": [1, 2]}).encode(), "application/json")

    def route_echo(self, rest: list[str], query: dict[str, str]) -> None:
        body = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        self._send(200, json.dumps(body).encode(), "application/json")

    def route_status(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(int(rest[0]), b"status page", "text/plain")

    def route_slow_body(self, rest: list[str], query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self._trickle(b"x", every=0.05)

    def route_slow_headers(self, rest: list[str], query: dict[str, str]) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self._trickle(b"X-Padding: never-ending\r\n", every=0.05)

    def route_big(self, rest: list[str], query: dict[str, str]) -> None:
        size = int(query.get("size", "2000000"))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if query.get("length", "true") == "true":
            self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = self.server.png + b"\0" * 65536
        sent = 0
        try:
            while sent < size:
                piece = chunk[: size - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            return

    def route_short_body(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, self.server.png[:20], "image/png", Content_Length="5000")

    def route_long_body(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, self.server.png, "image/png", Content_Length="30")

    def route_gzip_bomb(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, self.server.bomb, "image/png", Content_Encoding="gzip")

    def route_gzip_png(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, gzip.compress(self.server.png), "image/png", Content_Encoding="gzip")

    def route_redirect(self, rest: list[str], query: dict[str, str]) -> None:
        left = int(rest[0])
        target = f"/redirect/{left - 1}" if left > 0 else "/img.png"
        self._send(302, b"", "text/plain", Location=target)

    def route_redirect_loop(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(302, b"", "text/plain", Location="/redirect-loop")

    def route_redirect_to(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(int(query.get("code", "302")), b"", "text/plain", Location=query["to"])

    def route_retry_after(self, rest: list[str], query: dict[str, str]) -> None:
        """``?id=..&n=..&after=seconds|date|absurd``: n times 429, then the picture."""
        if self._count(f"retry-after:{query['id']}") > int(query.get("n", "1")):
            self._send(200, self.server.png, "image/png")
            return
        kind = query.get("after", "seconds")
        value = {
            "seconds": "1",
            "date": formatdate(time.time() + 2, usegmt=True),
            "absurd": "86400",
        }[kind]
        self._send(429, b"slow down", "text/plain", Retry_After=value)

    def route_storm(self, rest: list[str], query: dict[str, str]) -> None:
        """``?id=..&n=..&code=429``: n failures without Retry-After, then the picture."""
        if self._count(f"storm:{query['id']}") > int(query.get("n", "3")):
            self._send(200, self.server.png, "image/png")
            return
        self._send(int(query.get("code", "429")), b"busy", "text/plain")

    def route_sleep(self, rest: list[str], query: dict[str, str]) -> None:
        """Answer after ``?s=`` seconds; ``in_flight``/``max_in_flight`` count overlaps."""
        with self.server.lock:
            self.server.state["in_flight"] += 1
            peak = max(self.server.state["max_in_flight"], self.server.state["in_flight"])
            self.server.state["max_in_flight"] = peak
        time.sleep(float(query.get("s", "0.1")))
        with self.server.lock:
            self.server.state["in_flight"] -= 1
        self._send(200, self.server.png, "image/png")

    def route_reset(self, rest: list[str], query: dict[str, str]) -> None:
        """``?id=..&n=..``: reset the connection n times (default forever), then the picture."""
        if self._count(f"reset:{query.get('id', '')}") > int(query.get("n", "1000000")):
            self._send(200, self.server.png, "image/png")
            return
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self.wfile = io.BytesIO()  # nothing more reaches the closed socket


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.state: Counter[str] = Counter()
        self.png = tiny_png()
        self.bomb = gzip.compress(b"\0" * GZIP_BOMB_SIZE, compresslevel=9)


class HostileServer(LoopbackServer):
    """``with HostileServer() as server: server.url("/img.png")``."""

    def __init__(self) -> None:
        self._hostile = _Server()
        super().__init__(self._hostile)

    @property
    def hits(self) -> Counter[str]:
        return self._hostile.hits

    @property
    def state(self) -> Counter[str]:
        return self._hostile.state

    @property
    def png(self) -> bytes:
        return self._hostile.png

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"
