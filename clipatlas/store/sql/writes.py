"""Writing items and their vectors, on a connection inside the caller's transaction (and the
questions ingestion asks before it writes: which keys and hashes are stored already).

Every write bumps the collection's version (part of the index fingerprint) and stamps the rows
it touches with it, so a derived index can catch up from the rows written since.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert, select, update

from clipatlas.errors import Reason, StoreError
from clipatlas.store.base import CollectionInfo, KnownKey, NewItem
from clipatlas.store.schema import collections, embeddings, items

__all__ = [
    "bump_version",
    "existing_sha256",
    "known_keys",
    "put_vectors",
    "reject_items",
    "write_batch",
]


def known_keys(conn: Connection, collection: CollectionInfo, source: str) -> dict[str, KnownKey]:
    q = (
        select(
            items.c.source_key,
            items.c.size_bytes,
            items.c.mtime,
            items.c.status,
            embeddings.c.item_id,
        )
        .outerjoin(embeddings, embeddings.c.item_id == items.c.id)
        .where(items.c.collection_id == collection.id, items.c.source == source)
    )
    return {
        r.source_key: KnownKey(r.size_bytes, r.mtime, r.status != "ok" or r.item_id is not None)
        for r in conn.execute(q)
    }


def existing_sha256(
    conn: Connection, collection_id: int, hashes: Sequence[str]
) -> dict[str, tuple[int, str, str]]:
    """Stored items by content hash: sha256 -> (item id, source, source key)."""
    found: dict[str, tuple[int, str, str]] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 500):
        q = select(items.c.sha256, items.c.id, items.c.source, items.c.source_key).where(
            items.c.collection_id == collection_id,
            items.c.status == "ok",
            items.c.sha256.in_(unique[start : start + 500]),
        )
        found.update({r.sha256: (r.id, r.source, r.source_key) for r in conn.execute(q)})
    return found


def _encode(vector: np.ndarray, dtype: np.dtype[Any]) -> bytes:
    return np.ascontiguousarray(vector, dtype=dtype).tobytes()


def write_batch(
    conn: Connection,
    collection: CollectionInfo,
    new_items: Sequence[NewItem],
    vectors: np.ndarray | None,
    dtype: np.dtype[Any],
) -> list[int]:
    """See :meth:`SqlStore.write_batch <clipatlas.store.sql.SqlStore.write_batch>`; vectors
    are stored as ``dtype``."""
    ok_positions = [i for i, it in enumerate(new_items) if it.status == "ok"]
    if vectors is not None:
        if collection.embedder_id is None or collection.dim is None:
            raise StoreError(f"collection {collection.name!r} has no embedder bound")
        if vectors.shape != (len(ok_positions), collection.dim):
            raise StoreError(
                f"expected vectors of shape ({len(ok_positions)}, {collection.dim}), "
                f"got {vectors.shape}"
            )
    vector_of = {pos: row for row, pos in enumerate(ok_positions)}
    now = time.time()
    ids: list[int] = []
    version = bump_version(conn, collection.id)
    _delete_keys(conn, collection.id, new_items)
    taken = {
        sha: found[0]
        for sha, found in existing_sha256(
            conn,
            collection.id,
            [it.sha256 for it in new_items if it.status == "ok" and it.sha256],
        ).items()
    }
    for pos, it in enumerate(new_items):
        if it.status == "ok" and it.sha256 in taken:
            # updated in place so the caller's counts match what was written
            it.status, it.reason = "rejected", Reason.DUPLICATE.value
            it.meta = {**it.meta, "duplicate_of": taken[it.sha256]}
        values = asdict(it)
        key = conn.execute(
            insert(items).values(
                collection_id=collection.id, version=version, created_at=now, **values
            )
        ).inserted_primary_key
        assert key is not None
        item_id = key[0]
        ids.append(int(item_id))
        if it.status == "ok" and it.sha256:
            taken[it.sha256] = int(item_id)
        if it.status == "ok" and vectors is not None:
            conn.execute(
                insert(embeddings).values(
                    item_id=item_id,
                    embedder_id=collection.embedder_id,
                    dim=collection.dim,
                    dtype=dtype.name,
                    vector=_encode(vectors[vector_of[pos]], dtype),
                )
            )
    return ids


def bump_version(conn: Connection, collection_id: int) -> int:
    """Advance the collection's write counter (part of the fingerprint); return it."""
    conn.execute(
        update(collections)
        .where(collections.c.id == collection_id)
        .values(version=collections.c.version + 1)
    )
    version: int = conn.execute(
        select(collections.c.version).where(collections.c.id == collection_id)
    ).scalar_one()
    return version


def _delete_keys(conn: Connection, collection_id: int, new_items: Sequence[NewItem]) -> None:
    by_source: dict[str, list[str]] = {}
    for it in new_items:
        by_source.setdefault(it.source, []).append(it.source_key)
    for source, keys in by_source.items():
        for start in range(0, len(keys), 500):
            old = select(items.c.id).where(
                items.c.collection_id == collection_id,
                items.c.source == source,
                items.c.source_key.in_(keys[start : start + 500]),
            )
            conn.execute(delete(embeddings).where(embeddings.c.item_id.in_(old)))
            conn.execute(delete(items).where(items.c.id.in_(old)))


def put_vectors(
    conn: Connection,
    collection: CollectionInfo,
    item_ids: Sequence[int],
    vectors: np.ndarray,
    dtype: np.dtype[Any],
) -> None:
    """See :meth:`SqlStore.put_vectors <clipatlas.store.sql.SqlStore.put_vectors>`."""
    version = bump_version(conn, collection.id)
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(delete(embeddings).where(embeddings.c.item_id.in_(chunk)))
        conn.execute(update(items).where(items.c.id.in_(chunk)).values(version=version))
    rows = [
        {
            "item_id": item_id,
            "embedder_id": collection.embedder_id,
            "dim": collection.dim,
            "dtype": dtype.name,
            "vector": _encode(vec, dtype),
        }
        for item_id, vec in zip(ids, vectors, strict=True)
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(embeddings), rows[start : start + 1000])


def reject_items(
    conn: Connection,
    collection: CollectionInfo,
    rejections: Sequence[tuple[int, str, dict[str, Any]]],
) -> int:
    """See :meth:`SqlStore.reject_items <clipatlas.store.sql.SqlStore.reject_items>`."""
    wanted = {int(i): (reason, extra) for i, reason, extra in rejections}
    changed = 0
    version = bump_version(conn, collection.id)
    ids = list(wanted)
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(items.c.id, items.c.meta).where(
                items.c.collection_id == collection.id,
                items.c.status == "ok",
                items.c.id.in_(ids[start : start + 500]),
            )
        ).all()
        for row in rows:
            reason, extra = wanted[row.id]
            conn.execute(
                update(items)
                .where(items.c.id == row.id)
                .values(
                    status="rejected",
                    reason=reason,
                    meta={**(row.meta or {}), **extra},
                    version=version,
                )
            )
        changed += len(rows)
    return changed
