"""An index refresh after writes reads only the rows written since the cached state (the web
app refreshes every ``index_staleness`` seconds during an ingest) and must end exactly where a
full read of every vector ends: same ids, same rows, same search results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from clipatlas import Atlas
from clipatlas.settings import Settings
from clipatlas.store.base import NewItem
from clipatlas.store.sql import SqlStore

DIM = 16


def _rows(keys: range, tag: str = "") -> list[NewItem]:
    return [
        NewItem(source="synthetic", source_key=f"k{i}", uri=f"synthetic://{i}{tag}",
                sha256=f"{i:060x}{tag or 'aaaa':>4}"[-64:])
        for i in keys
    ]  # fmt: skip


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _atlas(settings: Settings, flat_min: int) -> Atlas:
    served = settings.model_copy(update={"index_flat_min": flat_min, "ann_threshold": 10**9})
    atlas = Atlas.open("c", settings=served)
    atlas.collection = atlas.store.bind_embedder(atlas.collection, f"fake:{DIM}", DIM)
    return atlas


class FullReads:
    """Counts full reads of every vector (SqlStore.load_vectors) made by the index cache."""

    def __init__(self, atlas: Atlas, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = atlas.store.load_vectors

        def counted(*args: Any) -> Any:
            self.count += 1
            return original(*args)

        monkeypatch.setattr(atlas.store, "load_vectors", counted)


def _write_everything_that_changes_vectors(atlas: Atlas, rng: np.random.Generator) -> None:
    store, c = atlas.store, atlas.collection
    stored = [int(i) for i in atlas.index(max_staleness=0).ids]
    store.write_batch(c, _rows(range(300, 340)), _vectors(rng, 40))  # new items
    store.write_batch(c, _rows(range(10, 20), "b"), _vectors(rng, 10))  # replaced: new ids
    store.put_vectors(c, stored[50:55], _vectors(rng, 5))  # re-embedded in place
    store.reject_items(c, [(stored[60], "manual", {}), (stored[61], "manual", {})])


@pytest.mark.parametrize("flat_min", [10**9, 100], ids=["npy", "faiss-flat"])
def test_a_refresh_reads_only_new_rows_and_ends_where_a_full_read_ends(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, flat_min: int
) -> None:
    rng = np.random.default_rng(7)
    atlas = _atlas(settings, flat_min)
    atlas.store.write_batch(atlas.collection, _rows(range(300)), _vectors(rng, 300))
    first = atlas.index(max_staleness=0)
    assert len(first) == 300
    reads = FullReads(atlas, monkeypatch)
    _write_everything_that_changes_vectors(atlas, rng)
    refreshed = atlas.index(max_staleness=0)

    assert reads.count == 0  # caught up from the cached state, not read in full
    ids, matrix = atlas.store.load_vectors(atlas.collection)
    assert np.array_equal(refreshed.ids, ids)
    assert np.array_equal(np.asarray(refreshed.matrix, dtype=np.float32), matrix)
    assert len(refreshed) == 300 + 40 - 2
    assert not set(first.ids[10:20].tolist()) & set(refreshed.ids.tolist())  # replaced: gone
    query = matrix[[3, 120, 330]]
    brute = ids[np.argsort(-(query @ matrix.T), axis=1, kind="stable")[:, :10]]
    assert np.array_equal(refreshed.search(query, 10)[1], brute)
    files = sorted(p.name.split("-")[0] for p in atlas.cache_dir.iterdir() if p.suffix != ".lock")
    assert files == ["ids", "vectors"]  # the earlier state's files are gone
    reopened = Atlas.open("c", settings=atlas.settings)  # another process opens the new state
    assert np.array_equal(reopened.index().ids, ids)


def test_a_refresh_falls_back_to_a_full_read_when_catching_up_cannot_be_trusted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(8)
    atlas = _atlas(settings, 100)
    store, c = atlas.store, atlas.collection
    store.write_batch(c, _rows(range(200)), _vectors(rng, 200))
    first = atlas.index(max_staleness=0)
    reads = FullReads(atlas, monkeypatch)

    # most rows re-embedded: one full read is cheaper than patching
    store.put_vectors(c, first.ids[:150].tolist(), _vectors(rng, 150))
    assert len(atlas.index(max_staleness=0)) == 200 and reads.count == 1

    # the cached state lost a row it should hold (tampered with): never guessed
    (ids_file,) = atlas.cache_dir.glob("ids-*.npy")
    np.save(ids_file, np.append(np.delete(np.load(ids_file), 5), 10**9))  # same length
    store.write_batch(c, _rows(range(200, 201)), _vectors(rng, 1))
    atlas._index = None  # a new process: nothing in memory
    refreshed = atlas.index(max_staleness=0)
    assert reads.count == 2
    ids, matrix = store.load_vectors(c)
    assert np.array_equal(refreshed.ids, ids)
    assert np.array_equal(np.asarray(refreshed.matrix, dtype=np.float32), matrix)


@pytest.mark.postgres
def test_a_refresh_catches_up_the_same_way_on_postgresql(
    settings: Settings, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = np.random.default_rng(9)
    atlas = _atlas(settings.model_copy(update={"database_url": postgres_url}), 100)
    atlas.store.write_batch(atlas.collection, _rows(range(300)), _vectors(rng, 300))
    atlas.index(max_staleness=0)
    reads = FullReads(atlas, monkeypatch)
    _write_everything_that_changes_vectors(atlas, rng)
    refreshed = atlas.index(max_staleness=0)
    assert reads.count == 0
    ids, matrix = atlas.store.load_vectors(atlas.collection)
    assert np.array_equal(refreshed.ids, ids)
    assert np.array_equal(np.asarray(refreshed.matrix, dtype=np.float32), matrix)
    atlas.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_refresh_racing_an_ingest_reads_one_snapshot(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    backend: str,
) -> None:  # fmt: skip
    """Another process replaces rows while the refresh reads: the refresh must see the rows
    before or after, never half of each (it used to read the ids and the changed rows in two
    statements, two snapshots, found rows it could not place and read every vector again)."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        settings = settings.model_copy(update={"database_url": url})
    rng = np.random.default_rng(10)
    atlas = _atlas(settings, 100)
    store, c = atlas.store, atlas.collection
    store.write_batch(c, _rows(range(200)), _vectors(rng, 200))
    atlas.index(max_staleness=0)  # the cached state
    store.write_batch(c, _rows(range(200, 232)), _vectors(rng, 32))  # newer than that state
    before = store.load_vectors(c)
    ingest = SqlStore(store.url)  # the job worker's own connections
    replaced: list[list[int]] = []

    def replace_mid_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if catching_up and not replaced and "embeddings" in statement:
            # new rows first, so that SQLite (which reuses the highest rowids) gives the
            # replacements other ids than the rows they replace, as PostgreSQL always does
            new = _rows(range(300, 310)) + _rows(range(200, 232), "b")
            ingest_c = ingest.get_collection(c.name)
            replaced.append(ingest.write_batch(ingest_c, new, _vectors(rng, 42)))

    catching_up = False
    original = store.vector_changes

    def vector_changes(*args: Any) -> Any:
        nonlocal catching_up
        catching_up = True
        try:
            return original(*args)
        finally:
            catching_up = False

    monkeypatch.setattr(store, "vector_changes", vector_changes)
    event.listen(store.engine, "after_cursor_execute", replace_mid_read)
    reads = FullReads(atlas, monkeypatch)
    refreshed = atlas.index(max_staleness=0)
    event.remove(store.engine, "after_cursor_execute", replace_mid_read)

    assert replaced, "the competing write did not happen during the refresh"
    again = atlas.index(max_staleness=0)  # the next refresh catches up to the write
    assert reads.count == 0  # neither refresh read every vector
    after = store.load_vectors(c)

    def same(index: Any, state: tuple[np.ndarray, np.ndarray]) -> bool:
        rows = np.asarray(index.matrix, dtype=np.float32)
        return np.array_equal(index.ids, state[0]) and np.array_equal(rows, state[1])

    assert same(refreshed, before) or same(refreshed, after)  # one snapshot, not a mix
    assert same(again, after)
    ingest.close()
    atlas.close()


