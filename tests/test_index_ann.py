from __future__ import annotations

import gc
from pathlib import Path

import faiss
import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.index import ann as ann_module
from clipatlas.index.ann import AnnConfig, AnnIndex, build_ann, choose_kind, load_ann, save_ann
from clipatlas.index.cache import open_flat, write_flat
from clipatlas.index.exact import ExactIndex
from clipatlas.settings import Settings
from clipatlas.store.base import NewItem


def clustered(n: int, dim: int, groups: int = 50, spread: float = 0.6, seed: int = 0) -> np.ndarray:
    """Unit vectors around `groups` centres: structured like real embeddings, unlike noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, dim)).astype(np.float32)
    x = centres[rng.integers(0, groups, n)] + spread * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ np.asarray(matrix, np.float32).T), axis=1, kind="stable")[:, :k]


def mappings_of(path: Path) -> int:
    """How many memory mappings of ``path`` this process has (Linux)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    return len({line.split()[0] for line in maps if line.endswith(str(path.resolve()))})


def test_the_flat_file_is_memory_mapped_and_its_rows_are_the_float16_vectors(
    tmp_path: Path,
) -> None:
    x = clustered(3000, 32)
    write_flat(tmp_path / "v.faiss", x, "float16")
    opened = open_flat(tmp_path / "v.faiss", 3000)
    assert opened is not None
    assert opened.matrix.dtype == np.float16 and not opened.matrix.flags.writeable
    assert mappings_of(tmp_path / "v.faiss") == 1  # FAISS's mapping, viewed: not mapped twice
    np.testing.assert_array_equal(opened.matrix, x.astype(np.float16))
    index = ExactIndex(np.arange(100, 3100), opened.matrix, opened.flat)
    queries = x[[0, 1234, 2999]]
    scores, ids = index.search(queries, 10)
    assert (ids == brute_force(opened.matrix, queries, 10) + 100).all()
    expected = np.sort(queries @ opened.matrix.astype(np.float32).T, axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert open_flat(tmp_path / "v.faiss", 2999) is None  # a count mismatch is not trusted
    rows = opened.matrix[5:7]
    del opened, index
    gc.collect()  # the slice keeps FAISS's index, and so the mapping, alive
    np.testing.assert_array_equal(rows, x[5:7].astype(np.float16))


def test_the_kind_is_chosen_by_collection_size() -> None:
    config = AnnConfig(threshold=1000, hnsw_max=5000)
    assert choose_kind(999, config) is None
    assert choose_kind(1000, config) == "hnsw"
    assert choose_kind(5000, config) == "ivf"
    assert choose_kind(10**9, AnnConfig(threshold=0)) is None
    assert choose_kind(2000, AnnConfig(threshold=1000, kind="ivf")) == "ivf"


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_an_ann_index_reaches_the_target_recall_and_returns_exact_cosines(
    kind: str, tmp_path: Path
) -> None:
    x, queries = np.split(clustered(8200, 32, groups=80), [8000])
    exact = ExactIndex(np.arange(8000) * 3, x)
    built = build_ann(exact, kind, "tok", AnnConfig(target_recall=0.95, sample=100))
    report = built.report
    assert report.kind == kind and report.count == 8000 and report.sample == 100
    assert report.recall_at_10 >= 0.95 and report.meets_target and report.effort > 0
    # recall measured again on queries the build never saw
    truth = exact.search(queries, 10)[1]
    _, found = built.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.9
    scores, ids = built.search(queries[:5], 10)
    rows = ids // 3
    rescored = np.einsum("qkd,qd->qk", x[rows], queries[:5])
    np.testing.assert_allclose(scores, rescored, atol=1e-5)  # true cosines, best first
    assert np.all(np.diff(scores, axis=1) <= 0)
    # stored beside the index, reloaded memory-mapped, refused for another fingerprint
    save_ann(built, tmp_path / "a.faiss", tmp_path / "a.json")
    again = load_ann(exact, tmp_path / "a.faiss", tmp_path / "a.json", "tok")
    assert again is not None and again.report == report
    assert (again.search(queries[:5], 10)[1] == ids).all()
    assert load_ann(exact, tmp_path / "a.faiss", tmp_path / "a.json", "other") is None


def test_queries_the_ann_index_cannot_fill_are_answered_exactly() -> None:
    x = clustered(3000, 16, groups=30)
    exact = ExactIndex(np.arange(3000), x)
    built = build_ann(exact, "ivf", "t", AnnConfig(sample=50))
    _scores, ids = built.search(x[:2], 3000, effort=1)  # one list cannot hold every row
    assert sorted(ids[0].tolist()) == list(range(3000))
    np.testing.assert_array_equal(ids, exact.search(x[:2], 3000)[1])


def test_faiss_scores_query_batches_with_blas() -> None:
    faiss.cvar.distance_compute_blas_threshold = 128000
    ann_module.tune_faiss()
    assert faiss.cvar.distance_compute_blas_threshold == 20


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets "built" each time the index cache builds an ANN index."""
    calls: list[str] = []
    real_build = ann_module.build_ann
    monkeypatch.setattr(
        "clipatlas.index.cache.build_ann",
        lambda *a, **kw: calls.append("built") or real_build(*a, **kw),
    )
    return calls


def _fill(atlas: Atlas, vectors: np.ndarray, start: int = 0) -> None:
    atlas._bind("fake:32", vectors.shape[1])
    items = [
        NewItem(source="gen", source_key=f"k{start + i}", uri=f"gen://{start + i}")
        for i in range(len(vectors))
    ]
    atlas.store.write_batch(atlas.collection, items, vectors)


def test_a_large_collection_searches_through_a_stored_ann_index(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = settings.model_copy(
        update={"ann_threshold": 2000, "ann_hnsw_max": 10**6, "index_flat_min": 1000}
    )
    x = clustered(2500, 32, groups=40)
    with Atlas.open("big", settings=big) as atlas:
        _fill(atlas, x)
        index = atlas.index()
        assert isinstance(index, AnnIndex) and index.report.kind == "hnsw"
        assert index.report.meets_target and not index.matrix.flags.writeable
        assert mappings_of(next(atlas.cache_dir.glob("vectors-*.faiss"))) == 1
        names = sorted(
            p.name.split("-")[0] + p.suffix
            for p in atlas.cache_dir.iterdir()
            if not p.name.startswith(".")  # the rebuild lock
        )
        assert names == ["ann.faiss", "ann.json", "ann.npy", "ids.npy", "vectors.faiss"]
        hits = atlas.search_item(int(index.ids[7]), k=5)
        assert len(hits) == 5 and int(index.ids[7]) not in {h.id for h in hits}
        exact_ids = index.search_exact(x[7:8], 6)[1][0].tolist()
        assert len({h.id for h in hits} & set(exact_ids)) >= 4
    calls = count_builds(monkeypatch)
    with Atlas.open("big", settings=big) as reopened:  # opens what is on disk
        assert isinstance(reopened.index(), AnnIndex) and calls == []
        _fill(reopened, clustered(10, 32, seed=5), start=2500)  # a small change: caught up
        assert len(reopened.index()) == 2510 and calls == []
        _fill(reopened, clustered(200, 32, seed=6), start=2510)  # 8% new: rebuilt once
        assert len(reopened.index()) == 2710 and calls == ["built"]
        assert len(list(reopened.cache_dir.glob("ann-*.json"))) == 1


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_ann_index_of_an_earlier_state_serves_the_changed_collection(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A served collection refreshes its index every few seconds while an ingest writes; the
    ANN index (minutes to build at 1M) is not rebuilt for a few changed rows: it serves the
    rows it holds, the changed ones are searched exactly, and what is gone is never returned."""
    big = settings.model_copy(
        update={"ann_threshold": 2000, "ann_kind": kind, "index_flat_min": 1000}
    )
    x = clustered(2500, 32, groups=40)
    calls = count_builds(monkeypatch)
    with Atlas.open("big", settings=big) as atlas:
        _fill(atlas, x)
        first = atlas.index()
        assert isinstance(first, AnnIndex) and calls == ["built"]
        store, c = atlas.store, atlas.collection
        ids = [int(i) for i in first.ids]
        new = clustered(20, 32, groups=3, seed=9)  # new items
        _fill(atlas, new, start=5000)
        moved = clustered(5, 32, seed=10)  # re-embedded in place
        store.put_vectors(c, ids[100:105], moved)
        store.reject_items(c, [(ids[7], "manual", {}), (ids[8], "manual", {})])
        served = atlas.index(max_staleness=0)

        assert calls == ["built"]  # not rebuilt
        assert isinstance(served, AnnIndex) and served.recent is not None
        assert len(served) == 2500 + 20 - 2
        queries = np.vstack([new[:5], moved, x[7:9], x[100:105], x[200:220]])
        scores, found = served.search(queries, 10)
        _, truth = served.search_exact(queries, 10)
        assert {ids[7], ids[8]}.isdisjoint(found.ravel().tolist())  # rejected: never returned
        new_ids = store.find_items(c, source_keys=[f"k{5000 + i}" for i in range(5)])
        assert found[:5, 0].tolist() == [new_ids[f"k{5000 + i}"] for i in range(5)]  # new: found
        assert found[5:10, 0].tolist() == ids[100:105]  # re-embedded: found by the new vector
        np.testing.assert_allclose(scores[:5, 0], 1.0, atol=1e-3)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall >= 0.9
        # exact scores for what is returned (rescored against the rows stored now)
        rows = np.searchsorted(served.ids, found)
        expected = np.einsum("qkd,qd->qk", np.asarray(served.matrix[rows], np.float32), queries)
        np.testing.assert_allclose(scores, expected, atol=1e-5)

    with Atlas.open("big", settings=big) as reopened:  # a new process: the same from disk
        again = reopened.index()
        assert calls == ["built"] and isinstance(again, AnnIndex) and again.recent is not None
        np.testing.assert_array_equal(again.search(queries, 10)[1], found)


def test_small_collections_stay_exact(settings: Settings) -> None:
    with Atlas.open("small", settings=settings) as atlas:
        _fill(atlas, clustered(300, 32))
        index = atlas.index()
        assert not isinstance(index, AnnIndex) and index.flat is None
        assert [
            p.name.split("-")[0]
            for p in sorted(atlas.cache_dir.iterdir())
            if not p.name.startswith(".")  # the rebuild lock
        ] == [
            "ids",
            "vectors",
        ]


def test_one_query_split_over_the_cores_matches_one_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipatlas.index import exact as exact_module

    monkeypatch.setattr(exact_module, "_SPLIT_MIN", 10)
    monkeypatch.setattr(exact_module.os, "cpu_count", lambda: 3)
    x = clustered(40, 16, groups=4)
    write_flat(tmp_path / "v.faiss", x, "float16")
    opened = open_flat(tmp_path / "v.faiss", 40)
    assert opened is not None
    index = ExactIndex(np.arange(40) + 7, opened.matrix, opened.flat)
    for k in (5, 20, 40):  # 20 and 40: more than one range holds
        scores, ids = index.search(x[3], k)
        assert ids.shape == (1, k) and np.isfinite(scores).all()
        assert (ids[0] == brute_force(opened.matrix, x[3:4], k)[0] + 7).all()
    assert exact_module.faiss.omp_get_max_threads() >= 1


def test_an_ann_index_without_its_entry_ids_is_rebuilt_not_guessed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ANN index stored before its entries' ids were (or whose ids file is gone) cannot be
    mapped to a newer state: the change rebuilds it."""
    big = settings.model_copy(
        update={"ann_threshold": 2000, "ann_kind": "ivf", "index_flat_min": 1000}
    )
    calls = count_builds(monkeypatch)
    with Atlas.open("big", settings=big) as atlas:
        _fill(atlas, clustered(2500, 32, groups=40))
        atlas.index()
        (ids_file,) = atlas.cache_dir.glob("ann-*.ids.npy")
        ids_file.unlink()
        _fill(atlas, clustered(10, 32, seed=5), start=2500)
        index = atlas.index(max_staleness=0)
        assert calls == ["built", "built"] and isinstance(index, AnnIndex)
        assert index.recent is None and len(index) == 2510
