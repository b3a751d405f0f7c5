"""A lean HTTP/1.1 GET client for load benchmarks: one keep-alive connection per client.

The simulated users of ``bench/web_load.py`` run on the same 2 cores as the server and the
ingest they are measured against, so every millisecond of CPU the client spends per request is
taken from what is being measured (real users run on their own machines). httpx's async client
costs about 3 ms of CPU per request; this one parses only what a GET needs (status line,
``Content-Length`` or chunked bodies, ``Connection: close``) and costs a fraction of that.

Like browsers and urllib3, a GET sent on a REUSED connection that the server closed while it was
idle (its keep-alive timeout crossing the new request) is sent again once on a new connection;
such resends are counted (``Connection.resent``), never hidden. Any other failure raises.
"""

from __future__ import annotations

import asyncio

__all__ = ["Connection", "HttpError"]


class HttpError(Exception):
    """A malformed response or a connection that failed outside the one allowed resend."""


class Connection:
    """One client's connection to ``host:port``; ``get`` returns (status, body bytes)."""

    def __init__(self, host: str, port: int, headers: dict[str, str], timeout: float = 30) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: {host}:{port}\r\n{extra}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = False  # has the open connection carried a response already?
        self.resent = 0

    async def get(self, path: str) -> tuple[int, bytes]:
        request = f"GET {path} HTTP/1.1\r\n{self._head}".encode("latin-1")
        for attempt in (1, 2):
            if self._reader is not None and self._reader.at_eof():
                self.close()  # the server closed it while idle, and we have already seen that
            reused = self._writer is not None and self._used
            if self._writer is None:
                await self._open()
            try:
                return await asyncio.wait_for(self._exchange(request), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                nothing_read = getattr(exc, "partial", b"") == b""
                if attempt == 1 and reused and nothing_read:
                    self.resent += 1  # the server closed an idle keep-alive connection
                    continue
                raise HttpError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._used = False

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(reader)
        else:
            raise HttpError(f"response without a length: {headers}")
        self._used = True
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), body

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent to a GET like ours
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
