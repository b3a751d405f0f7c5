"""``naver``: pictures found by the Naver Search API (image search).

Pages through ``GET <naver_base_url>?query=&display=&start=&sort=&filter=`` with the client id
and secret in configurable headers (``naver_id_header``/``naver_secret_header``; never in the
URL). ``start`` is a 1-based item offset: the next page starts at ``start + display``, and the
API refuses ``start`` above 1000, so one query reaches at most ~1,099 results however large
``total`` is. Iteration stops at ``limit``, at ``total`` (or a short page), or at that cap;
:attr:`NaverImageSource.stopped_because` says which.

Errors become typed :class:`~clipatlas.errors.NaverError`\\ s:

- 401/403 or ``errorCode`` ``024`` -> :class:`~clipatlas.errors.NaverAuthError`;
- ``010`` (daily quota) -> :class:`~clipatlas.errors.NaverQuotaError` ``scope="daily"``,
  after exactly one request: the fetcher is told (:func:`is_daily_quota`) not to retry it;
- ``012`` (per-second rate) -> ``scope="per_second"``, retried ``rate_retries`` times with a
  jittered backoff before it is raised;
- anything else (``SE01``..``SE06`` 400s, ``SE05`` 404, ``SE99`` 500) -> ``NaverError``.

A daily quota met mid-run stops the run cleanly: every candidate of the pages already read has
been yielded, then the iterator raises ``NaverQuotaError(scope="daily")`` and
``stopped_because`` is ``"daily_quota"``.

The :class:`~clipatlas.fetch.Fetcher` raises on non-2xx statuses without the body, so for a
real error status the ``errorCode`` is read only when the error carries a ``body`` attribute.
Without it the status decides, and a 429 that outlives the fetcher's own retries (which already
back off) is reported as ``scope="daily"``. Error bodies served with HTTP 200 are always parsed.
"""

from __future__ import annotations

import html
import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from clipatlas.errors import (
    ConfigError,
    FetchError,
    NaverAuthError,
    NaverError,
    NaverQuotaError,
)
from clipatlas.fetch.redact import scrub
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.fetch import Fetcher
    from clipatlas.registry import Registry
    from clipatlas.settings import Settings
    from clipatlas.sources.base import SourceContext

__all__ = ["MAX_DISPLAY", "MAX_START", "NaverImageSource", "register"]

MAX_DISPLAY = 100
MAX_START = 1000
_SORTS = ("sim", "date")
_FILTERS = ("all", "large", "medium", "small")
_TAG = re.compile(r"</?b\s*>", re.IGNORECASE)
_AUTH_CODES = frozenset({"024"})
_DAILY_CODES = frozenset({"010"})
_RATE_CODES = frozenset({"012"})


def clean_title(title: object) -> str:
    """``<b>`` tags removed, then HTML entities decoded (``&amp;`` -> ``&``)."""
    if not isinstance(title, str):
        return ""
    return html.unescape(_TAG.sub("", title)).strip()


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def error_from(
    status: int | None,
    body: Mapping[str, Any] | None,
    secrets: list[str],
    fallback: str = "",
) -> NaverError:
    """The typed error for an HTTP status and an (optional) Naver error body."""
    code_raw = body.get("errorCode") if body else None
    code = str(code_raw) if code_raw is not None else None
    message = body.get("errorMessage") if body else None
    detail = scrub(str(message) if message else fallback, secrets)
    if code in _DAILY_CODES:
        return NaverQuotaError("daily", code, status, detail)
    if code in _RATE_CODES:
        return NaverQuotaError("per_second", code, status, detail)
    if code in _AUTH_CODES or status in (401, 403):
        return NaverAuthError(code, status, detail or "authentication failed")
    if status == 429:
        return NaverQuotaError("daily", code, status, detail)
    return NaverError(code, status, detail)


def is_daily_quota(status: int, body: str | None) -> bool:
    """A 429 whose body says ``errorCode`` ``010``: retrying before the daily reset is pointless,
    so the fetcher gives up after this one request (``012``, the per-second limit, is retried)."""
    if status != 429 or not body:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, Mapping) and str(parsed.get("errorCode")) in _DAILY_CODES


def _body_of(exc: FetchError) -> Mapping[str, Any] | None:
    """The JSON error body, if the fetch error carries one (``body``: bytes, str or dict)."""
    raw = getattr(exc, "body", None)
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, bytes | str):
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


