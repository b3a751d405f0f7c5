"""The source contract: something that lists candidate pictures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from clipatlas.fetch import Fetcher
    from clipatlas.settings import Settings

__all__ = ["Candidate", "Source", "SourceContext"]


@dataclass(frozen=True)
class Candidate:
    """One picture a source offers, before anything is read or decoded.

    ``key`` identifies it within its source and is stable across runs (a relative path, a
    URL, an API image id); (source, key) is unique in a collection. ``key`` and ``uri`` are
    stored with the item, so they never carry a credential: when the address to download
    holds one (a listed URL with ``?api_key=...``), it travels in ``fetch_url`` only, which is
    used for the download and never stored.
    """

    source: str
    key: str
    uri: str
    path: Path | None = None  # local file to read, when the candidate is on disk
    size: int | None = None
    mtime: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    fetch_url: str | None = None  # the address to download, when it differs from ``uri``

    @property
    def download_url(self) -> str:
        return self.fetch_url or self.uri


@runtime_checkable
class Source(Protocol):
    name: str

    def iter_candidates(self) -> Iterator[Candidate]: ...


class SourceContext:
    """What a source factory is given besides its own options.

    Every factory is called as ``factory(context, **options)``. Network sources take the run's
    safe :class:`~clipatlas.fetch.Fetcher` from :meth:`fetcher` (created on first use, so a
    folder ingest never loads the HTTP stack).
    """

    def __init__(self, settings: Settings, make_fetcher: Callable[[], Fetcher]) -> None:
        self.settings = settings
        self._make_fetcher = make_fetcher

    def fetcher(self) -> Fetcher:
        return self._make_fetcher()
