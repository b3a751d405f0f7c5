"""Talking to the CivitAI REST API v1: one page at a time, tolerant of every shape it serves.

The API changed shape over the years and contradicts its own docs, so everything here reads
defensively: keys may be missing or null, levels may be ints or strings, ``nextCursor`` may be
a string or a number, and an HTML page may arrive where JSON was expected. Pure helpers
(:func:`nsfw_level`, :func:`with_width`, :func:`image_id_of`, :func:`json_safe`) turn raw values
into the provenance a :class:`~clipatlas.sources.base.Candidate` carries; :class:`CivitaiClient`
fetches pages through the safe :class:`~clipatlas.fetch.Fetcher` and maps failures to
:class:`~clipatlas.errors.CivitaiError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from clipatlas.errors import CivitaiError, FetchError
from clipatlas.fetch import Fetcher, scrub

__all__ = [
    "NSFW_BITS",
    "CivitaiClient",
    "Page",
    "as_dict",
    "as_list",
    "image_id_of",
    "json_safe",
    "nsfw_level",
    "with_width",
]

#: Browsing-level bit flags, and the old string scale mapped onto them (``X`` is 8 or 16).
NSFW_BITS: dict[str, int] = {
    "none": 1, "pg": 1, "soft": 2, "pg13": 2, "pg-13": 2, "mature": 4, "r": 4,
    "x": 8, "xxx": 16, "blocked": 32,
}  # fmt: skip

_OPTION = re.compile(r"^[A-Za-z]+=[^/,]*$")
_STATUS_HINTS = {
    401: "unauthorized: this listing needs a valid API key",
    403: "forbidden: probably a Cloudflare challenge page or a key without access",
    404: "not found: no such model, version or listing (or it is hidden)",
    405: "method not allowed",
    400: "bad request: a parameter value was refused",
}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def nsfw_level(value: Any) -> int | None:
    """The bit level of an int-or-string NSFW value (``3``, ``"3"``, ``"Soft"``); else None.

    Booleans are the legacy ``nsfw`` flag, not a level, and give None.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        return NSFW_BITS.get(text.lower())
    return None


def image_id_of(image: Mapping[str, Any], url: str) -> int | None:
    """The image id: the ``id`` field, else the URL's numeric file name (``.../61830412.jpeg``).

    ``/models/:id`` and ``/model-versions/:id`` leave ``id`` out of their image objects.
    """
    raw = image.get("id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    stem = urlsplit(url).path.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def with_width(url: str, width: int | None) -> str:
    """``url`` with its CivitAI options segment (``width=450``, ``original=true``, ...) replaced
    by ``width=<width>``; unchanged when ``width`` is None or the URL carries no such segment.
    """
    if width is None:
        return url
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for index in range(len(segments) - 2, 0, -1):  # never the file name itself
        options = segments[index].split(",")
        keys = {o.split("=", 1)[0] for o in options if _OPTION.match(o)}
        if len(keys) == len(options) and keys & {"width", "original"}:
            segments[index] = f"width={int(width)}"
            return urlunsplit(parts._replace(path="/".join(segments)))
    return url


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of parsed JSON with non-finite floats as None and keys as strings."""
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _cursor_text(value: Any) -> str | None:
    """``nextCursor`` as a string: old responses sent it as a JSON number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items and how to ask for the next one (None at the end)."""

    items: list[Any]
    next_params: dict[str, str] | None


class CivitaiClient:
    """GETs against ``base_url`` with the API key as a Bearer header (never ``?token=``)."""

    def __init__(self, base_url: str, fetcher: Fetcher, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.fetcher = fetcher
        self._secrets = [api_key] if api_key else []
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One JSON object from ``{base_url}/{path}``; :class:`CivitaiError` otherwise."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            body = self.fetcher.get_json(url, params=params or None, headers=self._headers)
        except FetchError as exc:
            raise self._error(exc) from None
        if not isinstance(body, dict):
            raise CivitaiError(
                f"{self._show(url)}: expected a JSON object, got {type(body).__name__}"
            )
        error = body.get("error")
        if error and not body.get("items") and "id" not in body:
            message = error if isinstance(error, str) else body.get("message") or str(error)
            raise CivitaiError(f"{self._show(url)}: {self._show(str(message))[:300]}")
        return body

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Page]:
        """Walk a cursor-paginated listing to its end.

        Follows ``metadata.nextCursor`` (a string or a number); when it is null but
        ``nextPage`` is present (a known server bug) the cursor or page is read from that URL,
        which is never fetched itself (it names civitai.com whatever base URL is configured).
        Short and empty pages do not end the walk; a repeated cursor does.
        """
        current: dict[str, Any] = dict(params)
        seen: set[str] = set()
        while True:
            body = self.get(path, current)
            page_items = as_list(body.get("items"))
            nxt = self._next_params(as_dict(body.get("metadata")))
            if nxt is not None:
                marker = repr(sorted(nxt.items()))
                if marker in seen:
                    nxt = None
                seen.add(marker)
            yield Page(page_items, nxt)
            if nxt is None:
                return
            current = {k: v for k, v in current.items() if k not in ("cursor", "page")}
            current.update(nxt)

    @staticmethod
    def _next_params(metadata: Mapping[str, Any]) -> dict[str, str] | None:
        cursor = _cursor_text(metadata.get("nextCursor"))
        if cursor is not None:
            return {"cursor": cursor}
        next_page = metadata.get("nextPage")
        if isinstance(next_page, str) and next_page:
            query = parse_qs(urlsplit(next_page).query)
            if query.get("cursor"):
                return {"cursor": query["cursor"][-1]}
            if query.get("page"):
                return {"page": query["page"][-1]}
        return None

    def _show(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _error(self, exc: FetchError) -> CivitaiError:
        detail = self._show(exc.detail)
        if exc.status is not None and 200 <= exc.status < 300 and "expected JSON" in detail:
            detail = (
                f"{detail}: an HTML page came back instead of JSON "
                "(Cloudflare challenge or maintenance page)"
            )
        elif exc.status in _STATUS_HINTS:
            detail = (
                f"{_STATUS_HINTS[exc.status]} ({detail})" if detail else _STATUS_HINTS[exc.status]
            )
        else:
            detail = f"{exc.reason.value}" + (f" ({detail})" if detail else "")
        return CivitaiError(f"{self._show(exc.url)}: {detail}", exc.status)
