"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL with the same code.

Rows and their vectors are written in one transaction (:meth:`SqlStore.write_batch`), so a
crash at any moment leaves either the whole batch or none of it.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from clipatlas.errors import (
    CollectionNotFoundError,
    EmbedderMismatchError,
    Reason,
    StoreError,
)
from clipatlas.store.base import CollectionInfo, Fingerprint, Item, KnownKey, NewItem
from clipatlas.store.schema import collections, embeddings, ensure_schema, items

__all__ = ["SqlStore", "sqlite_url", "transaction"]

RECOUNT_SHARE = 0.02  # of one core, at most, spent recounting summaries (cached_summary)
_MIGRATION_LOCK = 0x636C6970  # "clip": advisory lock id for concurrent PostgreSQL migrations
# Items by id with whether each has a vector: built once (pages and searches hydrate their hits
# with it on every request; building the statement each time cost a third of the lookup). By
# primary key only: with ``collection_id = ?`` in the WHERE clause SQLite (without ANALYZE
# statistics) scans the collection's index instead, 100x slower on a 100k collection; the
# collection is checked on the rows instead.
_ITEMS_BY_ID = (
    select(items, embeddings.c.item_id.label("vec_item"))
    .outerjoin(embeddings, embeddings.c.item_id == items.c.id)
    .where(items.c.id.in_(bindparam("ids", expanding=True)))
)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; database errors surface as :class:`StoreError`."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(str(exc)) from exc


