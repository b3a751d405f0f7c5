from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipatlas.errors import ImageDecodeError, Reason
from clipatlas.images import analyse_bytes, hamming_distance, perceptual_hash
from tests.corpus import coloured_picture, encode, textured_picture, write_corpus, write_good_jpegs


def test_every_file_of_the_corpus_gets_its_expected_outcome(tmp_path: Path) -> None:
    expected = write_corpus(tmp_path)
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == set(expected)
    outcomes: dict[str, str | None] = {}
    for name in expected:
        try:
            analyse_bytes((tmp_path / name).read_bytes(), name, draft=(256, 256))
            outcomes[name] = None
        except ImageDecodeError as exc:
            outcomes[name] = exc.reason.value
    # A duplicate is a perfectly good picture here: the ingest layer spots it by its sha256.
    assert outcomes == {k: None if v == Reason.DUPLICATE.value else v for k, v in expected.items()}


def test_the_corpus_covers_every_reason_this_package_gives_and_nests_files(tmp_path: Path) -> None:
    expected = write_corpus(tmp_path)
    reasons = {v for v in expected.values() if v is not None}
    assert reasons == {
        "not_an_image",
        "unsupported_format",
        "truncated",
        "too_large",
        "too_small",
        "duplicate",
    }
    assert sum(v is None for v in expected.values()) >= 15
    assert any(name.count("/") >= 3 for name in expected)


def test_each_duplicate_in_the_corpus_copies_a_good_file_that_sorts_before_it(
    tmp_path: Path,
) -> None:
    expected = write_corpus(tmp_path)
    by_hash: dict[str, list[str]] = {}
    for name in sorted(expected):
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        by_hash.setdefault(digest, []).append(name)
    groups = [names for names in by_hash.values() if len(names) > 1]
    assert groups and all(expected[g[0]] is None for g in groups)
    assert all(expected[n] == "duplicate" for g in groups for n in g[1:])
    assert sum(v == "duplicate" for v in expected.values()) == sum(len(g) - 1 for g in groups)


def test_analysis_reports_hashes_format_and_the_full_size_of_a_draft_decode() -> None:
    data = encode(textured_picture(61, (768, 512)), "JPEG", quality=90)
    pic = analyse_bytes(data, "x", draft=(224, 224))
    assert pic.sha256 == hashlib.sha256(data).hexdigest()
    assert (pic.format, pic.width, pic.height) == ("JPEG", 768, 512)
    assert pic.image.mode == "RGB" and pic.image.size == (384, 256)
    assert pic.phash == perceptual_hash(pic.image)
    assert (pic.quality.width, pic.quality.height, pic.quality.aspect) == (768, 512, 1.5)
    full = analyse_bytes(data, "x")
    assert hamming_distance(full.phash, pic.phash) <= 4
    assert 0.7 < full.quality.sharpness / pic.quality.sharpness < 1.4


def test_a_512_by_768_jpeg_with_a_draft_analyses_in_a_few_milliseconds() -> None:
    data = encode(textured_picture(62, (512, 768)), "JPEG", quality=90)
    analyse_bytes(data, "warm-up", draft=(224, 224))
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        analyse_bytes(data, "x", draft=(224, 224))
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.025  # about 2-3 ms on one core of the dev machine


@pytest.mark.parametrize(
    ("error", "reason"),
    [(RuntimeError("boom"), Reason.DECODE_ERROR), (MemoryError(), Reason.TOO_LARGE)],
)
def test_a_failure_after_decoding_is_still_an_image_decode_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception, reason: Reason
) -> None:
    def failing(*_: object) -> None:
        raise error

    monkeypatch.setattr("clipatlas.images.analyse.quality_metrics", failing)
    with pytest.raises(ImageDecodeError) as info:
        analyse_bytes(encode(textured_picture(63, (64, 64)), "PNG"), "x")
    assert info.value.reason is reason


def test_the_images_package_does_not_import_torch() -> None:
    code = "import sys, clipatlas.images; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_good_jpegs_are_distinct_pictures_of_the_requested_size(tmp_path: Path) -> None:
    paths = write_good_jpegs(tmp_path / "in", 6, size=(96, 64), seed=3)
    assert [p.name for p in paths] == [f"s3-{i:04d}.jpg" for i in range(6)]
    pics = [analyse_bytes(p.read_bytes(), p.name) for p in paths]
    assert {(p.width, p.height) for p in pics} == {(96, 64)}
    assert len({p.sha256 for p in pics}) == 6
    assert min(hamming_distance(a.phash, b.phash) for a in pics for b in pics if a is not b) > 6
    again = write_good_jpegs(tmp_path / "again", 1, size=(96, 64), seed=3)
    assert again[0].read_bytes() == paths[0].read_bytes()


def test_a_coloured_picture_is_the_colour_with_slight_noise() -> None:
    picture = coloured_picture((200, 30, 30), size=(80, 60))
    assert picture.mode == "RGB" and picture.size == (80, 60)
    low, high = zip(*picture.getextrema(), strict=True)
    assert all(abs(a - b) <= 3 for a, b in zip(low, (200, 30, 30), strict=True))
    assert all(abs(a - b) <= 3 for a, b in zip(high, (200, 30, 30), strict=True))
