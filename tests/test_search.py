from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.errors import ConfigError, ImageDecodeError
from clipatlas.index.exact import ExactIndex
from clipatlas.settings import Settings
from tests.corpus import coloured_picture

COLOURS = {
    "red": (220, 20, 20),
    "green": (20, 200, 30),
    "blue": (20, 30, 220),
    "yellow": (230, 220, 20),
}


@pytest.fixture
def colour_atlas(settings: Settings, tmp_path: Path) -> Atlas:
    folder = _mk(tmp_path / "colours")
    for name, rgb in COLOURS.items():
        for i in range(3):
            coloured_picture(rgb, size=(64 + i * 8, 64)).save(folder / f"{name}{i}.png")
    atlas = Atlas.open("colours", settings=settings)
    atlas.ingest(folder)
    return atlas


def _mk(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("colour", sorted(COLOURS))
def test_text_search_ranks_pictures_of_the_named_colour_first(
    colour_atlas: Atlas, colour: str
) -> None:
    hits = colour_atlas.search_text(f"a {colour} picture", k=3)
    assert [re.sub(r"\d\.png$", "", h.source_key) for h in hits] == [colour] * 3
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_image_search_finds_the_same_picture_first_with_its_path_and_metadata(
    colour_atlas: Atlas, tmp_path: Path
) -> None:
    query = tmp_path / "q.png"
    coloured_picture(COLOURS["blue"], size=(64, 64)).save(query)
    hits = colour_atlas.search_image(query, k=5)
    assert hits[0].source_key == "blue0.png" and hits[0].score > 0.99
    assert Path(hits[0].path or "").is_file() and Path(hits[0].thumbnail or "").is_file()
    assert (hits[0].width, hits[0].height) == (64, 64)
    assert len(hits) == 5


def test_search_by_stored_item_excludes_the_item_itself(colour_atlas: Atlas) -> None:
    red0 = colour_atlas.search_text("red", k=1)[0]
    hits = colour_atlas.search_item(red0.id, k=2)
    assert red0.id not in [h.id for h in hits]
    assert all(h.source_key.startswith("red") for h in hits)


def test_k_larger_than_the_collection_returns_everything(colour_atlas: Atlas) -> None:
    assert len(colour_atlas.search_text("green", k=100)) == 12


def test_a_query_picture_that_is_not_an_image_gets_a_typed_error(
    colour_atlas: Atlas, tmp_path: Path
) -> None:
    bad = tmp_path / "q.jpg"
    bad.write_text("<html></html>")
    with pytest.raises(ImageDecodeError) as err:
        colour_atlas.search_image(bad)
    assert err.value.reason == "not_an_image"
    with pytest.raises(ConfigError):
        colour_atlas.search_text("   ")


def test_the_index_cache_is_rebuilt_when_the_collection_changes(
    colour_atlas: Atlas, tmp_path: Path
) -> None:
    assert len(colour_atlas.index()) == 12
    extra = _mk(tmp_path / "more")
    coloured_picture((10, 10, 10), size=(40, 40)).save(extra / "black.png")
    colour_atlas.ingest(extra)
    assert len(colour_atlas.index()) == 13
    assert len(list(colour_atlas.cache_dir.glob("vectors-*.npy"))) == 1
    reopened = Atlas.open("colours", settings=colour_atlas.settings)
    assert len(reopened.index()) == 13
    assert reopened.search_text("black", k=1)[0].source_key == "black.png"


def test_exact_index_matches_brute_force_across_blocks() -> None:
    rng = np.random.default_rng(3)
    m = rng.standard_normal((70_000, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q = m[[5, 69_999]]
    index = ExactIndex(np.arange(10, 70_010), m)
    scores, ids = index.search(q, 10)
    brute = np.argsort(-(q @ m.T), axis=1)[:, :10] + 10
    assert (ids == brute).all()
    assert ids[0, 0] == 15 and ids[1, 0] == 70_009
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.postgres
def test_ingest_and_search_work_the_same_on_postgresql(
    settings: Settings, postgres_url: str, tmp_path: Path
) -> None:
    folder = _mk(tmp_path / "pg")
    for name, rgb in COLOURS.items():
        coloured_picture(rgb, size=(48, 48)).save(folder / f"{name}.png")
    (folder / "junk.jpg").write_bytes(b"%PDF-1.4 not a picture")
    pg_settings = settings.model_copy(update={"database_url": postgres_url})
    with Atlas.open("pg", settings=pg_settings) as atlas:
        report = atlas.ingest(folder)
        assert (report.stored, dict(report.reasons)) == (4, {"unsupported_format": 1})
        assert atlas.search_text("yellow", k=1)[0].source_key == "yellow.png"
        assert atlas.ingest(folder).skipped == 5
        stats = atlas.stats()
    assert stats.database.startswith("postgresql") and (stats.stored, stats.rejected) == (4, 1)
    from clipatlas.atlas import list_collections

    assert list_collections(pg_settings) == ["pg"]


def test_a_served_index_may_lag_writes_elsewhere_and_refreshes_in_the_background(
    settings: Settings, tmp_path: Path
) -> None:
    """With ``index_staleness`` (the web app's setting) a search during another process's
    ingest answers from the index it has and rebuilds it in a background thread."""
    import time

    folder = _mk(tmp_path / "first")
    for i in range(3):
        coloured_picture(COLOURS["red"], size=(64 + 8 * i, 64)).save(folder / f"red{i}.png")
    served = settings.model_copy(update={"index_staleness": 0.5})
    with Atlas.open("lag", settings=served) as web, Atlas.open("lag", settings=settings) as job:
        job.ingest(folder)
        assert len(web.search_text("red", k=10)) == 3  # the web side builds its index
        more = _mk(tmp_path / "second")
        coloured_picture(COLOURS["blue"]).save(more / "blue.png")
        job.ingest(more)  # the "other process" writes
        before = web.index()
        assert len(before) == 3  # younger than 0.5 s: the same index, no rebuild in the call
        assert web.index(max_staleness=0) is not before and len(web.index()) == 4
        coloured_picture(COLOURS["green"]).save(more / "green.png")
        job.ingest(more)
        time.sleep(0.6)
        stale = web.index()  # too old: returned at once, rebuilt in the background
        assert len(stale) == 4
        deadline = time.monotonic() + 20
        while len(web.index()) != 5:
            assert time.monotonic() < deadline, "the background refresh never landed"
            time.sleep(0.05)
        assert web.search_text("green", k=1)[0].path.endswith("green.png")


def test_a_served_index_reads_the_collection_version_at_most_once_per_staleness_window(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search on a served index (``index_staleness`` > 0) that was current less than that
    long ago reads nothing from the database to decide so (it may lag by that much anyway);
    after the window one read confirms it, and a write seen then is caught up from."""
    import clipatlas.engine as engine_module

    folder = _mk(tmp_path / "first")
    for i in range(3):
        coloured_picture(COLOURS["red"], size=(64 + 8 * i, 64)).save(folder / f"red{i}.png")
    clock = [1000.0]
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: clock[0])
    served = settings.model_copy(update={"index_staleness": 30.0})
    with Atlas.open("reads", settings=served) as web, Atlas.open("reads", settings=settings) as job:
        job.ingest(folder)
        reads: list[float] = []
        version = web.store.version
        monkeypatch.setattr(web.store, "version", lambda c: reads.append(clock[0]) or version(c))
        first = web.index()
        reads.clear()
        clock[0] += 29.0
        assert web.index() is first and reads == []  # built 29 s ago: no read
        clock[0] += 2.0
        assert web.index() is first and reads == [1031.0]  # 31 s: read once, still current
        clock[0] += 29.0
        assert web.index() is first and reads == [1031.0]  # confirmed 29 s ago: no read
        coloured_picture(COLOURS["blue"]).save(folder / "blue.png")
        job.ingest(folder)
        clock[0] += 2.0
        assert len(web.index(max_staleness=0)) == 4  # asked for current: read and caught up


def test_one_atlas_serves_concurrent_searches_from_many_threads(colour_atlas: Atlas) -> None:
    from concurrent.futures import ThreadPoolExecutor

    words = [name for name in COLOURS for _ in range(8)]
    expected = {w: [h.id for h in colour_atlas.search_text(w, k=3)] for w in COLOURS}
    fresh = Atlas.open("colours", settings=colour_atlas.settings, create=False)
    with ThreadPoolExecutor(8) as pool:  # first use (embedder, index) races on purpose
        found = list(pool.map(lambda w: (w, [h.id for h in fresh.search_text(w, k=3)]), words))
    assert all(ids == expected[w] for w, ids in found)
    fresh.close()


@pytest.mark.parametrize("running", [1, 2, 8])
def test_a_split_scan_is_taken_only_with_cores_to_spare_and_finds_the_same_hits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, running: int
) -> None:
    import clipatlas.index.exact as exact
    from clipatlas.index.cache import open_flat, write_flat

    rng = np.random.default_rng(5)
    m = rng.standard_normal((3000, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    write_flat(tmp_path / "v.faiss", m, "float16")
    opened = open_flat(tmp_path / "v.faiss", 3000)
    assert opened is not None
    index = ExactIndex(np.arange(100, 3100), opened.matrix, opened.flat)
    searched_ranges: list[object] = []
    real_map = exact._threads().map

    def counting_map(fn: object, params: list[object]) -> object:
        searched_ranges.extend(params)
        return real_map(fn, params)  # type: ignore[arg-type]

    monkeypatch.setattr(exact, "_SPLIT_MIN", 1000)
    monkeypatch.setattr(exact.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(exact, "_busy_cores", lambda: running)
    monkeypatch.setattr(exact._threads(), "map", counting_map)
    q = m[[7, 2999]] + 0.01
    _, ids = index.search(q, 10)
    assert len(searched_ranges) == (2 if running == 1 else 0)  # a free core: a range per core
    brute = np.asarray(opened.matrix, dtype=np.float32) @ q.T
    assert (ids == np.argsort(-brute.T, axis=1, kind="stable")[:, :10] + 100).all()


def test_the_busy_core_count_is_read_now_and_counts_the_caller() -> None:
    from clipatlas.index.exact import _busy_cores

    assert 1 <= _busy_cores() < 10_000  # this thread is running while it asks
