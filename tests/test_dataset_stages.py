"""Dataset builder stages on their own: names, quality, meaning, report, export safety."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipatlas.dataset import MeaningConfig, QualityConfig, safe_name, slug
from clipatlas.dataset.export import check_output, finalize, staging
from clipatlas.dataset.meaning import QueryVectors, meaning_stage
from clipatlas.dataset.naming import image_name
from clipatlas.dataset.quality import Survivor, quality_stage
from clipatlas.dataset.report import ReportEntry, render_report
from clipatlas.dataset.state import CandidateRow
from clipatlas.embedders.base import l2_normalize
from clipatlas.errors import ConfigError, DatasetExistsError, WeakClusterError
from clipatlas.sources.base import Candidate
from clipatlas.store.base import Item

# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("고양이", "고양이"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1", "_com1"),
        ("cats...  ", "cats"),
        ('a<b>c:d"e/f\\g|h?i*j', "a_b_c_d_e_f_g_h_i_j"),
        ("tab\there\nnewline", "tab_here_newline"),
        ("...", "dataset"),
        ("", "dataset"),
        ("..", "dataset"),
    ],
)
def test_safe_names_are_portable_whatever_the_text(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_long_and_decomposed_names_are_cut_on_characters_and_normalised() -> None:
    decomposed = unicodedata.normalize("NFD", "고양이")
    assert decomposed != "고양이" and safe_name(decomposed) == "고양이"
    long = "고양이" * 100
    name = safe_name(long)
    assert len(name.encode("utf-8")) <= 120 and name.startswith("고양이")
    assert name != safe_name(long + "!"), "cut names stay distinct (hash suffix)"
    assert slug("고양이").startswith("q-") and slug("Red Fox!").startswith("red-fox-")
    assert slug("고양이") != slug("호랑이")
    assert image_name(7, 50, "jpg") == "img_0007.jpg"
    assert image_name(7, 12345, "jpg") == "img_00007.jpg"


# -- quality ---------------------------------------------------------------------------------


def _item(id: int, key: str, **fields: Any) -> Item:
    values: dict[str, Any] = dict(
        id=id, source="urls", source_key=key, uri=key, status="ok", reason=None, detail=None,
        sha256=f"{id:064x}", phash=f"{(id * 0x9E3779B97F4A7C15) % 2**64:016x}",
        format="JPEG", media_path=None,
        thumb_path=None, size_bytes=1000, width=640, height=480, aspect=640 / 480,
        sharpness=500.0, meta={}, has_vector=True,
    )  # fmt: skip
    values.update(fields)
    return Item(**values)


def _row(position: int, key: str) -> CandidateRow:
    return CandidateRow(position, Candidate("urls", key, key))


def test_the_quality_stage_names_the_stage_and_reason_of_every_drop() -> None:
    specs: dict[str, dict[str, Any]] = {
        "good": {},
        "small": {"width": 299, "height": 400},
        "strip": {"width": 1600, "height": 400},
        "soft": {"sharpness": 99.0},
        "gone": {"status": "rejected", "reason": "http_error", "detail": "HTTP 404"},
        "page": {"status": "rejected", "reason": "not_an_image"},
        "copy": {"status": "rejected", "reason": "duplicate", "meta": {"duplicate_of": 1}},
    }
    rows = [_row(i, key) for i, key in enumerate(specs)]
    items = {("urls", k): _item(i + 1, k, **f) for i, (k, f) in enumerate(specs.items())}
    nothing = (np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    dropped, survivors = quality_stage(rows, items, {}, nothing, QualityConfig())
    assert [s.row.candidate.key for s in survivors] == ["good"]
    got = {specs_key(rows, o.position): (o.stage, o.reason) for o in dropped}
    assert got == {
        "small": ("quality", "too_small"), "strip": ("quality", "bad_aspect"),
        "soft": ("quality", "blurry"), "gone": ("fetch", "http_error"),
        "page": ("decode", "not_an_image"), "copy": ("dedupe", "duplicate"),
    }  # fmt: skip
    loose = QualityConfig(min_side=200, max_aspect=4.0, min_sharpness=50.0)
    _, survivors = quality_stage(rows, items, {}, nothing, loose)
    assert {s.row.candidate.key for s in survivors} == {"good", "small", "strip", "soft"}


def specs_key(rows: list[CandidateRow], position: int) -> str:
    return rows[position].candidate.key


def test_a_picture_already_stored_for_another_build_is_adopted_not_dropped() -> None:
    rows = [_row(0, "mine")]
    mine = _item(5, "mine", status="rejected", reason="duplicate", meta={"duplicate_of": 99})
    theirs = _item(99, "theirs")
    nothing = (np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    dropped, survivors = quality_stage(
        rows, {("urls", "mine"): mine}, {99: theirs}, nothing, QualityConfig()
    )
    assert dropped == [] and [s.item.id for s in survivors] == [99]


def test_near_duplicates_keep_the_bigger_picture() -> None:
    rows = [_row(0, "big"), _row(1, "small-copy")]
    big = _item(1, "big", phash="0f0f0f0f0f0f0f0f", width=800, height=600)
    small = _item(2, "small-copy", phash="0f0f0f0f0f0f0f0e", width=640, height=480)
    items = {("urls", "big"): big, ("urls", "small-copy"): small}
    nothing = (np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    dropped, survivors = quality_stage(rows, items, {}, nothing, QualityConfig())
    assert [s.item.id for s in survivors] == [1]
    assert [(o.position, o.reason) for o in dropped] == [(1, "near_duplicate")]
    assert "pHash 1" in (dropped[0].detail or "")


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ConfigError):
        QualityConfig(min_aspect=2.0).check()
    with pytest.raises(ConfigError):
        MeaningConfig(method="kmeans").check()
    with pytest.raises(ConfigError, match="does not exist"):
        MeaningConfig(positive_images=("/no/such/picture.jpg",)).check()


# -- meaning ---------------------------------------------------------------------------------

DIM = 128


def _unit(rng: np.random.Generator) -> np.ndarray:
    return l2_normalize(rng.standard_normal(DIM))


def _group(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    return l2_normalize(centre + spread * rng.standard_normal((n, DIM)) / np.sqrt(DIM))


def _survivors(vectors: np.ndarray) -> tuple[list[Survivor], dict[int, np.ndarray]]:
    survivors = [Survivor(_row(i, f"k{i}"), _item(i + 1, f"k{i}"), {}) for i in range(len(vectors))]
    return survivors, {i + 1: v for i, v in enumerate(vectors)}


def _query(positive: np.ndarray, negatives: list[np.ndarray] | None = None) -> QueryVectors:
    neg = np.vstack(negatives) if negatives else np.zeros((0, DIM), np.float32)
    controls = l2_normalize(np.random.default_rng(99).standard_normal((24, DIM)))
    return QueryVectors(positive, positive[None, :], neg, controls)


def test_a_confident_query_vetoes_a_bigger_look_alike_cluster_but_a_vague_one_cannot() -> None:
    rng = np.random.default_rng(0)
    subject, lookalike = _unit(rng), _unit(rng)
    vectors = np.vstack([_group(rng, subject, 10, 0.3), _group(rng, lookalike, 25, 0.3)])
    survivors, by_id = _survivors(vectors)
    result = meaning_stage(survivors, by_id, _query(subject), MeaningConfig())
    assert len(result.clusters) == 2
    chosen = next(c for c in result.clusters if c.chosen)
    other = next(c for c in result.clusters if not c.chosen)
    assert chosen.size == 10 and other.vetoed and other.text_z < -6
    assert result.decided_by == "size_after_veto" and result.warnings == []
    assert sorted(s.row.position for s, _ in result.kept) == list(range(10))
    assert {o.reason for o in result.dropped} == {"other_cluster"}
    # a query only a little closer to the small cluster (a model that cannot read the word)
    vague = l2_normalize(_unit(rng) + 0.15 * subject)
    by_size = meaning_stage(survivors, by_id, _query(vague), MeaningConfig())
    assert next(c for c in by_size.clusters if c.chosen).size == 25
    assert by_size.decided_by == "size"


def test_a_confident_query_breaks_a_tie_between_clusters_of_similar_size() -> None:
    rng = np.random.default_rng(5)
    a, b = _unit(rng), _unit(rng)
    vectors = np.vstack([_group(rng, a, 14, 0.3), _group(rng, b, 11, 0.3)])
    survivors, by_id = _survivors(vectors)
    towards_b = l2_normalize(b + 0.9 * _unit(rng))
    config = MeaningConfig(veto_z=50)  # only the tie-break may act
    result = meaning_stage(survivors, by_id, _query(towards_b), config)
    assert next(c for c in result.clusters if c.chosen).size == 11
    assert result.decided_by == "text_tie_break"
    # the same evidence cannot beat a cluster more than twice as big
    vectors = np.vstack([_group(rng, a, 24, 0.3), _group(rng, b, 11, 0.3)])
    survivors, by_id = _survivors(vectors)
    result = meaning_stage(survivors, by_id, _query(towards_b), config)
    assert next(c for c in result.clusters if c.chosen).size == 24
    assert [w["code"] for w in result.warnings] == ["evidence_disagrees"]
    assert "won on size" in result.warnings[0]["message"]


def test_a_chosen_cluster_that_is_a_tiny_share_is_refused_unless_allowed() -> None:
    rng = np.random.default_rng(6)
    vectors = np.vstack([_group(rng, _unit(rng), 4, 0.2), *[_unit(rng) for _ in range(40)]])
    survivors, by_id = _survivors(vectors)
    with pytest.raises(WeakClusterError, match="holds 4 of 44 pictures") as info:
        meaning_stage(survivors, by_id, _query(_unit(rng)), MeaningConfig())
    assert (info.value.size, info.value.total) == (4, 44)
    allowed = meaning_stage(survivors, by_id, _query(_unit(rng)), MeaningConfig(allow_small=True))
    assert [w["code"] for w in allowed.warnings] == ["small_cluster"]
    assert len(allowed.kept) <= 4


def test_a_wrong_picture_inside_the_chosen_cluster_is_dropped_on_its_own_similarity() -> None:
    rng = np.random.default_rng(1)
    subject, away = _unit(rng), _unit(rng)
    away = l2_normalize(away - (away @ subject) * subject)  # orthogonal to the subject
    query = _query(l2_normalize(subject + 0.5 * away))
    members = _group(rng, subject, 15, 0.15)
    intruder = l2_normalize(subject - 0.3 * away)  # looks like the subject, not like the query
    vectors = np.vstack([members, intruder])
    assert float(np.min(members @ intruder)) > 0.82, "the intruder sits inside the cluster"
    survivors, by_id = _survivors(vectors)
    result = meaning_stage(survivors, by_id, query, MeaningConfig())
    assert len(result.clusters) == 1
    assert [(o.position, o.reason) for o in result.dropped] == [(15, "off_query")]
    assert len(result.kept) == 15
    kept_scores = result.kept[0][1]
    assert {"cluster", "cluster_size", "query_similarity", "relevance", "z"} <= set(kept_scores)


def test_negative_examples_move_the_choice_to_the_other_cluster() -> None:
    rng = np.random.default_rng(2)
    a, b = _unit(rng), _unit(rng)
    vectors = np.vstack([_group(rng, a, 12, 0.3), _group(rng, b, 12, 0.3)])
    survivors, by_id = _survivors(vectors)
    both = l2_normalize(a + b + 0.1 * _unit(rng))
    towards_a = meaning_stage(survivors, by_id, _query(both, [b]), MeaningConfig())
    towards_b = meaning_stage(survivors, by_id, _query(both, [a]), MeaningConfig())
    assert {s.row.position for s, _ in towards_a.kept} <= set(range(12))
    assert {s.row.position for s, _ in towards_b.kept} <= set(range(12, 24))


def test_without_dense_clusters_every_picture_is_judged_on_its_own() -> None:
    rng = np.random.default_rng(3)
    vectors = np.vstack([_unit(rng) for _ in range(6)])
    survivors, by_id = _survivors(vectors)
    result = meaning_stage(survivors, by_id, _query(_unit(rng)), MeaningConfig())
    assert "no dense cluster" in result.note
    assert [w["code"] for w in result.warnings] == ["no_dense_cluster"]
    assert len(result.kept) + len(result.dropped) == 6 and result.chosen == 0


# -- report and export -----------------------------------------------------------------------


def test_the_report_escapes_everything_from_upstream_and_inlines_thumbnails(
    tmp_path: Path,
) -> None:
    from PIL import Image

    thumb = tmp_path / "t.jpg"
    Image.new("RGB", (256, 200), (200, 30, 30)).save(thumb)
    hostile = '<script>alert("x")</script>'
    entries = [
        ReportEntry(0, f"http://h/{hostile}", hostile, thumb, "kept", "export", None, None,
                    "img_0001.jpg", {"query_similarity": 0.31}),
        ReportEntry(1, "http://h/page", "t", None, "dropped", "decode", "not_an_image",
                    hostile, None, {}),
    ]  # fmt: skip
    clusters = [{"label": 0, "size": 1, "score": 0.9, "chosen": True, "positions": [0]}]
    page = render_report(query=hostile, entries=entries, clusters=clusters,
                         params={"quality": {"min_side": 300}})  # fmt: skip
    assert "<script" not in page and "&lt;script&gt;" in page
    assert page.count("data:image/jpeg;base64,") == 1, "each thumbnail is inlined once"
    assert page.count('class="th p0"') == 2  # kept grid and cluster strip
    assert "decode" in page and "not_an_image" in page and "quality.min_side" in page
    assert "chosen cluster 0" in page


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError):
        check_output(out, overwrite=False)
    staged = staging(out)
    (staged / "img_0001.jpg").write_bytes(b"x")
    with pytest.raises(DatasetExistsError):
        finalize(staged, out, overwrite=False)
    assert (out / "keep.txt").read_text() == "mine"
    finalize(staged, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["img_0001.jpg"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    check_output(tmp_path / "empty-is-fine", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", overwrite=False)


def test_hdbscan_chooses_the_matching_cluster_too() -> None:
    rng = np.random.default_rng(4)
    subject, lookalike = _unit(rng), _unit(rng)
    vectors = np.vstack([_group(rng, subject, 15, 0.3), _group(rng, lookalike, 30, 0.3)])
    survivors, by_id = _survivors(vectors)
    query = _query(l2_normalize(subject + 0.8 * _unit(rng)))
    config = MeaningConfig(method="hdbscan", min_cluster_size=5)
    result = meaning_stage(survivors, by_id, query, config)
    chosen = next(c for c in result.clusters if c.chosen)
    assert set(chosen.positions) <= set(range(15)) and chosen.size >= 12
    assert {s.row.position for s, _ in result.kept} <= set(range(15))
