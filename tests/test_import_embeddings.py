from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipatlas import Atlas
from clipatlas.errors import EmbedderMismatchError, EmbeddingDimensionError, EmbeddingImportError
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs


@pytest.fixture
def stored_atlas(settings: Settings, tmp_path: Path) -> Atlas:
    write_good_jpegs(tmp_path / "in", 4, size=(64, 64))
    atlas = Atlas.open("byo", settings=settings)
    atlas.ingest(tmp_path / "in", embed=False)
    return atlas


def _keys(atlas: Atlas) -> list[str]:
    return sorted(it.source_key for it in atlas.store.get_items(atlas.collection, range(1, 100)))


def test_npy_vectors_with_an_ids_file_become_searchable(
    stored_atlas: Atlas, tmp_path: Path
) -> None:
    keys = _keys(stored_atlas)
    vectors = np.eye(4, 16, dtype=np.float32) * 3.0  # not normalised on purpose
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.txt").write_text("\n".join(keys) + "\n")
    report = stored_atlas.import_embeddings(
        tmp_path / "v.npy", tmp_path / "ids.txt", embedder_id="fake:16"
    )
    assert (report.imported, report.dim) == (4, 16)
    stats = stored_atlas.stats()
    assert (stats.embedder_id, stats.dim, stats.vectors) == ("fake:16", 16, 4)
    hit = stored_atlas.search_item(stored_atlas.search_text("x", k=4)[0].id, k=1)
    assert len(hit) == 1
    _, matrix = stored_atlas.store.load_vectors(stored_atlas.collection)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-3)


def test_parquet_vectors_match_by_numeric_item_id(stored_atlas: Atlas, tmp_path: Path) -> None:
    ids = [
        str(it.id) for it in stored_atlas.store.get_items(stored_atlas.collection, range(1, 100))
    ]
    rng = np.random.default_rng(0)
    table = pa.table({"item": ids, "emb": [rng.standard_normal(8).tolist() for _ in ids]})
    pq.write_table(table, tmp_path / "v.parquet")
    report = stored_atlas.import_embeddings(
        tmp_path / "v.parquet",
        embedder_id="fake:8",
        match="id",
        id_column="item",
        vector_column="emb",
    )
    assert report.imported == 4 and stored_atlas.stats().vectors == 4


def test_every_validation_problem_is_reported_together_and_nothing_is_written(
    stored_atlas: Atlas, tmp_path: Path
) -> None:
    keys = _keys(stored_atlas)
    vectors = np.ones((5, 16), dtype=np.float32)
    vectors[1, 3] = np.nan
    vectors[2] = 0.0
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.json").write_text(json.dumps([keys[0], keys[1], keys[2], keys[0], "nope.jpg"]))
    with pytest.raises(EmbeddingImportError) as err:
        stored_atlas.import_embeddings(
            tmp_path / "v.npy", tmp_path / "ids.json", embedder_id="fake:16"
        )
    text = " | ".join(err.value.problems)
    for expected in ("NaN", "zero vectors", "duplicate ids", "not stored source keys"):
        assert expected in text
    assert stored_atlas.stats().vectors == 0 and stored_atlas.stats().embedder_id is None


def test_vectors_of_the_wrong_dimension_or_embedder_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    write_good_jpegs(tmp_path / "in", 2, size=(64, 64))
    with Atlas.open("bound", settings=settings) as atlas:
        atlas.ingest(tmp_path / "in")  # bound to fake:64
        keys = _keys(atlas)
        np.save(tmp_path / "v.npy", np.ones((2, 32), np.float32))
        (tmp_path / "ids.txt").write_text("\n".join(keys))
        with pytest.raises(EmbeddingDimensionError, match="vectors are 32-d but the collection "
                           "holds 64-d vectors of 'fake:64'"):  # fmt: skip
            atlas.import_embeddings(tmp_path / "v.npy", tmp_path / "ids.txt")
        np.save(tmp_path / "w.npy", np.ones((2, 64), np.float32))
        with pytest.raises(EmbedderMismatchError):
            atlas.import_embeddings(tmp_path / "w.npy", tmp_path / "ids.txt", embedder_id="fake:99")


def test_npy_without_ids_and_unknown_file_types_get_clear_errors(
    stored_atlas: Atlas, tmp_path: Path
) -> None:
    np.save(tmp_path / "v.npy", np.ones((4, 8), np.float32))
    with pytest.raises(EmbeddingImportError, match="ids file is required"):
        stored_atlas.import_embeddings(tmp_path / "v.npy")
    (tmp_path / "v.csv").write_text("a,b")
    with pytest.raises(EmbeddingImportError, match="unsupported file type"):
        stored_atlas.import_embeddings(tmp_path / "v.csv")


def test_vectors_of_another_dimension_than_the_embedders_text_tower_are_refused_before_binding(
    stored_atlas: Atlas, tmp_path: Path
) -> None:
    """Issue 22: 512-d vectors offered to a collection whose model (fake:64) makes 64-d ones."""
    keys = _keys(stored_atlas)
    np.save(tmp_path / "v.npy", np.ones((4, 512), np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(keys))
    with pytest.raises(EmbeddingDimensionError) as err:
        stored_atlas.import_embeddings(tmp_path / "v.npy", tmp_path / "ids.txt")
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "v.npy") in text
    assert "512-d" in text and "'fake:64' makes 64-d" in text
    assert (err.value.got, err.value.expected, err.value.embedder) == (512, 64, "fake:64")
    stats = stored_atlas.stats()
    assert (stats.vectors, stats.embedder_id, stats.dim) == (0, None, None)
    # named as coming from a model of that dimension, they are accepted
    report = stored_atlas.import_embeddings(
        tmp_path / "v.npy", tmp_path / "ids.txt", embedder_id="fake:512"
    )
    assert (report.imported, report.dim) == (4, 512)


def test_the_cli_refuses_mismatched_vectors_in_one_line_and_stores_nothing(
    stored_atlas: Atlas, settings: Settings, tmp_path: Path
) -> None:
    from tests.test_cli import run

    keys = _keys(stored_atlas)
    np.save(tmp_path / "v.npy", np.ones((4, 512), np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(keys))
    stored_atlas.close()
    args = ["import-embeddings", str(tmp_path / "v.npy"), "--ids", str(tmp_path / "ids.txt")]
    refused = run(settings.home, *args, "--collection", "byo", check=1)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "512-d" in lines[0] and "64-d" in lines[0], refused.stderr
    assert "v.npy" in lines[0] and "Traceback" not in refused.stderr
    with Atlas.open("byo", settings=settings, create=False) as atlas:
        assert atlas.stats().vectors == 0 and atlas.runs() == []
