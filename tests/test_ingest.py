from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.errors import EmbedderMismatchError
from clipatlas.settings import Settings
from tests.corpus import coloured_picture, write_corpus, write_good_jpegs


def test_a_folder_of_hostile_files_ingests_every_good_picture_once_and_records_every_bad_one(
    settings: Settings, tmp_path: Path
) -> None:
    expected = write_corpus(tmp_path / "in")
    with Atlas.open("corpus", settings=settings) as atlas:
        report = atlas.ingest(tmp_path / "in")
        items = atlas.store.get_items(atlas.collection, range(1, 10_000))
        stats = atlas.stats()
    by_key = {it.source_key: it for it in items}
    assert set(by_key) == set(expected), "every file must be recorded exactly once"
    for key, reason in expected.items():
        it = by_key[key]
        if reason is None:
            assert it.status == "ok" and it.has_vector, key
            assert it.thumb_path and (atlas.media_root / it.thumb_path).is_file(), key
        else:
            assert (it.status, it.reason) == ("rejected", reason), key
    want = Counter(r for r in expected.values() if r is not None)
    assert report.reasons == want
    assert dict(stats.reasons) == dict(sorted(want.items()))
    assert stats.stored == report.stored == sum(r is None for r in expected.values())
    assert stats.vectors == stats.stored


def test_ingesting_the_same_folder_twice_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    write_good_jpegs(tmp_path / "in", 12, size=(96, 64))
    with Atlas.open("twice", settings=settings) as atlas:
        first = atlas.ingest(tmp_path / "in")
        second = atlas.ingest(tmp_path / "in")
        stats = atlas.stats()
    assert (first.stored, second.stored, second.skipped, second.embedded) == (12, 0, 12, 0)
    assert stats.stored == 12 and stats.vectors == 12


def test_a_changed_file_is_processed_again_and_replaces_its_row(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.jpg").write_bytes(b"<html>not yet</html>")
    with Atlas.open("changed", settings=settings) as atlas:
        assert atlas.ingest(folder).reasons == {"not_an_image": 1}
        coloured_picture((200, 30, 30)).save(folder / "x.jpg")
        os.utime(folder / "x.jpg", (1e9, 1e9))
        report = atlas.ingest(folder)
        stats = atlas.stats()
    assert report.stored == 1 and (stats.stored, stats.rejected) == (1, 0)


def test_decode_workers_in_processes_store_the_same_rows_as_inline_decoding(
    settings: Settings, tmp_path: Path
) -> None:
    expected = write_corpus(tmp_path / "in")
    results = []
    for name, workers in (("inline", -1), ("procs", 2)):
        with Atlas.open(name, settings=settings.model_copy(update={"workers": workers})) as atlas:
            atlas.ingest(tmp_path / "in")
            items = atlas.store.get_items(atlas.collection, range(1, 10_000))
            ids, matrix = atlas.store.load_vectors(atlas.collection)
            keys = {it.id: it.source_key for it in items}
            results.append(
                (
                    sorted((it.source_key, it.status, it.reason, it.sha256) for it in items),
                    {keys[int(i)]: row for i, row in zip(ids, matrix, strict=True)},
                )
            )
    assert results[0][0] == results[1][0]
    assert len(results[0][0]) == len(expected)
    for key, vec in results[0][1].items():
        np.testing.assert_allclose(vec, results[1][1][key], atol=1e-3)


def test_symlinks_never_lead_outside_the_ingest_root(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_good_jpegs(outside, 2, size=(64, 64))
    root = tmp_path / "root"
    write_good_jpegs(root, 1, size=(64, 64), seed=7)
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "link-file.jpg").symlink_to(next(outside.iterdir()))
    (root / "loop").symlink_to(root, target_is_directory=True)
    with Atlas.open("links", settings=settings) as atlas:
        report = atlas.ingest(root)
    assert report.stored == 1
    assert report.outside_root == 2


def test_a_collection_refuses_a_second_embedder(settings: Settings, tmp_path: Path) -> None:
    write_good_jpegs(tmp_path / "in", 2, size=(64, 64))
    with Atlas.open("bound", settings=settings) as atlas:
        atlas.ingest(tmp_path / "in")
    with (
        Atlas.open("bound", settings=settings, model="fake:32") as atlas,
        pytest.raises(EmbedderMismatchError),
    ):
        atlas.ingest(tmp_path / "in")


def test_ingest_without_embedding_stores_items_that_a_later_run_embeds(
    settings: Settings, tmp_path: Path
) -> None:
    write_good_jpegs(tmp_path / "in", 5, size=(64, 64))
    with Atlas.open("later", settings=settings) as atlas:
        first = atlas.ingest(tmp_path / "in", embed=False)
        assert (first.stored, first.embedded, atlas.stats().vectors) == (5, 0, 0)
        second = atlas.ingest(tmp_path / "in")
        stats = atlas.stats()
    assert (second.embedded, stats.stored, stats.vectors) == (5, 5, 5)


def test_progress_reports_reach_the_total(settings: Settings, tmp_path: Path) -> None:
    write_good_jpegs(tmp_path / "in", 20, size=(64, 64))
    events = []
    with Atlas.open("progress", settings=settings) as atlas:
        atlas.ingest(tmp_path / "in", progress=events.append)
    ingest = [e for e in events if e.stage == "ingest"]
    assert ingest[0].done == 0 and ingest[-1].done == ingest[-1].total == 20
    assert [e.done for e in ingest] == sorted(e.done for e in ingest)
