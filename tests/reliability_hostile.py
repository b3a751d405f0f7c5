"""The hostile server of tests/hostile_server.py with the rest of the issue's list, and a canary.

Extra routes (on top of trickles, endless headers, lying lengths, the 8 MB gzip bomb, redirect
chains, redirects anywhere, 429 storms with and without Retry-After, resets):

* ``/gzip-bomb-1g`` - gzip that inflates to 1 GiB of zeros (about 1 MB on the wire);
* ``/deflate-bomb`` - the same as ``Content-Encoding: deflate``;
* ``/chunked-forever`` - HTTP/1.1 chunked body that never ends, one small chunk at a time;
* ``/good?id=`` - a distinct 96 x 64 JPEG per id (a picture that must be stored);
* ``/reset-mid-body`` - headers and half a body, then a TCP reset;
* every request's full target and headers are recorded (``server.requests``), so a test can
  prove a key was really sent before proving it was never shown.

:class:`Canary` is a bare TCP listener on 127.0.0.1 that counts connections: nothing may ever
reach it, since tests allow-list only a name (``images.test``) that the fake resolver maps to
127.0.0.1, never the address itself.
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from functools import cache

from tests.corpus import textured_picture
from tests.hostile_server import HostileServer, _Handler

__all__ = ["Canary", "ReliabilityServer", "resolver"]

ALIAS = "images.test"
CANARY_NAME = "canary.test"  # resolves to loopback and is not allow-listed


def resolver(host: str, port: int) -> list[str]:
    names = {ALIAS: ["127.0.0.1"], CANARY_NAME: ["127.0.0.1"]}
    if host not in names:
        raise OSError(f"fake resolver does not know {host}")
    return names[host]


@cache
def _zeros(total: int, gzip: bool) -> bytes:
    """A gzip or zlib stream of ``total`` zeros, from one flushed deflate block repeated."""
    piece = bytes(1 << 22)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(total, len(piece))
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    if gzip:
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(piece, crc)
        crc = zlib.crc32(bytes(rest), crc)
        head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        return head + block * count + tail + struct.pack("<II", crc, total & 0xFFFFFFFF)
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + block * count + tail + adler.to_bytes(4, "big")


@cache
def good_picture(ident: str) -> bytes:
    """A distinct 96 x 64 JPEG per ``ident``."""
    seed = zlib.crc32(ident.encode())
    buffer = io.BytesIO()
    textured_picture(seed, (96, 64)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class _ReliabilityHandler(_Handler):
    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(  # type: ignore[attr-defined]
                (self.path, {k.lower(): v for k, v in self.headers.items()})
            )
        super().do_GET()

    def route_gzip_bomb_1g(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, _zeros(1 << 30, True), "image/png", Content_Encoding="gzip")

    def route_deflate_bomb(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, _zeros(1 << 30, False), "image/png", Content_Encoding="deflate")

    def route_good(self, rest: list[str], query: dict[str, str]) -> None:
        self._send(200, good_picture(query.get("id", "")), "image/jpeg")

    def route_chunked_forever(self, rest: list[str], query: dict[str, str]) -> None:
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self._trickle(b"4\r\n\x89PNG\r\n", every=0.02)

    def route_reset_mid_body(self, rest: list[str], query: dict[str, str]) -> None:
        body = self.server.png * 50
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class ReliabilityServer(HostileServer):
    def __init__(self) -> None:
        super().__init__()
        self._hostile.RequestHandlerClass = _ReliabilityHandler
        self._hostile.requests = []  # type: ignore[attr-defined]
        # Build the bombs now (0.5 s each alone, seconds on a loaded machine): the tests time
        # the client against a 1 s deadline, not this fake server making its first answer.
        for gzip in (True, False):
            _zeros(1 << 30, gzip)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return self._hostile.requests  # type: ignore[attr-defined, no-any-return]


class Canary:
    """Counts every TCP connection made to it (127.0.0.1, random port)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.hits += 1
            conn.close()

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)  # a connection in flight is still counted
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