def test_a_state_holding_rows_newer_than_its_name_is_caught_up_from(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest commits between the fingerprint that names a refreshed state and the read of
    its rows: the state holds more rows than its name counts. The next refresh still catches up
    from it (it used to demand the named count and read every vector instead)."""
    rng = np.random.default_rng(11)
    atlas = _atlas(settings, 100)
    store, c = atlas.store, atlas.collection
    store.write_batch(c, _rows(range(200)), _vectors(rng, 200))
    atlas.index(max_staleness=0)
    store.write_batch(c, _rows(range(200, 232)), _vectors(rng, 32))
    ingest = SqlStore(store.url)
    original = store.vector_changes

    def ingest_commits_first(*args: Any) -> Any:
        ingest.write_batch(ingest.get_collection(c.name), _rows(range(300, 310)), _vectors(rng, 10))
        return original(*args)

    monkeypatch.setattr(store, "vector_changes", ingest_commits_first)
    reads = FullReads(atlas, monkeypatch)
    assert len(atlas.index(max_staleness=0)) == 242  # named for 232 rows, holds 242
    monkeypatch.setattr(store, "vector_changes", original)
    store.write_batch(c, _rows(range(400, 405)), _vectors(rng, 5))
    refreshed = atlas.index(max_staleness=0)
    assert reads.count == 0
    ids, matrix = store.load_vectors(c)
    assert np.array_equal(refreshed.ids, ids)
    assert np.array_equal(np.asarray(refreshed.matrix, dtype=np.float32), matrix)
    ingest.close()
    atlas.close()
