"""Calibration generalises: few parameters, a noise component gets no weight, held-out F1 with
a bootstrap interval, per-pattern thresholds, and the fixed fusion when it does as well."""

from __future__ import annotations

import numpy as np

from clipatlas.matching import default_calibration
from clipatlas.matching.calibration import fit_calibration, fit_parameters
from clipatlas.matching.scoring import COMPONENTS, Calibration, PairScores, explain, fuse
from clipatlas.matching.validation import assign_folds

IMAGE, TEXT, CROSS, TIME = (COMPONENTS.index(c) for c in ("image", "text", "cross", "time"))


def _planted(
    n: int, seed: int, *, text_signal: float, fixed_signal: float, offset: float = 0.0
) -> tuple[PairScores, np.ndarray, np.ndarray]:
    """Pairs of 24-candidate queries (one true match each): the text score separates the
    classes by ``text_signal`` standard deviations, the image one (pairs with two photos) by
    1.5, cross (one photo) by 1.0, time is pure noise, the fixed fusion's cosine separates by
    ``fixed_signal``. One-photo pairs' text scores sit ``offset`` lower (other evidence)."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // 24
    labels = np.zeros(n, np.int8)
    labels[np.arange(0, n, 24) + rng.integers(0, 24, n // 24)] = 1  # n: a multiple of 24
    photos = rng.choice([0, 1, 2], n, p=[0.3, 0.4, 0.3]).astype(np.int8)
    raw = np.full((n, len(COMPONENTS)), np.nan)
    y = labels.astype(float)
    raw[:, TEXT] = 0.5 + 0.08 * (text_signal * y + rng.normal(size=n)) - offset * (photos == 1)
    both = photos == 2
    raw[both, IMAGE] = 0.75 + 0.05 * (1.5 * y[both] + rng.normal(size=both.sum()))
    one = photos == 1
    raw[one, CROSS] = 0.25 + 0.03 * (1.0 * y[one] + rng.normal(size=one.sum()))
    raw[:, TIME] = rng.random(n)  # carries nothing
    fixed = 0.6 + 0.1 * (fixed_signal * y + rng.normal(size=n))
    return PairScores(raw, np.full(n, np.nan), photos, np.clip(fixed, 0.01, 0.99)), labels, groups


def _f1(cal: Calibration, scores: PairScores, labels: np.ndarray) -> float:
    prob = fuse(scores, cal)
    decided = (prob >= cal.cuts(scores.photos)) & (prob > 0)
    y = labels.astype(bool)
    tp, fp, fn = (decided & y).sum(), (decided & ~y).sum(), (~decided & y).sum()
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def test_folds_keep_groups_whole_and_every_training_split_has_both_classes() -> None:
    _, labels, groups = _planted(24 * 20, 0, text_signal=3, fixed_signal=1)
    fold = assign_folds(labels, groups, 5)
    assert fold is not None and set(fold.tolist()) == set(range(5))
    for g in np.unique(groups):
        assert len(set(fold[groups == g].tolist())) == 1
    for f in range(5):
        assert labels[fold != f].sum() >= 3
    assert assign_folds(labels[:48], groups[:48], 5) is None  # two positives: no fold works


def test_a_noise_only_component_gets_no_weight() -> None:
    scores, labels, _ = _planted(24 * 40, 1, text_signal=3, fixed_signal=1)
    cal = fit_parameters(scores, labels, default_calibration())
    report = cal.report["components"]
    assert report["time"]["informative"] is False and cal.components["time"].weight == 0.0
    assert report["text"]["informative"] and report["image"]["informative"]
    assert cal.components["text"].weight > 0.1 and cal.components["image"].weight > 0.1


def _check_against_the_fixed_baseline(text_signal: float, fixed_signal: float, seed: int) -> str:
    base = default_calibration()
    train, labels, groups = _planted(24 * 30, seed, text_signal=text_signal,
                                     fixed_signal=fixed_signal, offset=0.06)  # fmt: skip
    test, test_labels, _ = _planted(24 * 400, seed + 100, text_signal=text_signal,
                                    fixed_signal=fixed_signal, offset=0.06)  # fmt: skip
    cal = fit_calibration(train, labels, base, groups=groups)
    fixed = fit_parameters(train, labels, base, method="fixed")
    v = cal.report["validation"]
    assert v["folds"] == 5 and v["bootstrap"] == 1000
    for name in ("components", "fixed"):
        lo, hi = v[name]["ci95"]
        assert 0.0 <= lo <= v[name]["f1"] <= hi <= 1.0
    assert v["used"] == cal.method and cal.report["method"] == cal.method
    # the done-criterion: what calibration returns does at least as well as the fixed fusion
    # on pairs it never saw (the fallback engaging counts: it is the fixed fusion)
    assert _f1(cal, test, test_labels) >= _f1(fixed, test, test_labels) - 0.02, v
    return cal.method


def test_on_a_set_where_the_components_carry_the_signal_the_calibration_is_used() -> None:
    assert _check_against_the_fixed_baseline(text_signal=4.0, fixed_signal=1.0, seed=2) == (
        "components"
    )


def test_on_a_set_where_the_fixed_fusion_is_better_it_is_the_fallback() -> None:
    assert _check_against_the_fixed_baseline(text_signal=0.8, fixed_signal=5.0, seed=3) == ("fixed")


def test_each_modality_pattern_gets_its_threshold_and_a_thin_one_falls_back() -> None:
    scores, labels, groups = _planted(24 * 40, 4, text_signal=3, fixed_signal=1, offset=0.08)
    cal = fit_calibration(scores, labels, default_calibration(), groups=groups)
    assert set(cal.thresholds) == {"no_photo", "one_photo", "both_photos"}
    # one-photo pairs rest on weaker scores: their own, lower threshold lets true ones pass
    assert cal.thresholds["one_photo"] < cal.thresholds["both_photos"]
    prob = fuse(scores, cal)
    one = (scores.photos == 1) & (labels == 1)
    assert (prob[one] >= cal.threshold_of(1)).mean() > (prob[one] >= cal.threshold).mean()
    # with too few pairs of a pattern, it uses the overall threshold
    keep = (scores.photos != 0) | (np.arange(len(labels)) < 48)
    thin = fit_calibration(scores.subset(keep), labels[keep], default_calibration(),
                           groups=groups[keep])  # fmt: skip
    assert "no_photo" not in thin.thresholds and thin.threshold_of(0) == thin.threshold


def test_the_fixed_fusion_explains_itself_as_one_score_against_its_pattern_threshold() -> None:
    scores, labels, _ = _planted(24 * 10, 5, text_signal=3, fixed_signal=2)
    cal = fit_parameters(scores, labels, default_calibration(), method="fixed")
    row = int(np.flatnonzero(scores.photos == 1)[0])
    why = explain(scores, row, cal)
    assert why["method"] == "fixed" and [c["component"] for c in why["components"]] == ["fixed"]
    assert scores.fixed is not None
    assert why["components"][0]["raw"] == round(float(scores.fixed[row]), 4)
    assert why["pattern"] == "one_photo" and why["threshold"] == round(cal.threshold_of(1), 6)
    again = Calibration.from_params(cal.params())
    assert again.method == "fixed" and again.thresholds == cal.thresholds
