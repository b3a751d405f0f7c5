"""The source contract: something that lists candidate pictures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Candidate", "Source"]


@dataclass(frozen=True)
class Candidate:
    """One picture a source offers, before anything is read or decoded.

    ``key`` identifies it within its source and is stable across runs (a relative path, a
    URL, an API image id); (source, key) is unique in a collection.
    """

    source: str
    key: str
    uri: str
    path: Path | None = None  # local file to read, when the candidate is on disk
    size: int | None = None
    mtime: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    name: str

    def iter_candidates(self) -> Iterator[Candidate]: ...
