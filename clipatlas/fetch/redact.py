"""Keep secrets out of URLs, messages and logs.

:func:`redact` masks query parameters named like credentials (``api_key``, ``token``,
``secret``, ``access_token``, ...), drops userinfo and masks every given secret anywhere in the
URL. :func:`scrub` masks given secrets in any text (exception messages, details).
:func:`guard_httpx_log` does the same for httpx's own log of every request, which carries the
full URL (``HTTP Request: GET https://...?api_key=... "HTTP/1.1 200 OK"``, at INFO).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["MASK", "guard_httpx_log", "is_secret_name", "redact", "scrub", "secrets_in"]

MASK = "***"

_SECRET_NAME = re.compile(
    r"(^|[_\-.])(key|apikey|api[_\-]?key|token|access[_\-]?token|secret|password|passwd|sig"
    r"|signature|auth|authorization|credential|credentials)$",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for parameter/header names that carry credentials (``api_key``, ``X-Api-Token``)."""
    return bool(_SECRET_NAME.search(name.strip()))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its URL-encoded form) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, MASK)
        plus = quote(secret, safe="").replace("%20", "+")
        if plus != encoded:
            text = text.replace(plus, MASK)
    return text


def redact(url: str, secrets: Iterable[str] = ()) -> str:
    """``url`` safe to show: credential-named query values masked, userinfo dropped."""
    secrets = list(secrets)
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url, secrets)
    netloc = parts.netloc.rpartition("@")[2]
    query = (
        "&".join(_mask_pair(pair, secrets) for pair in parts.query.split("&") if pair)
        if parts.query
        else ""
    )
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return scrub(rebuilt, secrets)


def _mask_pair(pair: str, secrets: list[str]) -> str:
    name, sep, value = pair.partition("=")
    if sep and value and is_secret_name(_unquote(name)):
        return f"{name}={MASK}"
    return pair


def _unquote(text: str) -> str:
    pairs = parse_qsl(f"{text}=x", keep_blank_values=True)
    return pairs[0][0] if pairs else text


def secrets_in(
    url: str,
    params: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> set[str]:
    """Secret values carried by a request: credential-named query values and auth headers."""
    found: set[str] = set()
    try:
        query = urlsplit(url).query
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
    except ValueError:
        query, userinfo = "", ""
    found.update(v for k, v in parse_qsl(query, keep_blank_values=True) if is_secret_name(k))
    if userinfo:
        found.update(p for p in userinfo.split(":") if p)
    for name, value in (params or {}).items():
        if is_secret_name(str(name)):
            values = value if isinstance(value, list | tuple) else [value]
            found.update(str(v) for v in values)
    for name, value in (headers or {}).items():
        if name.lower() in {"authorization", "proxy-authorization", "cookie"} or is_secret_name(
            name
        ):
            found.add(value)
            words = value.split()
            found.update(words[1:])  # "Bearer <token>": the scheme word is no secret
    return {s for s in found if s}


class _HttpxLogFilter(logging.Filter):
    """Masks credentials in the URLs of httpx's request log, like every URL we show."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            with self.lock:
                secrets = list(self.secrets)
            record.args = tuple(
                redact(str(arg), secrets) if "://" in str(arg) else arg for arg in record.args
            )
        return True


_HTTPX_FILTER = _HttpxLogFilter()


def guard_httpx_log(secrets: Iterable[str] = ()) -> None:
    """Install (once) the filter on the ``httpx`` logger; also mask ``secrets`` there."""
    with _HTTPX_FILTER.lock:
        _HTTPX_FILTER.secrets.update(s for s in secrets if s)
    httpx_logger = logging.getLogger("httpx")
    if _HTTPX_FILTER not in httpx_logger.filters:
        httpx_logger.addFilter(_HTTPX_FILTER)
