"""An httpcore network backend that checks addresses at connect time and keeps a deadline.

:class:`GuardedBackend` resolves the host itself, refuses the connection if any resolved
address is not allowed (:func:`~clipatlas.fetch.guard.resolve_checked`), then connects to the
checked IP. TLS still verifies and sends SNI for the host name (httpcore passes it to
``start_tls``) and the ``Host`` header is untouched, so a DNS answer that changes between a
check and the connection cannot slip through: there is no second lookup.

Every socket operation is also bounded by the wall-clock deadline of the current attempt
(:func:`deadline`), so a server trickling bytes or headers forever is cut off on time.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

from clipatlas.fetch.guard import Resolver, resolve_checked
from clipatlas.fetch.policy import FetchPolicy

__all__ = ["GuardedBackend", "deadline"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "clipatlas_fetch_deadline", default=None
)


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Bound every socket operation in this block by ``time.monotonic() <= at``."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, kind: type[Exception]) -> float | None:
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise kind("total time limit reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address, connect to a checked one; never a second lookup."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver | None = None) -> None:
        self._policy, self._resolver = policy, resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = min(timeout or self._policy.connect_timeout, self._policy.connect_timeout)
        try:
            addresses = resolve_checked(host, port, self._policy, self._resolver)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for addr in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(addr),
                    port,
                    _bounded(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
