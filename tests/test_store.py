from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from clipatlas.embedders.base import l2_normalize
from clipatlas.errors import EmbedderMismatchError, SchemaVersionError, StoreError
from clipatlas.store.base import NewItem
from clipatlas.store.schema import SCHEMA_VERSION
from clipatlas.store.sql import SqlStore, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "db" / "clipatlas.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = SqlStore(store_url)
    yield s
    s.close()


def _item(key: str, sha: str, status: str = "ok", reason: str | None = None) -> NewItem:
    return NewItem(
        source="folder",
        source_key=key,
        uri=f"/data/{key}",
        status=status,
        reason=reason,
        sha256=sha if status == "ok" else None,
        size_bytes=10,
        mtime=1.0,
    )


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)))


def test_batch_rows_and_vectors_are_written_together_and_read_back(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    vecs = _vectors(2)
    ids = store.write_batch(
        coll,
        [
            _item("a.jpg", "a" * 64),
            _item("bad.jpg", "", "rejected", "truncated"),
            _item("b.jpg", "b" * 64),
        ],
        vecs,
    )
    assert len(ids) == 3
    assert store.counts(coll) == {"ok": 2, "rejected": 1, "vectors": 2}
    assert store.reason_counts(coll) == {"truncated": 1}
    got_ids, matrix = store.load_vectors(coll)
    assert got_ids.tolist() == [ids[0], ids[2]]
    np.testing.assert_allclose(matrix, vecs, atol=2e-3)  # stored as float16
    items = store.get_items(coll, [ids[2], ids[1]])
    assert [i.source_key for i in items] == ["b.jpg", "bad.jpg"]
    assert items[0].has_vector and not items[1].has_vector
    assert store.reject_items(coll, [(ids[0], "manual", {})]) == 1
    assert store.reason_counts(coll) == {"manual": 1, "truncated": 1}  # cached per version


def test_a_second_copy_of_stored_bytes_becomes_a_duplicate_rejection(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    first = store.write_batch(coll, [_item("a.jpg", "a" * 64)], _vectors(1))
    copy = _item("copy/a.jpg", "a" * 64)
    store.write_batch(coll, [copy], _vectors(1))
    assert copy.status == "rejected" and copy.reason == "duplicate"
    assert copy.meta["duplicate_of"] == first[0]
    assert store.counts(coll) == {"ok": 1, "rejected": 1, "vectors": 1}


def test_rewriting_a_source_key_replaces_the_row_instead_of_adding_one(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    store.write_batch(coll, [_item("a.jpg", "", "rejected", "truncated")])
    store.write_batch(coll, [_item("a.jpg", "c" * 64)], _vectors(1))
    assert store.counts(coll) == {"ok": 1, "rejected": 0, "vectors": 1}
    known = store.known_keys(coll, "folder")
    assert set(known) == {"a.jpg"} and known["a.jpg"].complete


def test_a_collection_refuses_vectors_of_another_embedder(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "hf:openai/clip-vit-base-patch32", 512)
    with pytest.raises(EmbedderMismatchError) as err:
        store.bind_embedder(coll, "open_clip:ViT-B-32/openai", 512)
    assert err.value.expected == "hf:openai/clip-vit-base-patch32"
    assert "open_clip:ViT-B-32/openai" in str(err.value)


def test_vectors_of_the_wrong_shape_are_refused_and_nothing_is_written(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    with pytest.raises(StoreError):
        store.write_batch(coll, [_item("a.jpg", "a" * 64)], _vectors(1, dim=4))
    assert store.counts(coll) == {"ok": 0, "rejected": 0, "vectors": 0}


def test_the_fingerprint_changes_with_every_write(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    before = store.fingerprint(coll)
    store.write_batch(coll, [_item("a.jpg", "a" * 64)], _vectors(1))
    after = store.fingerprint(coll)
    assert (before.count, after.count) == (0, 1)
    assert after.version > before.version and after.token() != before.token()


def test_a_database_from_a_newer_clipatlas_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    SqlStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    with pytest.raises(SchemaVersionError) as err:
        SqlStore(url)
    assert err.value.found == SCHEMA_VERSION + 1


def test_float16_storage_keeps_cosine_scores_close(tmp_path: Path) -> None:
    store = SqlStore(sqlite_url(tmp_path / "x.db"), vector_dtype="float16")
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:64", 64)
    vecs = _vectors(20, dim=64)
    store.write_batch(coll, [_item(f"{i}.jpg", f"{i:064d}") for i in range(20)], vecs)
    _, matrix = store.load_vectors(coll)
    store.close()
    assert matrix.dtype == np.float32
    assert np.abs(matrix @ vecs.T - vecs @ vecs.T).max() < 2e-3


def _open_new(url: str) -> str:
    SqlStore(url).close()
    return "ok"


def test_processes_creating_the_same_new_sqlite_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    url = sqlite_url(tmp_path / "race" / "clipatlas.db")
    (tmp_path / "race").mkdir()
    with ProcessPoolExecutor(4) as pool:
        assert list(pool.map(_open_new, [url] * 8)) == ["ok"] * 8
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == (
            SCHEMA_VERSION
        )


def test_counts_and_fingerprint_follow_every_write_and_lookups_use_primary_keys(
    store: SqlStore,
) -> None:
    c = store.bind_embedder(store.ensure_collection("c"), "fake:4", 4)
    vec = l2_normalize(np.eye(4, dtype=np.float32))
    ids = store.write_batch(c, [_item("a", "1"), _item("b", "2")], vec[:2])
    first = store.fingerprint(c)
    assert store.counts(c) == {"ok": 2, "rejected": 0, "vectors": 2} and first.count == 2
    assert store.fingerprint(c) == first  # unchanged: served from the per-version cache
    store.write_batch(c, [_item("c", "3"), _item("d", "x", "rejected", "corrupt")], vec[2:3])
    assert store.counts(c) == {"ok": 3, "rejected": 1, "vectors": 3}
    store.reject_items(c, [(ids[0], "duplicate", {})])
    assert store.counts(c) == {"ok": 2, "rejected": 2, "vectors": 2}
    assert store.fingerprint(c).version > first.version
    other = store.ensure_collection("other")
    assert store.get_items(other, ids) == []  # ids of another collection are not returned
    store.analyze()
    assert [i.source_key for i in store.get_items(c, [ids[1], ids[0]])] == ["b", "a"]


def test_counts_may_lag_writes_by_max_age_and_are_current_without_it(store: SqlStore) -> None:
    coll = store.bind_embedder(store.ensure_collection("c"), "fake:8", 8)
    store.write_batch(coll, [_item("a.jpg", "a" * 64)], _vectors(1))
    assert store.counts(coll, max_age=60) == {"ok": 1, "rejected": 0, "vectors": 1}
    assert store.source_counts(coll, max_age=60) == {"folder": 1}
    store.write_batch(coll, [_item("b.jpg", "b" * 64), _item("x", "", "rejected", "truncated")],
                      _vectors(1, seed=1))  # fmt: skip
    assert store.counts(coll, max_age=60)["ok"] == 1  # computed under a minute ago: kept
    assert store.source_counts(coll, max_age=60) == {"folder": 1}
    assert store.counts(coll) == {"ok": 2, "rejected": 1, "vectors": 2}  # current version
    assert store.source_counts(coll) == {"folder": 3}
    assert store.fingerprint(coll).count == 2  # the index key never lags


def test_a_version_7_database_gets_the_page_indexes_and_pages_do_not_sort(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    SqlStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_items_page"))
        conn.execute(text("DROP INDEX ix_items_order"))
        conn.execute(text("UPDATE schema_version SET version = 7"))
    SqlStore(url).close()  # migrates
    page = "SELECT id FROM items WHERE collection_id = 1 {} ORDER BY id LIMIT 60 OFFSET 100"
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
        )
        for where in ("", "AND status = 'ok'"):
            plan = " ".join(
                str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + page.format(where)))
            )
            assert "TEMP B-TREE" not in plan and "ix_items_" in plan, plan
    engine.dispose()


def test_a_cached_summary_expires_after_its_ttl_and_can_be_forgotten(store: SqlStore) -> None:
    coll = store.ensure_collection("c")
    calls: list[int] = []

    def compute(_: object) -> int:
        calls.append(1)
        return len(calls)

    assert store.cached_summary("n", coll, compute) == 1
    assert store.cached_summary("n", coll, compute) == 1  # same version: cached
    store.forget_summary("n", coll)
    assert store.cached_summary("n", coll, compute) == 2
    assert store.cached_summary("n", coll, compute, ttl=0.0) == 3  # too old whatever the version


class _LockedCursor:
    """A DB-API cursor whose first ``locked`` journal-mode switches fail like SQLite's."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked, self.error, self.calls = locked, error, 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.error)


def test_switching_to_wal_is_retried_while_the_file_is_locked_and_only_then() -> None:
    from clipatlas.store.sql.engine import _switch_to_wal

    cursor = _LockedCursor(locked=3)
    _switch_to_wal(cursor)
    assert cursor.calls == 4  # three refusals, then the switch
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _switch_to_wal(_LockedCursor(locked=10**6), wait=0.2)  # gives up after ``wait``
    other = _LockedCursor(locked=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(other)
    assert other.calls == 1  # any other error is not retried


def test_a_costly_summary_is_recounted_at_most_once_per_50_times_its_cost_when_lag_is_allowed(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting tags of 1M items takes about a second: a page that accepts counts lagging
    writes by 5 s must not recount every 5 s during an ingest (20% of a core)."""
    coll = store.ensure_collection("c")
    clock = [0.0]
    monkeypatch.setattr("clipatlas.store.sql.summaries.time.monotonic", lambda: clock[0])
    calls: list[float] = []

    def compute(_: object) -> int:
        clock[0] += 1.0  # one second of counting
        calls.append(clock[0])
        return len(calls)

    assert store.cached_summary("n", coll, compute, 5.0, version=1) == 1
    clock[0] = 40.0  # writes came (a new version); 40 s < 50 x 1 s: kept
    assert store.cached_summary("n", coll, compute, 5.0, ttl=10.0, version=2) == 1
    assert store.cached_summary("n", coll, compute, version=2) == 2  # no lag accepted: current
    clock[0] = 100.0
    assert store.cached_summary("n", coll, compute, 5.0, version=3) == 3  # 59 s > 50 s: recount


def test_a_summary_that_may_lag_reads_the_version_once_per_lag_window(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages accept counts lagging writes by 5 s under ``serve``: within that window they need
    not read the collection's version either (one statement per summary per page view)."""
    coll = store.ensure_collection("c")
    clock = [0.0]
    monkeypatch.setattr("clipatlas.store.sql.summaries.time.monotonic", lambda: clock[0])
    versions, calls = [1], []
    reads: list[float] = []

    def version(_: object) -> int:
        reads.append(clock[0])
        return versions[0]

    monkeypatch.setattr(store, "version", version)

    def compute(_: object) -> int:
        calls.append(clock[0])
        return versions[0] * 10

    assert store.cached_summary("n", coll, compute, 5.0) == 10
    clock[0] = 4.0
    assert store.cached_summary("n", coll, compute, 5.0) == 10
    assert reads == [0.0]  # computed 4 s ago: served without a read
    clock[0] = 6.0
    assert store.cached_summary("n", coll, compute, 5.0) == 10  # read, same version: confirmed
    clock[0] = 10.0
    assert store.cached_summary("n", coll, compute, 5.0) == 10
    assert reads == [0.0, 6.0]  # confirmed 4 s ago: no read
    versions[0] = 2
    clock[0] = 10.5
    assert store.cached_summary("n", coll, compute, 5.0) == 10  # may lag: still 10
    clock[0] = 11.5
    assert store.cached_summary("n", coll, compute, 5.0) == 20  # 5.5 s since confirmed: recount
    assert calls == [0.0, 11.5] and reads == [0.0, 6.0, 11.5]
    assert store.cached_summary("n", coll, compute) == 20  # no lag accepted: always read
    assert reads[-1] == 11.5 and len(reads) == 4
