"""Retrieval for the prompt: a picture's nearest captioned neighbours in the collection.

Neighbours are searched among items that have captions (reference captions first; an item
with none lends its generated ones), with the collection's CLIP vectors (exact cosine).
``allowed`` restricts them (caption-eval uses the train split only) and ``exclude`` drops the
item itself.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipatlas.captions.prompt import Neighbour
from clipatlas.captions.store import CaptionStore
from clipatlas.errors import ImageError, Reason
from clipatlas.images import ImageLimits, decode_image
from clipatlas.store.base import Item

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["Retriever", "load_picture", "picture_path"]


def picture_path(item: Item, media_root: Path) -> Path | None:
    """The local file with an item's original bytes, when there is one."""
    if item.media_path:
        return media_root / item.media_path
    uri = Path(item.uri)
    return uri if uri.is_absolute() and uri.is_file() else None


def load_picture(engine: Engine, item: Item) -> Image.Image:
    """Decode an item's picture (bounded, like ingest); :class:`ImageError` if it cannot."""
    path = picture_path(item, engine.media_root)
    if path is None:
        raise ImageError(item.uri, Reason.UNREADABLE, "no local copy of the picture")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(item.uri, Reason.UNREADABLE, exc.strerror or str(exc)) from exc
    limits = ImageLimits(
        max_pixels=engine.settings.max_pixels, min_side=1, max_bytes=engine.settings.max_file_bytes
    )
    return decode_image(data, item.uri, limits).image


class Retriever:
    """k nearest captioned neighbours of a stored item or of a vector."""

    def __init__(self, engine: Engine, cstore: CaptionStore, k: int = 5) -> None:
        self.engine, self.k = engine, k
        index = engine.index()
        self.ids, self.matrix = index.ids, index.matrix
        by_item = cstore.captions_of(self.ids.tolist())
        self.captions: dict[int, tuple[str, ...]] = {}
        for item_id, rows in by_item.items():
            refs = [c.text for c in rows if c.kind == "reference" and c.status == "ok" and c.text]
            gen = [c.text for c in rows if c.kind == "generated" and c.status == "ok" and c.text]
            if refs or gen:
                self.captions[item_id] = tuple(refs or gen)
        self._captioned = np.isin(self.ids, np.fromiter(self.captions, np.int64))

    def vector_of(self, item_id: int) -> np.ndarray | None:
        rows = np.flatnonzero(self.ids == item_id)
        return None if not len(rows) else np.asarray(self.matrix[rows[0]], np.float32)

    def neighbours(
        self,
        vector: np.ndarray,
        *,
        exclude: Collection[int] = (),
        allowed: Collection[int] | None = None,
        k: int | None = None,
    ) -> list[Neighbour]:
        k = self.k if k is None else k
        if k < 1 or not self._captioned.any():
            return []
        mask = self._captioned.copy()
        if exclude:
            mask &= ~np.isin(self.ids, np.fromiter(exclude, np.int64))
        if allowed is not None:
            mask &= np.isin(self.ids, np.fromiter(allowed, np.int64))
        rows = np.flatnonzero(mask)
        if not len(rows):
            return []
        scores = np.asarray(self.matrix[rows], np.float32) @ np.asarray(vector, np.float32)
        top = np.argsort(-scores, kind="stable")[:k]
        return [
            Neighbour(
                int(self.ids[rows[t]]), float(scores[t]), self.captions[int(self.ids[rows[t]])]
            )
            for t in top
        ]
