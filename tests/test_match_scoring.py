"""Scoring with missing modalities, the category rule, calibration, and its persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.errors import CalibrationError, MatchConfigError, RecordNotFoundError
from clipatlas.matching import Calibration, LabelledPair, default_calibration, read_pairs
from clipatlas.matching.calibration import best_threshold, fit_calibration
from clipatlas.matching.recordset import RecordSet
from clipatlas.matching.scoring import COMPONENTS, PairScores, explain, fuse, pair_scores
from clipatlas.settings import Settings


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def _set(rows: list[dict[str, object]]) -> RecordSet:
    n = len(rows)

    def mat(name: str) -> np.ndarray:
        return np.stack([np.asarray(r.get(name, np.zeros(3)), np.float32) for r in rows])

    def num(name: str) -> np.ndarray:
        return np.asarray([r.get(name, np.nan) for r in rows], np.float64)

    return RecordSet(
        keys=[str(r["key"]) for r in rows],
        kinds=[None] * n,
        categories=[r.get("category") for r in rows],  # type: ignore[misc]
        texts=[""] * n,
        photo_item_ids=[None] * n,
        lat=num("lat"),
        lon=num("lon"),
        time=num("time"),
        text=mat("text"),
        has_text=np.asarray(["text" in r for r in rows]),
        clip_text=mat("clip_text"),
        photo=mat("photo"),
        has_photo=np.asarray(["photo" in r for r in rows]),
        place=mat("place"),
        has_place=np.asarray(["place" in r for r in rows]),
    )


def test_components_exist_only_where_both_sides_have_the_modality() -> None:
    t, c, p = _unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0.6, 0.8)
    rs = _set(
        [
            {"key": "text+photo", "text": t, "clip_text": c, "photo": p},
            {"key": "text only", "text": t, "clip_text": c},
            {"key": "text+photo 2", "text": t, "clip_text": c, "photo": p},
            {"key": "photo only", "photo": p},
        ]
    )
    cal = default_calibration()
    s = pair_scores(rs, np.asarray([0, 0, 1, 1]), rs, np.asarray([2, 1, 3, 2]), cal)
    col = {name: i for i, name in enumerate(COMPONENTS)}
    both, mixed, text_vs_photo_only, text_vs_both = s.raw
    assert both[col["image"]] == pytest.approx(1.0) and both[col["text"]] == pytest.approx(1.0)
    assert np.isnan(both[col["cross"]])
    assert np.isnan(mixed[col["image"]]) and mixed[col["text"]] == pytest.approx(1.0)
    assert mixed[col["cross"]] == pytest.approx(0.6)  # CLIP text of the photo-less side vs photo
    assert np.isnan(text_vs_photo_only[col["text"]])
    assert text_vs_photo_only[col["cross"]] == pytest.approx(0.6)
    assert text_vs_both[col["cross"]] == pytest.approx(0.6)
    assert s.photos.tolist() == [2, 1, 1, 1]
    assert np.isnan(s.raw[:, col["time"]]).all() and np.isnan(s.category_same).all()


def test_weights_are_renormalised_over_the_components_present() -> None:
    cal = default_calibration(category_rule="off")
    raw = np.full((2, len(COMPONENTS)), np.nan)
    raw[0, 1] = 0.9  # text only
    raw[1, [0, 1]] = [0.8, 0.9]  # image and text
    scores = PairScores(raw, np.full(2, np.nan), np.asarray([0, 2]))
    prob = fuse(scores, cal)
    text = cal.components["text"]
    assert prob[0] == pytest.approx(1 / (1 + np.exp(-(text.slope * 0.9 + text.intercept))))
    img = cal.components["image"]
    mean = (
        img.weight * (img.slope * 0.8 + img.intercept)
        + text.weight * (text.slope * 0.9 + text.intercept)
    ) / (img.weight + text.weight)
    assert prob[1] == pytest.approx(1 / (1 + np.exp(-mean)))
    parts = explain(scores, 1, cal)["components"]
    assert [p["component"] for p in parts] == ["image", "text"]
    assert sum(p["weight"] for p in parts) == pytest.approx(1.0, abs=1e-3)


def test_category_rule_gates_penalises_or_ignores_with_synonyms() -> None:
    v = _unit(1, 0, 0)
    rs = _set(
        [
            {"key": "a", "text": v, "category": "purse"},
            {"key": "b", "text": v, "category": "wallet"},
            {"key": "c", "text": v, "category": "notebook"},
            {"key": "d", "text": v},
        ]
    )
    li, ri = np.zeros(3, np.int64), np.asarray([1, 2, 3])
    syn = {"purse": "wallet"}
    probs = {}
    for rule in ("gate", "penalty", "off"):
        cal = default_calibration(category_rule=rule, category_penalty=3.0, category_synonyms=syn)
        s = pair_scores(rs, li, rs, ri, cal)
        assert s.category_same[:2].tolist() == [1.0, 0.0] and np.isnan(s.category_same[2])
        probs[rule] = fuse(s, cal)
        assert "gated" in explain(s, 1, cal)["category"]["effect"] or rule != "gate"
    assert probs["gate"][1] == 0.0 and probs["gate"][0] == probs["off"][0] == probs["off"][1]
    logit = np.log(probs["off"][1] / (1 - probs["off"][1]))
    assert probs["penalty"][1] == pytest.approx(1 / (1 + np.exp(-(logit - 3.0))))
    assert probs["penalty"][2] == probs["off"][2]  # unknown category: no effect
    with pytest.raises(MatchConfigError, match="category_rule"):
        default_calibration(category_rule="sometimes")


def test_time_and_distance_closeness_decay_with_their_scales() -> None:
    rs = _set(
        [
            {"key": "a", "time": 0.0, "lat": 37.5, "lon": 127.0},
            {"key": "b", "time": 7 * 86400.0, "lat": 37.5, "lon": 127.0},
            {"key": "c", "time": 0.0, "lat": 37.5 + 2.0 / 111.2, "lon": 127.0},
        ]
    )
    cal = default_calibration(time_scale_days=7.0, place_scale_km=2.0)
    s = pair_scores(rs, np.asarray([0, 0]), rs, np.asarray([1, 2]), cal)
    t, d = COMPONENTS.index("time"), COMPONENTS.index("distance")
    assert s.raw[0, t] == pytest.approx(np.exp(-1)) and s.raw[0, d] == pytest.approx(1.0)
    assert s.raw[1, t] == pytest.approx(1.0) and s.raw[1, d] == pytest.approx(np.exp(-1), rel=1e-2)


def _synthetic(n: int, seed: int) -> tuple[PairScores, np.ndarray]:
    """Pairs whose text score separates the classes and whose image score is noise."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.1).astype(np.int8)
    raw = np.full((n, len(COMPONENTS)), np.nan)
    raw[:, 1] = np.where(labels == 1, rng.normal(0.8, 0.05, n), rng.normal(0.5, 0.08, n))
    has_photo = rng.random(n) < 0.5
    raw[has_photo, 0] = rng.normal(0.7, 0.1, has_photo.sum())
    return PairScores(raw, np.full(n, np.nan), has_photo.astype(np.int8) * 2), labels


