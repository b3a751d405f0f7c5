"""Statements and row decoding shared by the store's reads: items by id, the vectors of
stored items, and rows turned into :class:`~clipatlas.store.base.Item` records or a float32
matrix."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select

from clipatlas.store.base import CollectionInfo, Item
from clipatlas.store.schema import embeddings, items

__all__ = ["ITEMS_BY_ID", "decode_vectors", "item_from_row", "stored_vectors"]

# Items by id with whether each has a vector: built once (pages and searches hydrate their hits
# with it on every request; building the statement each time cost a third of the lookup). By
# primary key only: with ``collection_id = ?`` in the WHERE clause SQLite (without ANALYZE
# statistics) scans the collection's index instead, 100x slower on a 100k collection; the
# collection is checked on the rows instead.
ITEMS_BY_ID = (
    select(items, embeddings.c.item_id.label("vec_item"))
    .outerjoin(embeddings, embeddings.c.item_id == items.c.id)
    .where(items.c.id.in_(bindparam("ids", expanding=True)))
)


def stored_vectors(collection: CollectionInfo, *columns: Any) -> Any:
    """SELECT ``columns`` of the embeddings of the collection's stored items, by item id."""
    return (
        select(*columns)
        .join(items, embeddings.c.item_id == items.c.id)
        .where(items.c.collection_id == collection.id, items.c.status == "ok")
        .order_by(embeddings.c.item_id)
    )


def decode_vectors(
    collection: CollectionInfo, rows: Iterable[Any], seen: Callable[[int], Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of the (item_id, dtype, vector) rows whose vector is not NULL;
    ``seen`` is told every row's id."""
    ids: list[int] = []
    chunks: list[np.ndarray] = []
    for row in rows:
        if seen is not None:
            seen(row.item_id)
        if row.vector is not None:
            ids.append(row.item_id)
            chunks.append(np.frombuffer(row.vector, dtype=np.dtype(row.dtype)))
    dim = collection.dim or 0
    matrix = np.vstack(chunks).astype(np.float32) if chunks else np.zeros((0, dim), np.float32)
    return np.asarray(ids, dtype=np.int64), matrix


def item_from_row(r: Any) -> Item:
    return Item(
        id=r.id,
        source=r.source,
        source_key=r.source_key,
        uri=r.uri,
        status=r.status,
        reason=r.reason,
        detail=r.detail,
        sha256=r.sha256,
        phash=r.phash,
        format=r.format,
        media_path=r.media_path,
        thumb_path=r.thumb_path,
        size_bytes=r.size_bytes,
        width=r.width,
        height=r.height,
        aspect=r.aspect,
        sharpness=r.sharpness,
        meta=r.meta or {},
        has_vector=r.vec_item is not None,
    )
