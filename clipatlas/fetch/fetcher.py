"""The :class:`Fetcher`: one safe GET, with retries, redirects and limits.

One call to :meth:`Fetcher.get` is a series of attempts. An attempt follows redirects by hand
(each hop re-checked by :func:`~clipatlas.fetch.guard.check_url`, and again at connect time by
the :class:`~clipatlas.fetch.backend.GuardedBackend`) within ``total_timeout`` of wall-clock
time. Connection failures, truncated bodies, 5xx and 429 are retried after a jittered
exponential backoff or the server's ``Retry-After``; everything else fails at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpcore
import httpx

from clipatlas.errors import FetchError, ImageDecodeError, Reason
from clipatlas.fetch.backend import GuardedBackend, deadline
from clipatlas.fetch.body import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    BodyTooSlow,
    UnsupportedEncoding,
    read_body,
)
from clipatlas.fetch.guard import BlockedAddress, Resolver, check_url
from clipatlas.fetch.policy import FetchPolicy
from clipatlas.fetch.redact import guard_httpx_log, is_secret_name, redact, scrub, secrets_in
from clipatlas.fetch.retry import backoff_delay, is_retryable_status, parse_retry_after
from clipatlas.images import sniff_format

__all__ = ["Expect", "FetchResult", "Fetcher"]

logger = logging.getLogger(__name__)

Expect = Literal["image", "json", "any"]
_ACCEPT = {"image": "image/*", "json": "application/json", "any": "*/*"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CROSS_ORIGIN_DROP = frozenset({"authorization", "proxy-authorization", "cookie"})
# (status, first bytes of the error body) -> True when retrying cannot help (e.g. an API's
# daily quota, Naver errorCode 010): the error is raised after this one attempt
FinalAnswer = Callable[[int, str | None], bool]


@dataclass(frozen=True)
class FetchResult:
    """A successful GET. ``url`` and ``final_url`` are redacted."""

    url: str
    final_url: str
    status: int
    content_type: str
    data: bytes = field(repr=False)
    elapsed: float


_ERROR_BODY_BYTES = 16 * 1024


class _Retry(Exception):
    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        self.error, self.retry_after = error, retry_after
        super().__init__(str(error))


@dataclass
class _Call:
    """One :meth:`Fetcher.get`: what to ask for and which strings must never be shown."""

    url: httpx.URL
    headers: dict[str, str]
    expect: Expect
    secrets: set[str]
    final: FinalAnswer | None = None

    def show(self, url: httpx.URL | str) -> str:
        return redact(str(url), self.secrets)

    def fail(
        self, url: httpx.URL | str, reason: Reason, detail: str, status: int | None = None
    ) -> FetchError:
        return FetchError(self.show(url), reason, scrub(detail, self.secrets), status)


class Fetcher:
    """Safe HTTP GETs under a :class:`FetchPolicy`. Thread-safe; close it (or use ``with``).

    ``secrets`` (API keys, tokens) are masked in every URL, message and log record, as are
    credential-named query parameters and ``Authorization`` headers. ``resolver`` replaces
    DNS (tests). Proxies from the environment are ignored: a proxy would connect on our behalf
    and bypass the address guard.
    """

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        secrets: Iterable[str] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self._secrets = frozenset(s for s in secrets if s)
        guard_httpx_log(self._secrets)  # httpx logs every request URL at INFO
        transport = httpx.HTTPTransport(trust_env=False, retries=0)
        transport._pool.close()
        transport._pool = httpcore.ConnectionPool(  # the only way to pass a network backend
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(self.policy, resolver),
            max_connections=None,  # callers bound concurrency (threads, per-host slots)
            max_keepalive_connections=32,
            keepalive_expiry=30.0,
            retries=0,
        )
        timeout = httpx.Timeout(self.policy.total_timeout, connect=self.policy.connect_timeout)
        self._client = httpx.Client(
            transport=transport, follow_redirects=False, trust_env=False, timeout=timeout
        )
        self._host_lock = threading.Lock()
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}

    def __repr__(self) -> str:
        return f"Fetcher(policy={self.policy!r}, secrets=<{len(self._secrets)} hidden>)"

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- public API ------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        expect: Expect = "any",
        final: FinalAnswer | None = None,
    ) -> FetchResult:
        """GET ``url``; raise :class:`~clipatlas.errors.FetchError` with a typed reason.

        ``expect="image"`` refuses bodies whose magic bytes are not an allowed picture
        (``not_an_image``/``unsupported_format``, whatever the Content-Type says);
        ``expect="json"`` refuses bodies that do not parse as JSON (``http_error``).
        ``final(status, body)`` marks a retryable status as final (no retry), e.g. a quota
        that resets tomorrow.
        """
        return self._get(url, headers, params, expect, final)[0]

    def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        final: FinalAnswer | None = None,
    ) -> Any:
        """GET ``url`` and return the parsed JSON body (``final``: as for :meth:`get`)."""
        return self._get(url, headers, params, "json", final)[1]

    def fetch_many(
        self,
        urls: Iterable[str],
        *,
        concurrency: int = 16,
        expect: Expect = "image",
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[str, FetchResult | FetchError]]:
        """GET many URLs on a thread pool; yield ``(url as given, result or error)``.

        Results come back in input order. At most ``2 * concurrency`` requests are queued, so
        ``urls`` may be a long lazy iterable. Per-host limits still apply.
        """
        pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch")
        pending: deque[tuple[str, Future[FetchResult | FetchError]]] = deque()
        try:
            for url in urls:
                pending.append((url, pool.submit(self._get_or_error, url, headers, expect)))
                if len(pending) >= 2 * concurrency:
                    done_url, future = pending.popleft()
                    yield done_url, future.result()
            while pending:
                done_url, future = pending.popleft()
                yield done_url, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------

    def _get_or_error(
        self, url: str, headers: Mapping[str, str] | None, expect: Expect
    ) -> FetchResult | FetchError:
        try:
            return self._get(url, headers, None, expect)[0]
        except FetchError as exc:
            return exc

    def _get(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        expect: Expect,
        final: FinalAnswer | None = None,
    ) -> tuple[FetchResult, Any]:
        secrets = set(self._secrets) | secrets_in(url, params, headers)
        shown = redact(url, secrets)
        try:
            check_url(url, self.policy)
            target = httpx.URL(url)
            if params:
                target = target.copy_merge_params(dict(params))
        except BlockedAddress as exc:
            raise FetchError(shown, Reason.BLOCKED_ADDRESS, scrub(exc.detail, secrets)) from None
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise FetchError(
                shown, Reason.NETWORK_ERROR, f"invalid URL ({scrub(str(exc), secrets)})"
            ) from None
        base = {"User-Agent": self.policy.user_agent, "Accept": _ACCEPT[expect]}
        call = _Call(target, {**base, **(headers or {})}, expect, secrets, final)
        call.headers["Accept-Encoding"] = ACCEPT_ENCODING
        start = time.monotonic()
        for attempt in range(self.policy.retries + 1):
            try:
                result, parsed = self._attempt(call)
            except _Retry as retry:
                if attempt == self.policy.retries:
                    raise retry.error from None
                delay = retry.retry_after
                if delay is None:
                    delay = backoff_delay(
                        attempt, self.policy.backoff_base, self.policy.backoff_cap
                    )
                logger.info("retrying %s in %.2fs after %s", call.show(target), delay, retry.error)
                time.sleep(delay)
                continue
            elapsed = time.monotonic() - start
            done = FetchResult(
                shown if not params else call.show(target),
                result.final_url,
                result.status,
                result.content_type,
                result.data,
                elapsed,
            )
            logger.debug("fetched %s (%d bytes, %.2fs)", done.final_url, len(done.data), elapsed)
            return done, parsed
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _host_slot(self, host: str) -> Iterator[None]:
        with self._host_lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = threading.BoundedSemaphore(self.policy.per_host_concurrency)
                self._host_slots[host] = slot
        with slot:
            yield

    def _attempt(self, call: _Call) -> tuple[FetchResult, Any]:
        """Follow redirects by hand. The clock starts once the first host slot is ours, so
        waiting behind other requests to the same host does not eat the time budget."""
        at: float | None = None
        current, headers, hops = call.url, dict(call.headers), 0
        while True:
            try:
                check_url(str(current), self.policy)
                with self._host_slot(current.host):
                    if at is None:
                        at = time.monotonic() + self.policy.total_timeout
                    with deadline(at):
                        outcome = self._hop(call, current, headers, at)
            except BlockedAddress as exc:
                raise call.fail(current, Reason.BLOCKED_ADDRESS, exc.detail) from None
            if isinstance(outcome, FetchResult):
                return outcome, self._check_expect(call, outcome)
            hops += 1
            if hops > self.policy.max_redirects:
                detail = f"more than {self.policy.max_redirects} redirects"
                raise call.fail(call.url, Reason.HTTP_ERROR, detail, outcome[1]) from None
            nxt = outcome[0]
            call.secrets |= secrets_in(str(nxt))  # a Location may carry a fresh token
            if (nxt.scheme, nxt.host, nxt.port) != (current.scheme, current.host, current.port):
                headers = {
                    k: v for k, v in headers.items()
                    if k.lower() not in _CROSS_ORIGIN_DROP and not is_secret_name(k)
                }  # fmt: skip
            logger.debug("redirect %s -> %s", call.show(current), call.show(nxt))
            current = nxt

    def _hop(
        self, call: _Call, url: httpx.URL, headers: dict[str, str], at: float
    ) -> FetchResult | tuple[httpx.URL, int]:
        """One request: a result, or ``(next URL, status)`` for a redirect."""
        in_body = False
        try:
            request = self._client.build_request("GET", url, headers=headers)
            response = self._client.send(request, stream=True)
            try:
                status = response.status_code
                location = response.headers.get("location")
                if status in _REDIRECTS and location:
                    try:
                        return url.join(location), status
                    except httpx.InvalidURL:
                        raise call.fail(url, Reason.HTTP_ERROR, "bad redirect", status) from None
                if not 200 <= status <= 299:
                    raise self._status_error(call, url, response)
                encoding = response.headers.get("content-encoding", "")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.policy.max_bytes:
                    detail = f"Content-Length {declared} exceeds {self.policy.max_bytes} bytes"
                    raise call.fail(url, Reason.TOO_LARGE, detail, status)
                in_body = True
                data = read_body(response.iter_raw(), encoding, self.policy.max_bytes, at)
                ctype = response.headers.get("content-type", "")
            finally:
                response.close()
            return FetchResult(call.show(call.url), call.show(url), status, ctype, data, 0.0)
        except BodyTooLarge as exc:
            raise call.fail(url, Reason.TOO_LARGE, str(exc)) from None
        except (BodyTooSlow, httpx.TimeoutException) as exc:
            error = call.fail(url, Reason.TIMEOUT, str(exc) or type(exc).__name__)
            if isinstance(exc, httpx.ConnectTimeout) and time.monotonic() < at:
                raise _Retry(error) from None
            raise error from None
        except UnsupportedEncoding as exc:
            raise call.fail(url, Reason.HTTP_ERROR, str(exc)) from None
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            reason = Reason.TRUNCATED if in_body else Reason.NETWORK_ERROR
            raise _Retry(call.fail(url, reason, detail)) from None

    def _status_error(
        self, call: _Call, url: httpx.URL, response: httpx.Response
    ) -> FetchError | _Retry:
        status = response.status_code
        error = call.fail(url, Reason.HTTP_ERROR, response.reason_phrase, status)
        error.body = self._error_body(call, response)
        if not is_retryable_status(status) or (call.final and call.final(status, error.body)):
            return error
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            detail = (
                f"Retry-After asks for {retry_after:.0f}s, more than max_retry_after "
                f"{self.policy.max_retry_after:.0f}s"
            )
            return call.fail(url, Reason.HTTP_ERROR, detail, status)
        return _Retry(error, retry_after)

    @staticmethod
    def _error_body(call: _Call, response: httpx.Response) -> str | None:
        """The first bytes of an error body (APIs explain themselves there: Naver's SE codes,
        CivitAI's ``{"error": ...}``), scrubbed of secrets. Compressed bodies are not inflated
        here, so this can never be a decompression bomb."""
        if response.headers.get("content-encoding", "identity") not in ("", "identity"):
            return None
        data = b""
        try:
            for chunk in response.iter_raw():
                data += chunk
                if len(data) >= _ERROR_BODY_BYTES:
                    break
        except (httpx.HTTPError, OSError):
            return None
        return scrub(data[:_ERROR_BODY_BYTES].decode("utf-8", "replace"), call.secrets) or None

    def _check_expect(self, call: _Call, result: FetchResult) -> Any:
        if call.expect == "image":
            try:
                sniff_format(result.data, urlsplit(result.final_url).path)
            except ImageDecodeError as exc:
                raise FetchError(result.final_url, exc.reason, exc.detail, result.status) from None
        elif call.expect == "json":
            try:
                return json.loads(result.data)
            except (ValueError, UnicodeDecodeError):
                detail = f"expected JSON, got {result.content_type or 'no content type'}"
                raise FetchError(
                    result.final_url, Reason.HTTP_ERROR, detail, result.status
                ) from None
        return None