class NaverImageSource:
    """Candidates from Naver image search for one query; see the module docstring."""

    name = "naver"

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        *,
        query: str,
        limit: int = 100,
        sort: str = "sim",
        size_filter: str = "all",
        display: int = 100,
        rate_retries: int = 3,
        rate_backoff: float = 0.5,
    ) -> None:
        if not query or not query.strip():
            raise ConfigError("naver: query must not be empty")
        if not 1 <= display <= MAX_DISPLAY:
            raise ConfigError(f"naver: display must be 1..{MAX_DISPLAY}, got {display}")
        if limit < 1:
            raise ConfigError(f"naver: limit must be at least 1, got {limit}")
        if sort not in _SORTS:
            raise ConfigError(f"naver: sort must be one of {_SORTS}, got {sort!r}")
        if size_filter not in _FILTERS:
            raise ConfigError(f"naver: size_filter must be one of {_FILTERS}, got {size_filter!r}")
        if not settings.naver_client_id or not settings.naver_client_secret:
            raise NaverAuthError(
                None,
                None,
                "missing credentials: set CLIPATLAS_NAVER_CLIENT_ID and "
                "CLIPATLAS_NAVER_CLIENT_SECRET",
            )
        self.settings, self.fetcher = settings, fetcher
        self.query, self.limit, self.sort = query.strip(), limit, sort
        self.size_filter, self.display = size_filter, display
        self.rate_retries, self.rate_backoff = rate_retries, rate_backoff
        self.stopped_because: str | None = None  # limit | total | start_cap | daily_quota
        self.total: int | None = None  # the API's estimate, from the first page
        self.requests = 0
        self.duplicates = 0
        self._secrets = [s for s in (settings.naver_client_id, settings.naver_client_secret) if s]

    def __repr__(self) -> str:
        return f"NaverImageSource(query={self.query!r}, limit={self.limit}, sort={self.sort!r})"

    def iter_candidates(self) -> Iterator[Candidate]:
        self.stopped_because, self.total, self.duplicates = None, None, 0
        seen: set[str] = set()
        start = next_rank = 1
        display = self.display
        while True:
            if start > MAX_START:
                if next_rank > MAX_START + display - 1 or start - display >= MAX_START:
                    self.stopped_because = "start_cap"
                    return
                start = MAX_START  # the last reachable page overlaps the previous one
            try:
                page = self._page(start, display)
            except NaverQuotaError as exc:
                if exc.scope == "daily":
                    self.stopped_because = "daily_quota"
                raise
            total = _int_or_none(page.get("total"))
            if self.total is None:
                self.total = total
            items = page.get("items") or []
            retrieved_at = datetime.now(timezone.utc).isoformat()
            for offset, item in enumerate(items):
                if len(seen) >= self.limit:
                    break
                if start + offset < next_rank:
                    continue  # already seen on the previous page
                candidate = self._candidate(item, start + offset, retrieved_at)
                if candidate is None:
                    continue
                if candidate.key in seen:
                    self.duplicates += 1
                    continue
                seen.add(candidate.key)
                yield candidate
            if len(seen) >= self.limit:
                self.stopped_because = "limit"
                return
            next_rank = start + len(items)
            start += display
            if len(items) < display or (total is not None and start > total):
                self.stopped_because = "total"
                return

    def _candidate(self, item: object, rank: int, retrieved_at: str) -> Candidate | None:
        if not isinstance(item, Mapping):
            return None
        link = item.get("link")
        if not isinstance(link, str) or not link.strip():
            return None
        link = link.strip()
        thumbnail = item.get("thumbnail")
        meta = {
            "query": self.query,
            "title": clean_title(item.get("title")),
            "link": link,
            "thumbnail": thumbnail if isinstance(thumbnail, str) else None,
            "sizeheight": _int_or_none(item.get("sizeheight")),
            "sizewidth": _int_or_none(item.get("sizewidth")),
            "rank": rank,
            "retrieved_at": retrieved_at,
        }
        return Candidate(source=self.name, key=link, uri=link, meta=meta)

    def _page(self, start: int, display: int) -> Mapping[str, Any]:
        params = {
            "query": self.query,
            "display": display,
            "start": start,
            "sort": self.sort,
            "filter": self.size_filter,
        }
        headers = {
            self.settings.naver_id_header: self.settings.naver_client_id or "",
            self.settings.naver_secret_header: self.settings.naver_client_secret or "",
        }
        attempt = 0
        while True:
            self.requests += 1
            error: NaverError
            try:
                body = self.fetcher.get_json(
                    self.settings.naver_base_url,
                    params=params,
                    headers=headers,
                    final=is_daily_quota,
                )
            except FetchError as exc:
                error = error_from(exc.status, _body_of(exc), self._secrets, str(exc))
            else:
                if isinstance(body, Mapping) and "errorCode" in body:
                    error = error_from(200, body, self._secrets)
                elif isinstance(body, Mapping) and isinstance(body.get("items", []), list):
                    return body
                else:
                    error = NaverError(None, 200, "unexpected response shape")
            rate_limited = isinstance(error, NaverQuotaError) and error.scope == "per_second"
            if rate_limited and attempt < self.rate_retries:
                delay = random.uniform(0.0, self.rate_backoff * 2**attempt)
                attempt += 1
                time.sleep(delay)
                continue
            raise error


def _factory(context: SourceContext, **options: Any) -> NaverImageSource:
    """``registry.create_source("naver", context, query=..., limit=...)``."""
    return NaverImageSource(context.settings, context.fetcher(), **options)


def register(registry: Registry) -> None:
    registry.add_source("naver", _factory)
