"""Read a response body within a byte budget, decompressing as it streams.

Only ``gzip`` and ``deflate`` are asked for and accepted; each compressed chunk is inflated in
bounded steps (``max_length``), so a gzip bomb costs at most ``max_bytes`` plus one step of
memory before it is refused. Both the wire bytes and the decoded bytes count against the
budget.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable

__all__ = ["ACCEPT_ENCODING", "BodyTooLarge", "BodyTooSlow", "UnsupportedEncoding", "read_body"]

ACCEPT_ENCODING = "gzip, deflate"
_STEP = 64 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body exceeds {limit} bytes")


class BodyTooSlow(Exception):
    pass


class UnsupportedEncoding(Exception):
    pass


class _Inflater:
    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj: zlib._Decompress | None = None

    def _new(self, first: bytes) -> zlib._Decompress:
        if self._encoding == "deflate" and first and (first[0] & 0x0F) != 8:
            return zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
        wbits = zlib.MAX_WBITS | (16 if self._encoding == "gzip" else 0)
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterable[bytes]:
        while data:
            if self._obj is None:
                self._obj = self._new(data)
            try:
                out = self._obj.decompress(data, _STEP)
            except zlib.error as exc:
                raise UnsupportedEncoding(f"corrupt {self._encoding} body ({exc})") from exc
            if out:
                yield out
            if self._obj.eof:  # concatenated gzip members: start again on what is left
                data, self._obj = self._obj.unused_data, None
            else:
                data = self._obj.unconsumed_tail


def read_body(
    chunks: Iterable[bytes], content_encoding: str, max_bytes: int, deadline: float
) -> bytes:
    """Join ``chunks`` (raw wire bytes), decoded, refusing more than ``max_bytes``."""
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
        raise UnsupportedEncoding(f"unsupported content-encoding {content_encoding!r}")
    inflater = _Inflater("deflate" if encodings == ["deflate"] else "gzip") if encodings else None
    out = bytearray()
    wire = 0
    for chunk in chunks:
        wire += len(chunk)
        if wire > max_bytes:
            raise BodyTooLarge(max_bytes)
        for piece in inflater.feed(chunk) if inflater else (chunk,):
            out += piece
            if len(out) > max_bytes:
                raise BodyTooLarge(max_bytes)
        if time.monotonic() > deadline:
            raise BodyTooSlow("total time limit reached while reading the body")
    return bytes(out)
