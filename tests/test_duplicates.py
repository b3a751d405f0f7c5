from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from skimage import data as skdata

from clipatlas import Atlas
from clipatlas.analysis.duplicates import (
    DuplicateReport,
    cosine_pairs,
    keep_order,
    phash_pairs,
    phash_to_uint64,
)
from clipatlas.errors import ConfigError
from clipatlas.images.hashing import hamming_distance
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs
from tests.test_cli import run


def _write_collection(folder: Path) -> dict[str, str]:
    """Three pictures with edited copies, and unrelated ones; file name -> group label."""
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(skdata.astronaut())
    astronaut.save(folder / "astronaut.png")
    astronaut.resize((256, 256), Image.Resampling.LANCZOS).save(folder / "astronaut-small.png")
    chelsea = Image.fromarray(skdata.chelsea())
    chelsea.save(folder / "chelsea.jpg", quality=95)
    chelsea.save(folder / "chelsea-q40.jpg", quality=40)
    w, h = chelsea.size
    chelsea.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(folder / "chelsea-crop.jpg")
    coffee = Image.fromarray(skdata.coffee())
    coffee.save(folder / "coffee.png")
    ImageEnhance.Brightness(coffee).enhance(1.08).save(folder / "coffee-bright.png")
    labels = {
        "astronaut.png": "astronaut",
        "astronaut-small.png": "astronaut",
        "chelsea.jpg": "chelsea",
        "chelsea-q40.jpg": "chelsea",
        "chelsea-crop.jpg": "chelsea",
        "coffee.png": "coffee",
        "coffee-bright.png": "coffee",
    }
    rocket = Image.fromarray(skdata.rocket())
    rocket.save(folder / "rocket.png")
    w, h = rocket.size  # a 3% crop: pHash moves ~12 bits, the embedding hardly at all
    rocket.crop((w * 3 // 100, h * 3 // 100, w - w * 3 // 100, h - h * 3 // 100)).save(
        folder / "rocket-crop.png"
    )
    Image.fromarray(skdata.camera()).save(folder / "camera.png")
    labels.update({"rocket.png": "rocket", "rocket-crop.png": "rocket", "camera.png": "camera"})
    for path in write_good_jpegs(folder, 4, size=(320, 240), seed=7):
        labels[path.name] = path.name
    return labels


@pytest.fixture
def atlas(settings: Settings, tmp_path: Path) -> tuple[Atlas, dict[str, str]]:
    labels = _write_collection(tmp_path / "pictures")
    opened = Atlas.open("dups", settings=settings)
    report = opened.ingest(tmp_path / "pictures")
    assert report.stored == len(labels)
    return opened, labels


def _ids(atlas: Atlas) -> dict[str, int]:
    return {
        it.source_key: it.id
        for page in atlas.store.iter_items(atlas.collection, status="ok")
        for it in page
    }


def test_edited_copies_form_one_group_each_and_unrelated_pictures_none(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, labels = atlas
    ids = _ids(collection)
    report = collection.find_duplicates()
    name_of = {v: k for k, v in ids.items()}
    groups = {
        frozenset(name_of[i] for i in (g.kept, *(m.id for m in g.others))) for g in report.groups
    }
    expected = {
        frozenset(n for n in labels if labels[n] == label)
        for label in ("astronaut", "chelsea", "coffee", "rocket")
    }
    assert groups == expected
    assert report.compared == len(labels) and report.duplicates == 5


def test_each_group_keeps_the_largest_picture_then_the_sharpest_then_the_lowest_id(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, _ = atlas
    report = collection.find_duplicates()
    kept_names = {report.details[g.kept].source_key for g in report.groups}
    assert "astronaut.png" in kept_names  # the full-size copy beats the half-size one
    for group in report.groups:
        members = [report.details[i] for i in (group.kept, *(m.id for m in group.others))]
        best = max(
            members, key=lambda it: ((it.width or 0) * (it.height or 0), it.sharpness, -it.id)
        )
        assert group.kept == best.id


def test_finding_duplicates_without_applying_changes_nothing(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, labels = atlas
    before = collection.stats()
    report = collection.find_duplicates()
    assert report.groups and not report.applied and report.marked == 0
    after = collection.stats()
    assert after == before and after.stored == len(labels)


def test_applying_rejects_only_the_other_copies_and_search_no_longer_returns_them(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, labels = atlas
    found = collection.find_duplicates()
    others = {m.id: (g.kept, m) for g in found.groups for m in g.others}
    assert len(collection.search_item(found.groups[0].kept, k=50)) == len(labels) - 1
    report = collection.mark_duplicates()
    assert report.applied and report.marked == len(others) == 5
    stats = collection.stats()
    assert stats.stored == len(labels) - 5 and stats.reasons == {"duplicate": 5}
    for item in collection.store.get_items(collection.collection, list(others)):
        kept, member = others[item.id]
        assert item.status == "rejected" and item.reason == "duplicate"
        assert item.meta["duplicate_of"] == kept
        assert item.meta["near_duplicate"]["phash_distance"] == member.phash_distance
        assert item.meta["near_duplicate"]["cosine"] == pytest.approx(member.cosine)
    kept_ids = {g.kept for g in found.groups}
    assert all(
        it.status == "ok" for it in collection.store.get_items(collection.collection, kept_ids)
    )
    hits = collection.search_item(found.groups[0].kept, k=50)
    assert len(hits) == len(labels) - 6 and not {h.id for h in hits} & set(others)
    assert collection.find_duplicates().groups == ()
    # the searchable vector count, the fingerprint and the index agree after marking
    assert collection.stats().vectors == stats.stored == len(collection.index())
    assert collection.store.fingerprint(collection.collection).count == stats.stored


def _reference_groups(n: int, close: list[tuple[int, int]]) -> set[frozenset[int]]:
    """Connected components by repeated merging: slow and obviously right."""
    sets = [{i} for i in range(n)]
    for a, b in close:
        sa = next(x for x in sets if a in x)
        sb = next(x for x in sets if b in x)
        if sa is not sb:
            sets.remove(sb)
            sa |= sb
    return {frozenset(x) for x in sets if len(x) > 1}


def _groups(report: DuplicateReport) -> set[frozenset[int]]:
    return {frozenset((g.kept, *(m.id for m in g.others))) for g in report.groups}


@pytest.mark.parametrize("distance", [0, 4, 10, 64])
def test_phash_threshold_is_respected(atlas: tuple[Atlas, dict[str, str]], distance: int) -> None:
    collection, _ = atlas
    items = [it for page in collection.store.iter_items(collection.collection) for it in page]
    close = [
        (a.id, b.id)
        for a, b in itertools.combinations(items, 2)
        if hamming_distance(a.phash or "", b.phash or "") <= distance
    ]
    want = {frozenset(g) for g in _reference_groups(max(it.id for it in items) + 1, close)}
    report = collection.find_duplicates(phash_distance=distance, cosine=None)
    assert _groups(report) == want
    assert all(m.cosine is not None for g in report.groups for m in g.others)


@pytest.mark.parametrize("threshold", [0.99, 0.999, 0.9999])
def test_cosine_threshold_is_respected(
    atlas: tuple[Atlas, dict[str, str]], threshold: float
) -> None:
    collection, _ = atlas
    ids, vectors = collection.store.load_vectors(collection.collection)
    sims = vectors @ vectors.T
    close = [
        (int(ids[a]), int(ids[b]))
        for a, b in itertools.combinations(range(len(ids)), 2)
        if sims[a, b] >= threshold
    ]
    report = collection.find_duplicates(phash_distance=None, cosine=threshold)
    assert _groups(report) == _reference_groups(int(ids.max()) + 1, close)


def test_the_default_thresholds_catch_a_crop_by_cosine_when_phash_misses_it(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, _ = atlas
    ids = _ids(collection)
    crop = ids["rocket-crop.png"]
    by_phash = collection.find_duplicates(cosine=None)
    assert crop not in {i for g in _groups(by_phash) for i in g}
    both = collection.find_duplicates()
    assert frozenset({ids["rocket.png"], crop}) in _groups(both)


def test_asking_for_no_test_or_an_impossible_threshold_is_a_config_error(
    atlas: tuple[Atlas, dict[str, str]],
) -> None:
    collection, _ = atlas
    with pytest.raises(ConfigError):
        collection.find_duplicates(phash_distance=None, cosine=None)
    with pytest.raises(ConfigError):
        collection.find_duplicates(phash_distance=65)
    with pytest.raises(ConfigError):
        collection.find_duplicates(cosine=1.5)


@pytest.mark.parametrize("native_popcount", [True, False])
def test_phash_pairs_match_a_brute_force_comparison(
    native_popcount: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native_popcount and hasattr(np, "bitwise_count"):
        monkeypatch.delattr(np, "bitwise_count")
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (40, 3)).astype(np.uint64)
    hashes = np.concatenate([base, base ^ flips[:, 0], base ^ flips[:, 0] ^ flips[:, 1]])
    i, j, d = phash_pairs(hashes, 2)
    got = set(zip(i.tolist(), j.tolist(), d.tolist(), strict=True))
    want = {
        (a, b, int(hashes[a] ^ hashes[b]).bit_count())
        for a, b in itertools.combinations(range(len(hashes)), 2)
        if int(hashes[a] ^ hashes[b]).bit_count() <= 2
    }
    assert got == want and len(want) >= 80
    i, _, d = phash_pairs(np.repeat(hashes[:1], 10), 0, max_neighbours=3)
    assert np.bincount(i).max() == 3 and not d.any()


def test_cosine_pairs_match_a_brute_force_comparison_and_cap_neighbours() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((50, 16)).astype(np.float32)
    vectors = np.concatenate([vectors, vectors + 0.05 * rng.standard_normal((50, 16))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    i, j, c = cosine_pairs(vectors, 0.98)
    sims = vectors @ vectors.T
    want = {(a, b) for a, b in itertools.combinations(range(100), 2) if sims[a, b] >= 0.98}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want and len(want) >= 50
    assert np.allclose(c, sims[i, j], atol=1e-5)
    same = np.repeat(vectors[:1], 10, axis=0)
    i, _, _ = cosine_pairs(same, 0.99, max_neighbours=3)
    assert np.bincount(i).max() == 3


def test_keep_order_prefers_area_then_sharpness_then_lowest_id() -> None:
    ids = np.array([5, 3, 9, 4])
    area = np.array([100, 100, 400, 100])
    sharpness = np.array([2.0, 2.0, 0.5, np.nan])
    assert np.argsort(keep_order(ids, area, sharpness)).tolist() == [2, 1, 0, 3]


def test_malformed_or_missing_phashes_are_left_out() -> None:
    values, present = phash_to_uint64(["00000000000000ff", None, "xyz", "0" * 15])
    assert present.tolist() == [True, False, False, False] and int(values[0]) == 255


def test_duplicates_command_reports_as_json_and_applies(tmp_path: Path) -> None:
    labels = _write_collection(tmp_path / "pictures")
    home = tmp_path / "home"
    run(home, "ingest", str(tmp_path / "pictures"), "-c", "cli")
    report = json.loads(run(home, "duplicates", "-c", "cli", "--json").stdout)
    assert len(report["groups"]) == 4 and report["duplicates"] == 5 and not report["applied"]
    group = report["groups"][0]
    assert group["kept_uri"] and {"id", "uri", "phash_distance", "cosine"} <= set(
        group["others"][0]
    )
    info = json.loads(run(home, "info", "-c", "cli", "--json").stdout)
    assert info["stored"] == len(labels)
    strict = json.loads(
        run(
            home, "duplicates", "-c", "cli", "--phash-distance", "0", "--cosine", "2", "--json"
        ).stdout
    )
    assert strict["cosine"] is None and strict["duplicates"] < 5
    text = run(home, "duplicates", "-c", "cli").stdout
    assert "would reject 5" in text and "keep" in text
    applied = json.loads(run(home, "duplicates", "-c", "cli", "--apply", "--json").stdout)
    assert applied["applied"] and applied["marked"] == 5
    info = json.loads(run(home, "info", "-c", "cli", "--json").stdout)
    assert info["stored"] == len(labels) - 5 and info["reasons"] == {"duplicate": 5}