def sqlite_url(path: Path) -> str:
    return f"sqlite+pysqlite:///{path}"


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may wait for locks
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _switch_to_wal(cur: Any, wait: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried while other connections hold the file: switching a
    NEW database to WAL needs it to itself, and SQLite may answer "database is locked" at once
    instead of waiting (seen with 8 processes creating one file at once on a loaded machine)."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class SqlStore:
    """A clipatlas database reached through one SQLAlchemy engine."""

    def __init__(self, url: str, *, vector_dtype: str = "float16") -> None:
        self.url = url
        self.vector_dtype = np.dtype(vector_dtype)
        # (what, collection id) -> (version, monotonic time, value, seconds it took to compute);
        # see cached_summary
        self._summaries: dict[tuple[str, int], tuple[int, float, Any, float]] = {}
        self._summary_locks: dict[tuple[str, int], threading.Lock] = {}
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            # a served collection is read by dozens of request threads at once: SQLite gets
            # more pooled connections than SQLAlchemy's 5 + 10 (a file handle each);
            # PostgreSQL keeps the default, its server caps connections for all collections
            pool = {"pool_size": 10, "max_overflow": 40} if self.dialect == "sqlite" else {}
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True, **pool)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from exc
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _on_sqlite_connect)
        try:
            with self.engine.connect() as conn:
                # one opener migrates at a time: PostgreSQL by advisory lock, SQLite by taking
                # the write lock up front (two processes creating a new file at once would
                # otherwise both see no tables and the second CREATE TABLE would fail)
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                elif self.dialect == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                ensure_schema(conn)
                conn.commit()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from exc
        except BaseException:
            self.engine.dispose()
            raise

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
        with self._tx() as conn:
            return {
                r.source_key: KnownKey(
                    r.size_bytes, r.mtime, r.status != "ok" or r.item_id is not None
                )
                for r in conn.execute(q)
            }

    def existing_sha256(
        self, collection: CollectionInfo, hashes: Sequence[str]
    ) -> dict[str, tuple[int, str, str]]:
        """Stored items by content hash: sha256 -> (item id, source, source key)."""
        if not hashes:
            return {}
        with self._tx() as conn:
            return self._existing_sha256(conn, collection.id, hashes)

    @staticmethod
    def _existing_sha256(
        conn: Connection, collection_id: int, hashes: Sequence[str]
    ) -> dict[str, tuple[int, str, str]]:
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

    def _encode(self, vector: np.ndarray) -> bytes:
        return np.ascontiguousarray(vector, dtype=self.vector_dtype).tobytes()

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
        with self._tx() as conn:
            version = self._bump_version(conn, collection.id)
            self._delete_keys(conn, collection.id, new_items)
            taken = {
                sha: found[0]
                for sha, found in self._existing_sha256(
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
                            dtype=self.vector_dtype.name,
                            vector=self._encode(vectors[vector_of[pos]]),
                        )
                    )
        return ids

    @staticmethod
    def _bump_version(conn: Connection, collection_id: int) -> int:
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

    @staticmethod
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
        self, collection: CollectionInfo, item_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Set (insert or replace) the vectors of existing items, in one transaction."""
        if collection.embedder_id is None or collection.dim is None:
            raise StoreError(f"collection {collection.name!r} has no embedder bound")
        with self._tx() as conn:
            version = self._bump_version(conn, collection.id)
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
                    "dtype": self.vector_dtype.name,
                    "vector": self._encode(vec),
                }
                for item_id, vec in zip(ids, vectors, strict=True)
            ]
            for start in range(0, len(rows), 1000):
                conn.execute(insert(embeddings), rows[start : start + 1000])

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
        a value that took t seconds to compute is kept at least t / :data:`RECOUNT_SHARE`
        seconds, so recounting never takes more than that share of a core (counting tags of
        1M items takes about a second).
        """
        version = self.version(collection) if version is None else version
        key = (what, collection.id)
        cached = self._summaries.get(key)
        if cached is not None and max_age > 0:
            floor = cached[3] / RECOUNT_SHARE
            max_age, ttl = max(max_age, floor), max(ttl, floor)
        if cached is not None and self._fresh(cached, version, max_age, ttl):
            return cached[2]
        lock = self._summary_locks.setdefault(key, threading.Lock())
        if max_age > 0 and cached is not None:
            if not lock.acquire(blocking=False):
                return cached[2]  # another thread is recounting; 50 threads need not
        else:
            lock.acquire()
        try:
            cached = self._summaries.get(key)  # counted while this thread waited?
            if cached is not None and self._fresh(cached, version, 0.0, ttl):
                return cached[2]
            started = time.monotonic()
            value = compute(collection)
            self._summaries[key] = (version, started, value, time.monotonic() - started)
            return value
        finally:
            lock.release()

    @staticmethod
    def _fresh(
        cached: tuple[int, float, Any, float], version: int, max_age: float, ttl: float
    ) -> bool:
        age = time.monotonic() - cached[1]
        return age < ttl and (cached[0] == version or age < max_age)

    def forget_summary(self, what: str, collection: CollectionInfo) -> None:
        """Drop a cached aggregate (its data changed without a version bump)."""
        self._summaries.pop((what, collection.id), None)

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
        q = _stored_vectors(collection, e.item_id, e.dtype, e.vector)
        with self._tx() as conn:
            return _decode_vectors(collection, conn.execution_options(yield_per=5000).execute(q))

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
        q = _stored_vectors(collection, embeddings.c.item_id, embeddings.c.dtype, vector)
        every: list[int] = []
        with self._tx() as conn:
            changed, matrix = _decode_vectors(collection, conn.execute(q), every.append)
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
                for r in conn.execute(_ITEMS_BY_ID, {"ids": wanted[start : start + 500]}):
                    if r.collection_id == collection.id:
                        found[r.id] = _item(r)
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
                page = [_item(r) for r in conn.execute(q)]
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
        wanted = {int(i): (reason, extra) for i, reason, extra in rejections}
        changed = 0
        with self._tx() as conn:
            version = self._bump_version(conn, collection.id)
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


def _stored_vectors(collection: CollectionInfo, *columns: Any) -> Any:
    """SELECT ``columns`` of the embeddings of the collection's stored items, by item id."""
    return (
        select(*columns)
        .join(items, embeddings.c.item_id == items.c.id)
        .where(items.c.collection_id == collection.id, items.c.status == "ok")
        .order_by(embeddings.c.item_id)
    )


def _decode_vectors(
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


def _item(r: Any) -> Item:
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
