"""``urls``: pictures listed by URL in a text, CSV or JSON Lines file.

- ``.txt``: one URL per line; blank lines and ``#`` comments are skipped.
- ``.csv``: a header row; the URL is in ``url_column``, every other column is kept as meta.
- ``.jsonl`` (or ``.ndjson``): one JSON object per line; the URL is its ``url_column`` field,
  every other field is kept as meta. Lines that are not a JSON object with a string URL are
  skipped and their line numbers listed in :attr:`UrlListSource.skipped_lines`.

The key (and stored ``uri``) of a candidate is its URL with surrounding whitespace removed and
credentials masked (:func:`~clipatlas.fetch.redact.redact`: ``?api_key=***``, no userinfo): the
full URL is used for the download only, never stored. A URL listed twice (after masking) is
offered once. URLs that are not ``http``/``https`` with a host are skipped and listed in
:attr:`UrlListSource.invalid_urls` as ``(line, url)``. A missing file, an unknown extension or
a missing URL column raise :class:`~clipatlas.errors.SourceError`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from clipatlas.errors import SourceError
from clipatlas.fetch.redact import redact
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.registry import Registry
    from clipatlas.sources.base import SourceContext

__all__ = ["UrlListSource", "register"]

_Row = tuple[int, str, dict[str, Any]]


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


class UrlListSource:
    name = "urls"

    def __init__(
        self, path: str | os.PathLike[str], *, url_column: str = "url", limit: int | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise SourceError(f"URL list {self.path} does not exist or is not a file")
        suffix = self.path.suffix.lower()
        readers = {".txt": self._rows_txt, ".csv": self._rows_csv, ".jsonl": self._rows_jsonl}
        readers[".ndjson"] = self._rows_jsonl
        if suffix not in readers:
            raise SourceError(
                f"URL list {self.path}: unknown extension {suffix!r} (use .txt, .csv or .jsonl)"
            )
        if limit is not None and limit < 0:
            raise SourceError(f"limit must not be negative, got {limit}")
        self._reader = readers[suffix]
        self.url_column, self.limit = url_column, limit
        self.skipped_lines: list[int] = []
        self.invalid_urls: list[tuple[int, str]] = []
        self.duplicates = 0
        if suffix == ".csv":
            self._check_header()

    def __repr__(self) -> str:
        return f"UrlListSource({str(self.path)!r}, url_column={self.url_column!r})"

    def iter_candidates(self) -> Iterator[Candidate]:
        self.skipped_lines, self.invalid_urls, self.duplicates = [], [], 0
        seen: set[str] = set()
        for line, raw, meta in self._reader():
            if self.limit is not None and len(seen) >= self.limit:
                return
            url = raw.strip()
            if not _is_web_url(url):
                self.invalid_urls.append((line, redact(url)))
                continue
            key = redact(url)
            if key in seen:
                self.duplicates += 1
                continue
            seen.add(key)
            fetch_url = url if key != url else None
            yield Candidate(source=self.name, key=key, uri=key, meta=meta, fetch_url=fetch_url)

    def _open(self) -> Any:
        try:
            return self.path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise SourceError(f"cannot read URL list {self.path}: {exc}") from None

    def _check_header(self) -> None:
        with self._open() as fh:
            fields = next(csv.reader(fh), [])
        if self.url_column not in fields:
            raise SourceError(
                f"URL list {self.path}: no column {self.url_column!r} "
                f"(columns: {', '.join(fields) or 'none'})"
            )

    def _rows_txt(self) -> Iterator[_Row]:
        with self._open() as fh:
            for line, text in enumerate(fh, start=1):
                stripped = text.strip()
                if stripped and not stripped.startswith("#"):
                    yield line, stripped, {}

    def _rows_csv(self) -> Iterator[_Row]:
        with self._open() as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                line = reader.line_num
                url = row.get(self.url_column)
                if not isinstance(url, str) or not url.strip():
                    self.skipped_lines.append(line)
                    continue
                meta = {
                    k: v for k, v in row.items() if k != self.url_column and k is not None
                }  # fmt: skip
                yield line, url, meta

    def _rows_jsonl(self) -> Iterator[_Row]:
        with self._open() as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except ValueError:
                    self.skipped_lines.append(line)
                    continue
                url = obj.get(self.url_column) if isinstance(obj, dict) else None
                if not isinstance(url, str):
                    self.skipped_lines.append(line)
                    continue
                yield line, url, {k: v for k, v in obj.items() if k != self.url_column}


def _factory(
    context: SourceContext,
    *,
    path: str | os.PathLike[str],
    url_column: str = "url",
    limit: int | None = None,
) -> UrlListSource:
    """``registry.create_source("urls", context, path=..., url_column=..., limit=...)``."""
    return UrlListSource(path, url_column=url_column, limit=limit)


def register(registry: Registry) -> None:
    registry.add_source("urls", _factory)