def test_calibration_weights_the_informative_component_and_finds_the_best_threshold() -> None:
    scores, labels = _synthetic(1500, 1)
    cal = fit_calibration(scores, labels, default_calibration())
    assert cal.source == "fitted" and cal.components["text"].fitted
    assert cal.components["text"].weight > cal.components["image"].weight
    assert cal.components["text"].slope > 0
    assert cal.report["f1"] > 0.9 and len(cal.report["curve"]) > 5
    test, test_labels = _synthetic(1500, 2)
    predicted = fuse(test, cal) >= cal.threshold
    tp = (predicted & (test_labels == 1)).sum()
    assert tp / max(predicted.sum(), 1) > 0.85 and tp / test_labels.sum() > 0.85
    strict = fit_calibration(scores, labels, default_calibration(), target_precision=0.99)
    assert strict.report["precision"] >= 0.99 and strict.threshold >= cal.threshold
    assert strict.objective == "precision>=0.99"


def test_best_threshold_separates_a_clean_split() -> None:
    prob = np.asarray([0.9, 0.8, 0.3, 0.2])
    t, precision, recall, f1 = best_threshold(prob, np.asarray([1, 1, 0, 0]))
    assert 0.3 < t < 0.8 and precision == recall == f1 == 1.0


def test_calibration_refuses_labels_of_one_class() -> None:
    scores, _ = _synthetic(50, 3)
    with pytest.raises(CalibrationError, match="at least 3 matching"):
        fit_calibration(scores, np.zeros(50, np.int8), default_calibration())


def test_a_calibration_round_trips_through_its_parameters() -> None:
    scores, labels = _synthetic(600, 4)
    cal = fit_calibration(scores, labels, default_calibration(category_synonyms={"a": "b"}))
    again = Calibration.from_params(json.loads(json.dumps(cal.params())), cal.report)
    assert again.params() == cal.params()
    assert np.allclose(fuse(scores, again), fuse(scores, cal))


def test_pairs_files_are_read_and_bad_rows_named(tmp_path: Path) -> None:
    good = tmp_path / "p.csv"
    good.write_text("left,right,same\na,b,1\na,c,false\n")
    assert read_pairs(good) == [LabelledPair("a", "b", True), LabelledPair("a", "c", False)]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"left": "a", "right": "b", "same": "maybe"}\n')
    with pytest.raises(CalibrationError, match="line 1"):
        read_pairs(bad)


def test_a_saved_calibration_is_used_by_later_matches_and_unknown_pairs_are_reported(
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        model="fake:64",
        match_text_model="fake:32",
        workers=-1,
        match_category_rule="gate",
    )
    rows = [
        {"id": f"l{i}", "kind": "lost", "description": f"{c} umbrella number {i}"}
        for i, c in enumerate(["red", "blue", "green", "yellow"] * 2)
    ]
    rows += [
        {"id": f"f{i}", "kind": "found", "description": f"found a {c} umbrella {i}"}
        for i, c in enumerate(["red", "blue", "green", "yellow"] * 2)
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    pairs = [LabelledPair(f"l{i}", f"f{j}", i == j) for i in range(8) for j in range(8)]
    pairs.append(LabelledPair("l0", "nobody", False))
    with Atlas.open("lf", settings=settings) as atlas:
        atlas.import_records(path)
        assert atlas.records().calibration().source == "default"
        assert atlas.records().calibration().category_rule == "gate"
        cal = atlas.calibrate_match(pairs)
        with pytest.raises(RecordNotFoundError):
            atlas.match("nobody")
    with Atlas.open("lf", settings=settings, create=False) as atlas:
        saved = atlas.records().calibration()
        matches = atlas.match("l0", against_kind="found", k=3)
    assert saved.id == cal.id and saved.params() == cal.params()
    assert cal.report["unknown_pairs"] == 1 and cal.report["unknown_examples"] == [["l0", "nobody"]]
    assert all(m.kind == "found" and m.score >= saved.threshold for m in matches)
