"""Captions in the database: references, generated captions (or their errors), text vectors
and the train/test split. Reads items, writes only the caption tables."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from clipatlas.captions.records import Caption, KeyState, caption_from_row, ensure_tables
from clipatlas.store.base import CollectionInfo
from clipatlas.store.caption_tables import (
    caption_splits,
    caption_vectors,
    captions,
)
from clipatlas.store.schema import items
from clipatlas.store.sql import SqlStore, transaction

__all__ = ["Caption", "CaptionStore", "KeyState", "ensure_tables"]

_CHUNK = 500


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class CaptionStore:
    """The caption tables of one collection."""

    def __init__(self, store: SqlStore, collection: CollectionInfo) -> None:
        self.store, self.collection = store, collection
        self.dtype = store.vector_dtype

    def _tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.store.engine)

    # -- items ---------------------------------------------------------------------------------

    def key_states(self, source: str, keys: Sequence[str]) -> dict[str, KeyState]:
        out: dict[str, KeyState] = {}
        with self._tx() as conn:
            for chunk in _chunks(list(keys)):
                q = select(
                    items.c.source_key,
                    items.c.id,
                    items.c.status,
                    items.c.reason,
                    items.c.detail,
                    items.c.meta,
                ).where(
                    items.c.collection_id == self.collection.id,
                    items.c.source == source,
                    items.c.source_key.in_(chunk),
                )
                for r in conn.execute(q):
                    dup = (r.meta or {}).get("duplicate_of")
                    out[r.source_key] = KeyState(
                        r.id, r.status, r.reason, r.detail, int(dup) if dup is not None else None
                    )
        return out

    def stored_item_ids(self) -> list[int]:
        q = (
            select(items.c.id)
            .where(items.c.collection_id == self.collection.id, items.c.status == "ok")
            .order_by(items.c.id)
        )
        with self._tx() as conn:
            return [int(r.id) for r in conn.execute(q)]

    # -- writing -------------------------------------------------------------------------------

    def replace_references(self, label: str, texts: Mapping[int, Sequence[str]]) -> int:
        """Make ``texts`` the reference captions of ``label`` for these items: captions that
        are already there stay (with their vectors), others are added or removed. Returns how
        many reference captions these items now have."""
        now = time.time()
        ids = list(texts)
        with self._tx() as conn:
            have: dict[int, dict[str, int]] = {}
            for chunk in _chunks(ids):
                q = select(captions.c.id, captions.c.item_id, captions.c.text).where(
                    captions.c.item_id.in_(chunk),
                    captions.c.kind == "reference",
                    captions.c.model == label,
                )
                for r in conn.execute(q):
                    have.setdefault(int(r.item_id), {})[str(r.text)] = int(r.id)
            stale = [cid for i in ids for t, cid in have.get(i, {}).items() if t not in texts[i]]
            for chunk in _chunks(stale):
                conn.execute(delete(captions).where(captions.c.id.in_(chunk)))
            rows = [
                {
                    "collection_id": self.collection.id,
                    "item_id": item_id,
                    "kind": "reference",
                    "status": "ok",
                    "text": text,
                    "model": label,
                    "prompt_version": "",
                    "provenance": {},
                    "created_at": now,
                }
                for item_id, group in texts.items()
                for text in group
                if text not in have.get(item_id, {})
            ]
            for chunk in _chunks(rows):
                conn.execute(insert(captions), list(chunk))
        return sum(len(group) for group in texts.values())

    def add_generated(
        self,
        item_id: int,
        model: str,
        prompt_version: str,
        *,
        text: str | None = None,
        language: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a generated caption (``text``) or its failure (``reason``, ``detail``),
        replacing any earlier attempt of the same model and prompt version."""
        with self._tx() as conn:
            conn.execute(
                delete(captions).where(
                    captions.c.item_id == item_id,
                    captions.c.kind == "generated",
                    captions.c.model == model,
                    captions.c.prompt_version == prompt_version,
                )
            )
            key = conn.execute(
                insert(captions).values(
                    collection_id=self.collection.id,
                    item_id=item_id,
                    kind="generated",
                    status="ok" if reason is None else "error",
                    text=text,
                    model=model,
                    prompt_version=prompt_version,
                    language=language,
                    reason=reason,
                    detail=detail,
                    provenance=dict(provenance or {}),
                    created_at=time.time(),
                )
            ).inserted_primary_key
        assert key is not None
        return int(key[0])

    # -- reading -------------------------------------------------------------------------------

    def done_items(self, model: str, prompt_version: str) -> set[int]:
        """Items with a successful generated caption of this model and prompt version."""
        q = select(captions.c.item_id).where(
            captions.c.collection_id == self.collection.id,
            captions.c.kind == "generated",
            captions.c.status == "ok",
            captions.c.model == model,
            captions.c.prompt_version == prompt_version,
        )
        with self._tx() as conn:
            return {int(r.item_id) for r in conn.execute(q)}

    def captions_of(
        self, item_ids: Sequence[int], *, kinds: Sequence[str] = ("reference", "generated")
    ) -> dict[int, list[Caption]]:
        """Captions (ok ones and errors) of these items, by item, oldest first."""
        out: dict[int, list[Caption]] = {}
        with self._tx() as conn:
            for chunk in _chunks([int(i) for i in item_ids]):
                q = (
                    select(captions)
                    .where(captions.c.item_id.in_(chunk), captions.c.kind.in_(list(kinds)))
                    .order_by(captions.c.id)
                )
                for r in conn.execute(q):
                    out.setdefault(int(r.item_id), []).append(caption_from_row(r))
        return out

    def generated(self, model: str | None = None, *, status: str | None = None) -> list[Caption]:
        q = select(captions).where(
            captions.c.collection_id == self.collection.id, captions.c.kind == "generated"
        )
        if model is not None:
            q = q.where(captions.c.model == model)
        if status is not None:
            q = q.where(captions.c.status == status)
        with self._tx() as conn:
            return [caption_from_row(r) for r in conn.execute(q.order_by(captions.c.id))]

    def counts(self) -> dict[str, int]:
        q = (
            select(captions.c.kind, captions.c.status, func.count())
            .where(captions.c.collection_id == self.collection.id)
            .group_by(captions.c.kind, captions.c.status)
        )
        with self._tx() as conn:
            return {f"{kind}_{status}": int(n) for kind, status, n in conn.execute(q)}

    def vector_models(self) -> list[str]:
        """The text models the collection's caption vectors come from."""
        q = (
            select(caption_vectors.c.embedder_id)
            .select_from(
                caption_vectors.join(captions, captions.c.id == caption_vectors.c.caption_id)
            )
            .where(captions.c.collection_id == self.collection.id)
            .distinct()
        )
        with self._tx() as conn:
            return sorted(str(r.embedder_id) for r in conn.execute(q))

    def vector_state(self, embedder_id: str) -> tuple[int, int, int]:
        """(captions, highest caption id, vectors of ``embedder_id``): changes whenever a
        caption or vector is added, replaced or removed, so caches keyed by it stay true."""
        base = select(func.count(), func.max(captions.c.id)).where(
            captions.c.collection_id == self.collection.id
        )
        vq = (
            select(func.count())
            .select_from(
                caption_vectors.join(captions, captions.c.id == caption_vectors.c.caption_id)
            )
            .where(
                captions.c.collection_id == self.collection.id,
                caption_vectors.c.embedder_id == embedder_id,
            )
        )
        with self._tx() as conn:
            n, top = conn.execute(base).one()
            vectors = conn.execute(vq).scalar_one()
        return int(n), int(top or 0), int(vectors)

    # -- text vectors --------------------------------------------------------------------------

    def unembedded(self, embedder_id: str) -> list[tuple[int, str]]:
        """(caption id, text) of ok captions without a vector of ``embedder_id``."""
        q = (
            select(captions.c.id, captions.c.text)
            .outerjoin(
                caption_vectors,
                and_(
                    caption_vectors.c.caption_id == captions.c.id,
                    caption_vectors.c.embedder_id == embedder_id,
                ),
            )
            .where(
                captions.c.collection_id == self.collection.id,
                captions.c.status == "ok",
                caption_vectors.c.caption_id.is_(None),
            )
            .order_by(captions.c.id)
        )
        with self._tx() as conn:
            return [(int(r.id), str(r.text)) for r in conn.execute(q)]

    def put_vectors(
        self, embedder_id: str, caption_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        ids = [int(i) for i in caption_ids]
        rows = [
            {
                "caption_id": cid,
                "embedder_id": embedder_id,
                "dim": int(vec.shape[0]),
                "dtype": self.dtype.name,
                "vector": np.ascontiguousarray(vec, dtype=self.dtype).tobytes(),
            }
            for cid, vec in zip(ids, vectors, strict=True)
        ]
        with self._tx() as conn:
            for chunk in _chunks(ids):
                conn.execute(delete(caption_vectors).where(caption_vectors.c.caption_id.in_(chunk)))
            for chunk in _chunks(rows):
                conn.execute(insert(caption_vectors), list(chunk))

    def load_vectors(self, embedder_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(caption ids, item ids, float32 matrix) of ok captions of stored items."""
        q = (
            select(
                captions.c.id, captions.c.item_id, caption_vectors.c.dtype, caption_vectors.c.vector
            )
            .join(caption_vectors, caption_vectors.c.caption_id == captions.c.id)
            .join(items, items.c.id == captions.c.item_id)
            .where(
                captions.c.collection_id == self.collection.id,
                captions.c.status == "ok",
                items.c.status == "ok",
                caption_vectors.c.embedder_id == embedder_id,
            )
            .order_by(captions.c.id)
        )
        cids, iids, rows = [], [], []
        with self._tx() as conn:
            for r in conn.execute(q):
                cids.append(int(r.id))
                iids.append(int(r.item_id))
                rows.append(np.frombuffer(r.vector, dtype=np.dtype(r.dtype)))
        matrix = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
        return np.asarray(cids, np.int64), np.asarray(iids, np.int64), matrix

    def keyword_matches(self, words: Sequence[str], limit: int) -> list[tuple[int, int, str]]:
        """(caption id, item id, text) of ok captions of stored items containing any word
        (case-insensitive substring); ranking is the caller's."""
        if not words:
            return []
        likes = [
            func.lower(captions.c.text).like(f"%{_escape(w.lower())}%", escape="\\") for w in words
        ]
        q = (
            select(captions.c.id, captions.c.item_id, captions.c.text)
            .join(items, items.c.id == captions.c.item_id)
            .where(
                captions.c.collection_id == self.collection.id,
                captions.c.status == "ok",
                items.c.status == "ok",
                or_(*likes),
            )
            .order_by(captions.c.id)
            .limit(limit)
        )
        with self._tx() as conn:
            return [(int(r.id), int(r.item_id), str(r.text)) for r in conn.execute(q)]

    def texts_of(self, caption_ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        with self._tx() as conn:
            for chunk in _chunks([int(i) for i in caption_ids]):
                q = select(captions.c.id, captions.c.text).where(captions.c.id.in_(chunk))
                out.update({int(r.id): str(r.text) for r in conn.execute(q)})
        return out

    # -- split ---------------------------------------------------------------------------------

    def set_split(self, assignment: Mapping[int, str], seed: int, *, replace: bool) -> None:
        now = time.time()
        with self._tx() as conn:
            if replace:
                conn.execute(
                    delete(caption_splits).where(
                        caption_splits.c.collection_id == self.collection.id
                    )
                )
            else:
                ids = list(assignment)
                for chunk in _chunks(ids):
                    conn.execute(delete(caption_splits).where(caption_splits.c.item_id.in_(chunk)))
            rows = [
                {
                    "item_id": i,
                    "collection_id": self.collection.id,
                    "split": s,
                    "seed": seed,
                    "created_at": now,
                }
                for i, s in assignment.items()
            ]
            for chunk in _chunks(rows):
                conn.execute(insert(caption_splits), list(chunk))

    def splits(self) -> dict[int, str]:
        q = select(caption_splits.c.item_id, caption_splits.c.split).where(
            caption_splits.c.collection_id == self.collection.id
        )
        with self._tx() as conn:
            return {int(r.item_id): str(r.split) for r in conn.execute(q)}

    def split_seed(self) -> int | None:
        q = select(caption_splits.c.seed).where(
            caption_splits.c.collection_id == self.collection.id
        )
        with self._tx() as conn:
            value = conn.execute(q.limit(1)).scalar_one_or_none()
        return None if value is None else int(value)


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
