"""What the rest of the engine needs from a store, and the records it exchanges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["CollectionInfo", "Fingerprint", "Item", "KnownKey", "NewItem", "Store"]


@dataclass(frozen=True)
class CollectionInfo:
    id: int
    name: str
    embedder_id: str | None
    dim: int | None


@dataclass
class NewItem:
    """An item ready to be written: a stored picture (``status="ok"``) or a rejection."""

    source: str
    source_key: str
    uri: str
    status: str = "ok"
    reason: str | None = None
    detail: str | None = None
    sha256: str | None = None
    phash: str | None = None
    format: str | None = None
    media_path: str | None = None
    thumb_path: str | None = None
    size_bytes: int | None = None
    mtime: float | None = None
    width: int | None = None
    height: int | None = None
    aspect: float | None = None
    sharpness: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    id: int
    source: str
    source_key: str
    uri: str
    status: str
    reason: str | None
    detail: str | None
    sha256: str | None
    phash: str | None
    format: str | None
    media_path: str | None
    thumb_path: str | None
    size_bytes: int | None
    width: int | None
    height: int | None
    aspect: float | None
    sharpness: float | None
    meta: Mapping[str, Any]
    has_vector: bool

    def scalars(self) -> dict[str, Any]:
        """The item's own values, without its file paths and metadata (which each caller shows
        its own way): the common part of an export row and of the web API's item."""
        return {name: getattr(self, name) for name in _SCALAR_FIELDS}


_SCALAR_FIELDS = (
    "id", "source", "source_key", "uri", "status", "reason", "detail", "sha256", "phash",
    "format", "size_bytes", "width", "height", "aspect", "sharpness", "has_vector",
)  # fmt: skip


@dataclass(frozen=True)
class KnownKey:
    size_bytes: int | None
    mtime: float | None
    complete: bool  # rejected, or stored with a vector (or stored and embedding not wanted)


@dataclass(frozen=True)
class Fingerprint:
    """Identifies one state of a collection's vectors; derived indexes are keyed by it."""

    embedder_id: str | None
    count: int
    version: int

    def token(self) -> str:
        model = (self.embedder_id or "none").replace("/", "_").replace(":", "_")
        return f"{model}-{self.count}-{self.version}"


class Store(Protocol):
    def ensure_collection(self, name: str) -> CollectionInfo: ...
    def get_collection(self, name: str) -> CollectionInfo: ...
    def list_collections(self) -> list[CollectionInfo]: ...
    def bind_embedder(
        self, collection: CollectionInfo, embedder_id: str, dim: int
    ) -> CollectionInfo: ...
    def known_keys(self, collection: CollectionInfo, source: str) -> dict[str, KnownKey]: ...
    def existing_sha256(
        self, collection: CollectionInfo, hashes: Sequence[str]
    ) -> dict[str, tuple[int, str, str]]: ...
    def write_batch(
        self,
        collection: CollectionInfo,
        new_items: Sequence[NewItem],
        vectors: np.ndarray | None = None,
    ) -> list[int]: ...
    def counts(self, collection: CollectionInfo) -> dict[str, int]: ...
    def reason_counts(self, collection: CollectionInfo, max_age: float = 0.0) -> dict[str, int]: ...
    def fingerprint(self, collection: CollectionInfo) -> Fingerprint: ...
    def load_vectors(self, collection: CollectionInfo) -> tuple[np.ndarray, np.ndarray]: ...
    def get_items(self, collection: CollectionInfo, ids: Sequence[int]) -> list[Item]: ...
    def close(self) -> None: ...
