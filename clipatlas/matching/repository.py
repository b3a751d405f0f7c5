"""Records, their vectors and calibrations in the collection's database.

Rows of one import and their vectors are written in one transaction; a record's photo is an
ordinary item (written by the ingest pipeline) that the record links by id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, desc, func, insert, select

from clipatlas.matching.records import Record
from clipatlas.matching.recordset import RecordSet
from clipatlas.store.base import CollectionInfo
from clipatlas.store.record_tables import match_calibrations, record_vectors, records
from clipatlas.store.schema import embeddings, items
from clipatlas.store.sql import transaction

__all__ = ["FieldVectors", "PhotoLink", "RecordRepository", "signature"]

_STEP = 500
_SIGNED = ("kind", "text", "fields", "category", "place", "lat", "lon", "time", "photo_uri", "meta")


def _signed(*values: Any) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)


def signature(r: Record) -> str:
    """What a record says (every stored field): equal signatures are the same record."""
    return _signed(r.kind, r.text, r.fields, r.category, r.place, r.lat, r.lon, r.time,
                   r.photo, r.meta)  # fmt: skip


@dataclass(frozen=True)
class PhotoLink:
    item_id: int | None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class FieldVectors:
    """Vectors of one field for some of the records being written (``rows`` index them)."""

    embedder_id: str
    rows: list[int]
    matrix: np.ndarray


class RecordRepository:
    def __init__(self, engine: Engine, collection: CollectionInfo, dtype: str = "float16") -> None:
        self.engine, self.collection, self.dtype = engine, collection, np.dtype(dtype)

    # -- writing -----------------------------------------------------------------------------

    def stored_signatures(self, keys: Sequence[str]) -> dict[str, str]:
        """Key -> :func:`signature` of the stored records among ``keys``."""
        out: dict[str, str] = {}
        cols = [records.c[name] for name in ("key", *_SIGNED)]
        with transaction(self.engine) as conn:
            for start in range(0, len(keys), _STEP):
                q = select(*cols).where(
                    records.c.collection_id == self.collection.id,
                    records.c.key.in_(list(keys[start : start + _STEP])),
                )
                out.update(
                    (r.key, _signed(*(getattr(r, n) for n in _SIGNED))) for r in conn.execute(q)
                )
        return out

    def next_import_id(self) -> int:
        with transaction(self.engine) as conn:
            last = conn.execute(
                select(func.max(records.c.import_id)).where(
                    records.c.collection_id == self.collection.id
                )
            ).scalar_one_or_none()
        return int(last or 0) + 1

    def write(
        self,
        batch: Sequence[Record],
        photos: Mapping[str, PhotoLink],
        vectors: Mapping[str, FieldVectors],
        import_id: int,
    ) -> None:
        """Insert (or replace, by key) records and their field vectors in one transaction."""
        now = time.time()
        with transaction(self.engine) as conn:
            keys = [r.key for r in batch]
            for start in range(0, len(keys), _STEP):
                conn.execute(
                    delete(records).where(
                        records.c.collection_id == self.collection.id,
                        records.c.key.in_(keys[start : start + _STEP]),
                    )
                )
            ids: list[int] = []
            for r in batch:
                link = photos.get(r.key, PhotoLink(None))
                row = conn.execute(
                    insert(records).values(
                        collection_id=self.collection.id,
                        key=r.key,
                        kind=r.kind,
                        text=r.text,
                        fields=r.fields,
                        category=r.category,
                        place=r.place,
                        lat=r.lat,
                        lon=r.lon,
                        time=r.time,
                        photo_uri=r.photo,
                        photo_item_id=link.item_id,
                        photo_reason=link.reason,
                        photo_detail=link.detail,
                        meta=r.meta,
                        import_id=import_id,
                        created_at=now,
                    )
                ).inserted_primary_key
                assert row is not None
                ids.append(int(row[0]))
            rows = [
                {
                    "record_id": ids[i],
                    "field": name,
                    "embedder_id": fv.embedder_id,
                    "dim": int(fv.matrix.shape[1]),
                    "dtype": self.dtype.name,
                    "vector": np.ascontiguousarray(vec, dtype=self.dtype).tobytes(),
                }
                for name, fv in vectors.items()
                for i, vec in zip(fv.rows, fv.matrix, strict=True)
            ]
            for start in range(0, len(rows), 1000):
                conn.execute(insert(record_vectors), rows[start : start + 1000])

    # -- photos (items written by the ingest pipeline) -----------------------------------------

    def photo_items(self, source: str, keys: Sequence[str]) -> dict[str, Any]:
        """Source key -> item row (id, status, reason, detail, meta) for a record photo source."""
        out: dict[str, Any] = {}
        with transaction(self.engine) as conn:
            for start in range(0, len(keys), _STEP):
                q = select(
                    items.c.id,
                    items.c.source_key,
                    items.c.status,
                    items.c.reason,
                    items.c.detail,
                    items.c.meta,
                ).where(
                    items.c.collection_id == self.collection.id,
                    items.c.source == source,
                    items.c.source_key.in_(list(keys[start : start + _STEP])),
                )
                out.update({r.source_key: r for r in conn.execute(q)})
        return out

    def item_vectors(self, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        wanted = sorted({int(i) for i in item_ids})
        with transaction(self.engine) as conn:
            for start in range(0, len(wanted), _STEP):
                q = select(embeddings.c.item_id, embeddings.c.dtype, embeddings.c.vector).where(
                    embeddings.c.item_id.in_(wanted[start : start + _STEP])
                )
                for r in conn.execute(q):
                    out[r.item_id] = np.frombuffer(r.vector, dtype=np.dtype(r.dtype)).astype(
                        np.float32
                    )
        return out

    # -- reading -----------------------------------------------------------------------------

    def field_models(self) -> dict[str, str]:
        """Field -> embedder id of the stored record vectors (one model per field)."""
        q = (
            select(record_vectors.c.field, record_vectors.c.embedder_id)
            .join(records, records.c.id == record_vectors.c.record_id)
            .where(records.c.collection_id == self.collection.id)
            .distinct()
        )
        with transaction(self.engine) as conn:
            return {r.field: r.embedder_id for r in conn.execute(q)}

    def count(self) -> int:
        with transaction(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(records)
                    .where(records.c.collection_id == self.collection.id)
                ).scalar_one()
            )

    def load(self, text_dim: int, clip_dim: int) -> RecordSet:
        """Every record of the collection with its vectors and photo vector, ordered by id."""
        with transaction(self.engine) as conn:
            rows = conn.execute(
                select(records)
                .where(records.c.collection_id == self.collection.id)
                .order_by(records.c.id)
            ).all()
            position = {r.id: i for i, r in enumerate(rows)}
            n = len(rows)
            mats = {
                "text": np.zeros((n, text_dim), np.float32),
                "place": np.zeros((n, text_dim), np.float32),
                "clip_text": np.zeros((n, clip_dim), np.float32),
            }
            has = {f: np.zeros(n, bool) for f in mats}
            q = (
                select(record_vectors)
                .join(records, records.c.id == record_vectors.c.record_id)
                .where(records.c.collection_id == self.collection.id)
            )
            for v in conn.execution_options(yield_per=5000).execute(q):
                if v.field in mats:
                    mats[v.field][position[v.record_id]] = np.frombuffer(
                        v.vector, dtype=np.dtype(v.dtype)
                    )
                    has[v.field][position[v.record_id]] = True
        photo_ids = [r.photo_item_id for r in rows]
        found = self.item_vectors([i for i in photo_ids if i is not None])
        photo = np.zeros((n, clip_dim), np.float32)
        has_photo = np.zeros(n, bool)
        for i, item_id in enumerate(photo_ids):
            if item_id is not None and item_id in found:
                photo[i], has_photo[i] = found[item_id], True

        def floats(name: str) -> np.ndarray:
            return np.asarray(
                [np.nan if getattr(r, name) is None else getattr(r, name) for r in rows],
                dtype=np.float64,
            )

        return RecordSet(
            keys=[r.key for r in rows],
            kinds=[r.kind for r in rows],
            categories=[r.category for r in rows],
            texts=[r.text for r in rows],
            photo_item_ids=photo_ids,
            lat=floats("lat"),
            lon=floats("lon"),
            time=floats("time"),
            text=mats["text"],
            has_text=has["text"],
            clip_text=mats["clip_text"],
            photo=photo,
            has_photo=has_photo,
            place=mats["place"],
            has_place=has["place"],
            import_ids=[r.import_id for r in rows],
        )

    def record_rows(self, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with transaction(self.engine) as conn:
            for start in range(0, len(keys), _STEP):
                q = select(records).where(
                    records.c.collection_id == self.collection.id,
                    records.c.key.in_(list(keys[start : start + _STEP])),
                )
                out.update({r.key: r for r in conn.execute(q)})
        return out

    # -- calibrations ------------------------------------------------------------------------

    def save_calibration(self, params: dict[str, Any], report: dict[str, Any]) -> int:
        with transaction(self.engine) as conn:
            key = conn.execute(
                insert(match_calibrations).values(
                    collection_id=self.collection.id,
                    params=params,
                    report=report,
                    created_at=time.time(),
                )
            ).inserted_primary_key
        assert key is not None
        return int(key[0])

    def latest_calibration(self) -> tuple[int, dict[str, Any], dict[str, Any], float] | None:
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(match_calibrations)
                .where(match_calibrations.c.collection_id == self.collection.id)
                .order_by(desc(match_calibrations.c.id))
                .limit(1)
            ).first()
        if row is None:
            return None
        return int(row.id), dict(row.params), dict(row.report), float(row.created_at)
