"""Image->image and text->image search: exact cosine top-k over the collection's vectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipatlas.index.base import VectorIndex
from clipatlas.store.base import CollectionInfo, Item
from clipatlas.store.sql import SqlStore

__all__ = ["SearchHit", "search_vectors"]


@dataclass(frozen=True)
class SearchHit:
    id: int
    score: float
    uri: str  # where the original lives (a path for folder ingests, a URL for web sources)
    path: str | None  # a local file with the original bytes, when there is one
    thumbnail: str | None
    source: str
    source_key: str
    width: int | None
    height: int | None
    meta: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": round(self.score, 6),
            "uri": self.uri,
            "path": self.path,
            "thumbnail": self.thumbnail,
            "source": self.source,
            "source_key": self.source_key,
            "width": self.width,
            "height": self.height,
            "meta": dict(self.meta),
        }


def _hit(item: Item, score: float, media_root: Path) -> SearchHit:
    if item.media_path:
        path: str | None = str(media_root / item.media_path)
    elif item.source == "folder":
        path = item.uri
    else:
        path = None
    thumb = str(media_root / item.thumb_path) if item.thumb_path else None
    return SearchHit(
        id=item.id,
        score=score,
        uri=item.uri,
        path=path,
        thumbnail=thumb,
        source=item.source,
        source_key=item.source_key,
        width=item.width,
        height=item.height,
        meta=item.meta,
    )


def search_vectors(
    index: VectorIndex,
    store: SqlStore,
    collection: CollectionInfo,
    query: np.ndarray,
    k: int,
    media_root: Path,
    *,
    exclude: set[int] | None = None,
) -> list[SearchHit]:
    """Top-k items for one L2-normalised query vector, best first."""
    extra = len(exclude) if exclude else 0
    scores, ids = index.search(query.reshape(1, -1), k + extra)
    pairs = [
        (int(i), float(s))
        for i, s in zip(ids[0], scores[0], strict=True)
        if not exclude or int(i) not in exclude
    ][:k]
    items = {it.id: it for it in store.get_items(collection, [i for i, _ in pairs])}
    return [_hit(items[i], s, media_root) for i, s in pairs if i in items]
