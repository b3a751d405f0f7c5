"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL with the same code.

Rows and their vectors are written in one transaction (:meth:`SqlStore.write_batch`), so a
crash at any moment leaves either the whole batch or none of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from sqlalchemy import Connection, case, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from clipatlas.errors import CollectionNotFoundError, EmbedderMismatchError, StoreError
from clipatlas.store.base import CollectionInfo, Fingerprint, Item, KnownKey, NewItem
from clipatlas.store.schema import collections, embeddings, items
from clipatlas.store.sql import writes
from clipatlas.store.sql.engine import open_engine, transaction
from clipatlas.store.sql.rows import ITEMS_BY_ID, decode_vectors, item_from_row, stored_vectors
from clipatlas.store.sql.summaries import SummaryCache

__all__ = ["SqlStore"]


class SqlStore:
    """A clipatlas database reached through one SQLAlchemy engine."""

    def __init__(self, url: str, *, vector_dtype: str = "float16") -> None:
        self.url = url
        self.vector_dtype = np.dtype(vector_dtype)
        self._summaries = SummaryCache()  # see cached_summary
        self.engine, self.dialect = open_engine(url)

    # -- collections -------------------------------------------------------------------------

    def _tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine)

    @staticmethod
    def _info(row: Any) -> CollectionInfo:
        return CollectionInfo(id=row.id, name=row.name, embedder_id=row.embedder_id, dim=row.dim)

    def get_collection(self, name: str) -> CollectionInfo:
        with self._tx() as conn:
            row = conn.execute(select(collections).where(collections.c.name == name)).first()
        if row is None:
            raise CollectionNotFoundError(name)
        return self._info(row)

    def ensure_collection(self, name: str) -> CollectionInfo:
        try:
            return self.get_collection(name)
        except CollectionNotFoundError:
            pass
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(collections).values(name=name, version=0, created_at=time.time())
                )
        except SQLAlchemyError:
            pass  # created concurrently by another process
        return self.get_collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        with self._tx() as conn:
            rows = conn.execute(select(collections).order_by(collections.c.name)).all()
        return [self._info(r) for r in rows]

    def bind_embedder(
        self, collection: CollectionInfo, embedder_id: str, dim: int
    ) -> CollectionInfo:
        """Tie the collection to one embedder; refuse a different one."""
        with self._tx() as conn:
            row = conn.execute(
                select(collections).where(collections.c.id == collection.id).with_for_update()
            ).one()
            if row.embedder_id is None:
                conn.execute(
                    update(collections)
                    .where(collections.c.id == collection.id)
                    .values(embedder_id=embedder_id, dim=dim)
                )
            elif row.embedder_id != embedder_id or row.dim != dim:
                raise EmbedderMismatchError(collection.name, row.embedder_id, embedder_id)
        return CollectionInfo(collection.id, collection.name, embedder_id, dim)

    # -- ingestion ---------------------------------------------------------------------------

    def known_keys(self, collection: CollectionInfo, source: str) -> dict[str, KnownKey]:
        with self._tx() as conn:
            return writes.known_keys(conn, collection, source)

    def existing_sha256(
        self, collection: CollectionInfo, hashes: Sequence[str]
    ) -> dict[str, tuple[int, str, str]]:
        """Stored items by content hash: sha256 -> (item id, source, source key)."""
        if not hashes:
            return {}
        with self._tx() as conn:
            return writes.existing_sha256(conn, collection.id, hashes)

    def write_batch(
        self,
        collection: CollectionInfo,
        new_items: Sequence[NewItem],
        vectors: np.ndarray | None = None,
    ) -> list[int]:
        """Write items and the vectors of the stored ones in one transaction.

        ``vectors`` has one row per item with ``status == "ok"``, in order (or is None). An
        existing row with the same (source, source_key) is replaced. An ok item whose sha256
        is already stored becomes a ``duplicate`` rejection (and its vector is dropped); such
        items are updated in place. Returns the new item ids in input order.
        """
        with self._tx() as conn:
            return writes.write_batch(conn, collection, new_items, vectors, self.vector_dtype)

    def put_vectors(
        self, collection: CollectionInfo, item_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Set (insert or replace) the vectors of existing items, in one transaction."""
        if collection.embedder_id is None or collection.dim is None:
            raise StoreError(f"collection {collection.name!r} has no embedder bound")
        with self._tx() as conn:
            writes.put_vectors(conn, collection, item_ids, vectors, self.vector_dtype)

    # -- reading -----------------------------------------------------------------------------

    def counts(self, collection: CollectionInfo, max_age: float = 0.0) -> dict[str, int]:
        """Stored and rejected items and searchable vectors (see :meth:`cached_summary`)."""
        return dict(self.cached_summary("counts", collection, self._count, max_age))

    def source_counts(self, collection: CollectionInfo, max_age: float = 0.0) -> dict[str, int]:
        """Items per source name (see :meth:`cached_summary`)."""
        return dict(self.cached_summary("sources", collection, self._count_sources, max_age))

    def cached_summary(
        self,
        what: str,
        collection: CollectionInfo,
        compute: Callable[[CollectionInfo], Any],
        max_age: float = 0.0,
        *,
        ttl: float = math.inf,
        version: int | None = None,
    ) -> Any:
        """A whole-collection aggregate named ``what`` (counts, sources, tags), cached per
        collection version: counting 100k rows on every page view cost tens of milliseconds.

        With ``max_age`` > 0 a value computed less than ``max_age`` seconds ago is returned even
        if writes came since, so pages viewed during an ingest (a new version every batch) do
        not recount the collection each time; while one thread recounts, the others keep the
        last value. ``ttl`` bounds the age of any value, for aggregates of changes that do not
        bump the version (tags edited by another process); :meth:`forget_summary` drops one.
        A caller that accepts lag (``max_age`` > 0) also accepts it in proportion to the cost:
        a value that took t seconds to compute is kept at least t / :data:`.summaries.RECOUNT_SHARE`
        seconds, so recounting never takes more than that share of a core (counting tags of
        1M items takes about a second).
        """
        current = (lambda: self.version(collection)) if version is None else (lambda: version)
        return self._summaries.get(
            (what, collection.id), current, lambda: compute(collection), max_age, ttl
        )

    def forget_summary(self, what: str, collection: CollectionInfo) -> None:
        """Drop a cached aggregate (its data changed without a version bump)."""
        self._summaries.forget((what, collection.id))

    def _count(self, collection: CollectionInfo) -> dict[str, int]:
        with self._tx() as conn:
            by_status: dict[str, int] = dict(
                conn.execute(
                    select(items.c.status, func.count())
                    .where(items.c.collection_id == collection.id)
                    .group_by(items.c.status)
                ).all()
            )
            vectors = conn.execute(
                select(func.count())
                .select_from(embeddings.join(items, embeddings.c.item_id == items.c.id))
                .where(items.c.collection_id == collection.id, items.c.status == "ok")
            ).scalar_one()  # searchable vectors: those of stored items (not of rejected copies)
        return {
            "ok": by_status.get("ok", 0),
            "rejected": by_status.get("rejected", 0),
            "vectors": vectors,
        }

    def _count_sources(self, collection: CollectionInfo) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(
                select(items.c.source, func.count())
                .where(items.c.collection_id == collection.id)
                .group_by(items.c.source)
                .order_by(items.c.source)
            ).all()
        return {str(source): int(n) for source, n in rows}

    def reason_counts(self, collection: CollectionInfo, max_age: float = 0.0) -> dict[str, int]:
        """Rejected items per reason (see :meth:`cached_summary`)."""
        return dict(self.cached_summary("reasons", collection, self._count_reasons, max_age))

    def _count_reasons(self, collection: CollectionInfo) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(
                select(items.c.reason, func.count())
                .where(items.c.collection_id == collection.id, items.c.status == "rejected")
                .group_by(items.c.reason)
                .order_by(items.c.reason)
            ).all()
        return {str(reason): int(n) for reason, n in rows}

    def version(self, collection: CollectionInfo) -> int:
        """The collection's write counter: every write, rejection or vector change bumps it."""
        with self._tx() as conn:
            value = conn.execute(
                select(collections.c.version).where(collections.c.id == collection.id)
            ).scalar_one()
        return int(value)

    def fingerprint(self, collection: CollectionInfo) -> Fingerprint:
        with self._tx() as conn:
            row = conn.execute(
                select(collections.c.embedder_id, collections.c.version).where(
                    collections.c.id == collection.id
                )
            ).one()
        counts = self.cached_summary("counts", collection, self._count, version=int(row.version))
        return Fingerprint(row.embedder_id, counts["vectors"], row.version)

    def load_vectors(self, collection: CollectionInfo) -> tuple[np.ndarray, np.ndarray]:
        """All vectors of stored items as (ids int64, float32 matrix), ordered by id."""
        e = embeddings.c
        q = stored_vectors(collection, e.item_id, e.dtype, e.vector)
        with self._tx() as conn:
            return decode_vectors(collection, conn.execution_options(yield_per=5000).execute(q))

    def vector_changes(
        self, collection: CollectionInfo, since_version: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What an index built at collection version ``since_version`` needs to catch up:
        (ids of every stored item with a vector, ordered; ids among them written after
        ``since_version``, ordered; those items' vectors as float32).

        Every write that adds, replaces or re-embeds an item stamps the item's ``version``
        with the collection's new version, so rows at or below ``since_version`` are unchanged
        since then; rows that were deleted or rejected are simply absent from the first array.

        One statement, so one snapshot: a transaction of two SELECTs is not one on either
        backend (pysqlite opens no transaction for reads, PostgreSQL's READ COMMITTED takes a
        snapshot per statement), and an ingest replacing rows between two reads made every
        refresh during it distrust the result and read all the vectors again.
        """
        fresh = items.c.version > since_version
        vector = case((fresh, embeddings.c.vector), else_=None).label("vector")
        q = stored_vectors(collection, embeddings.c.item_id, embeddings.c.dtype, vector)
        every: list[int] = []
        with self._tx() as conn:
            changed, matrix = decode_vectors(collection, conn.execute(q), every.append)
        return np.asarray(every, dtype=np.int64), changed, matrix

    def changed_ids(self, collection: CollectionInfo, since_version: int) -> np.ndarray:
        """Ids of the collection's items written (added, replaced, re-embedded, rejected)
        after collection version ``since_version``, ordered."""
        q = (
            select(items.c.id)
            .where(items.c.collection_id == collection.id, items.c.version > since_version)
            .order_by(items.c.id)
        )
        with self._tx() as conn:
            return np.fromiter(conn.execute(q).scalars(), dtype=np.int64)

    def get_items(self, collection: CollectionInfo, ids: Sequence[int]) -> list[Item]:
        """Items by id, in the order asked (unknown ids are skipped)."""
        wanted = [int(i) for i in ids]
        found: dict[int, Item] = {}
        with self._tx() as conn:
            for start in range(0, len(wanted), 500):
                for r in conn.execute(ITEMS_BY_ID, {"ids": wanted[start : start + 500]}):
                    if r.collection_id == collection.id:
                        found[r.id] = item_from_row(r)
        return [found[i] for i in wanted if i in found]

    def find_items(
        self, collection: CollectionInfo, *, source_keys: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Map source keys to item ids for stored items (any source)."""
        keys = list(source_keys or [])
        out: dict[str, int] = {}
        with self._tx() as conn:
            for start in range(0, len(keys), 500):
                q = select(items.c.source_key, items.c.id).where(
                    items.c.collection_id == collection.id,
                    items.c.status == "ok",
                    items.c.source_key.in_(keys[start : start + 500]),
                )
                out.update({r.source_key: r.id for r in conn.execute(q)})
        return out

    def stored_item_ids(self, collection: CollectionInfo, ids: Sequence[int]) -> set[int]:
        wanted = [int(i) for i in ids]
        out: set[int] = set()
        with self._tx() as conn:
            for start in range(0, len(wanted), 500):
                q = select(items.c.id).where(
                    items.c.collection_id == collection.id,
                    items.c.status == "ok",
                    items.c.id.in_(wanted[start : start + 500]),
                )
                out.update(r.id for r in conn.execute(q))
        return out

    def iter_items(
        self, collection: CollectionInfo, *, status: str | None = None, page_size: int = 1000
    ) -> Iterator[list[Item]]:
        """Items (of ``status``, or all) in id order, one page at a time (keyset paging).

        Each page is read in its own short transaction, so a long export never holds the
        database; memory is one page.
        """
        last = 0
        while True:
            q = (
                select(items, embeddings.c.item_id.label("vec_item"))
                .outerjoin(embeddings, embeddings.c.item_id == items.c.id)
                .where(items.c.collection_id == collection.id, items.c.id > last)
                .order_by(items.c.id)
                .limit(page_size)
            )
            if status is not None:
                q = q.where(items.c.status == status)
            with self._tx() as conn:
                page = [item_from_row(r) for r in conn.execute(q)]
            if not page:
                return
            yield page
            last = page[-1].id

    def reject_items(
        self,
        collection: CollectionInfo,
        rejections: Sequence[tuple[int, str, dict[str, Any]]],
    ) -> int:
        """Turn stored items into rejections, in one transaction; returns how many changed.

        ``rejections`` holds (item id, reason, meta to merge into the item's meta). Items no
        longer stored are left alone. Vectors are kept (the change can be undone without
        re-embedding); search never sees them, as it loads the vectors of stored items only, and
        the version bump makes every derived index rebuild.
        """
        if not rejections:
            return 0
        with self._tx() as conn:
            return writes.reject_items(conn, collection, rejections)

    def analyze(self) -> None:
        """Refresh the query planner's statistics after a large write (SQLite only: without
        them it prefers the collection index to primary keys; PostgreSQL's autovacuum keeps
        its own). ``analysis_limit`` samples rows, so this takes milliseconds at 100k items."""
        if self.dialect != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()

    def close(self) -> None:
        self.engine.dispose()
