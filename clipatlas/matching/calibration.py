"""Fit the matcher on labelled pairs with few parameters, and check it on held-out pairs.

1. Each component with enough labelled pairs (at least :data:`MIN_PER_CLASS` of each class
   among the pairs where it is present) gets a one-feature logistic regression (L2-regularised,
   on the standardised raw score): its slope and intercept map raw scores to log-odds, which
   puts CLIP image-image, CLIP text-image and text-model cosines on one scale. Components
   without enough data keep their defaults.
2. Weights are not searched (a grid over the simplex fitted the noise of its own pairs: F1
   0.745 on them, 0.355 held out, weight 0.4 on a component carrying nothing). A fitted
   component's weight is its *evidence*: how much better than chance it ranks matching pairs
   above the others, ``max(0, AUC - 0.5 - 2 SE)`` (Hanley-McNeil standard error), so a
   component indistinguishable from noise gets weight 0. The evidence weights are shrunk
   toward the default weights by ``PRIOR / (PRIOR + positives)``: with few labels the
   defaults dominate, with many the data.
3. The category penalty (rule ``penalty``) is the best of :data:`PENALTIES`; the threshold
   maximises F1 (or is the lowest reaching the target precision), overall and per modality
   pattern (``both_photos``, ``one_photo``, ``no_photo``) that has at least
   :data:`MIN_PATTERN` pairs of each class; a pattern with fewer uses the overall threshold.
4. :mod:`~clipatlas.matching.validation` refits all of this in grouped k-fold cross-validation
   and compares its held-out F1 (bootstrap confidence interval) with the fixed 0.3/0.7 fusion
   fitted the same way; when the calibration does not beat it, the fixed fusion is used
   (``method="fixed"``) and the report says so.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from clipatlas.errors import CalibrationError
from clipatlas.matching.scoring import (
    COMPONENTS,
    PATTERNS,
    Calibration,
    ComponentParams,
    PairScores,
    component_log_odds,
    fuse,
)
from clipatlas.matching.validation import cross_validate

__all__ = [
    "MIN_PATTERN",
    "MIN_PER_CLASS",
    "best_threshold",
    "fit_calibration",
    "fit_parameters",
    "pr_curve",
]

MIN_PER_CLASS = 3
MIN_PATTERN = 5
PRIOR = 10.0  # positives' worth of confidence in the default weights
PENALTIES = (0.0, 1.0, 2.0, 4.0, 8.0)
_L2 = 1.0  # ridge on the standardised slope: keeps separable components finite


def _logistic_1d(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of P(y=1 | x) by Newton's method with an L2 penalty on the slope."""
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    z = (x - mu) / sd
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    ridge = np.diag([_L2, 1e-6])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) + ridge @ w
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    slope = w[0] / sd
    return float(slope), float(w[1] - slope * mu)


def _auc(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """AUC of ``x`` ranking ``y == 1`` above ``y == 0`` (ties count half) and its
    Hanley-McNeil standard error."""
    pos, neg = x[y == 1], x[y == 0]
    n1, n0 = len(pos), len(neg)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):  # average ranks of ties
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    auc = float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    return auc, float(np.sqrt(max(var, 0.0)))


def pr_curve(prob: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Thresholds (distinct scores, descending) with precision, recall and F1 of ``>= t``."""
    order = np.argsort(-prob, kind="stable")
    p, y = prob[order], labels[order].astype(np.float64)
    tp = np.cumsum(y)
    k = np.arange(1, len(p) + 1)
    last = np.r_[p[1:] != p[:-1], True]  # the last of each run of equal scores
    tp, k, thr = tp[last], k[last], p[last]
    positives = max(float(y.sum()), 1.0)
    precision, recall = tp / k, tp / positives
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    keep = thr > 0  # a zero score (gated, nothing comparable) is never a match
    return thr[keep], precision[keep], recall[keep], f1[keep]


def best_threshold(
    prob: np.ndarray, labels: np.ndarray, target_precision: float | None = None
) -> tuple[float, float, float, float]:
    """(threshold, precision, recall, F1) maximising F1, or the highest recall at a precision
    of at least ``target_precision`` (falls back to the best precision reachable)."""
    thr, precision, recall, f1 = pr_curve(prob, labels)
    if not len(thr):
        return 0.5, 0.0, 0.0, 0.0
    if target_precision is None:
        i = int(np.argmax(f1))
    else:
        ok = np.flatnonzero(precision >= target_precision)
        i = int(ok[np.argmax(recall[ok])]) if len(ok) else int(np.argmax(precision))
    # midway to the next lower score, so pairs at the boundary fall on the right side
    below = prob[prob < thr[i]]
    t = (float(thr[i]) + float(below.max())) / 2 if len(below) else float(thr[i]) / 2
    return float(min(max(t, 1e-9), 1 - 1e-9)), float(precision[i]), float(recall[i]), float(f1[i])


def _check(scores: PairScores, labels: np.ndarray, source: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int8)
    if len(labels) != len(scores):
        raise CalibrationError(source, f"{len(labels)} labels for {len(scores)} pairs")
    if labels.sum() < MIN_PER_CLASS or (labels == 0).sum() < MIN_PER_CLASS:
        raise CalibrationError(
            source,
            f"need at least {MIN_PER_CLASS} matching and "
            f"{MIN_PER_CLASS} non-matching pairs, got {int(labels.sum())} "
            f"and {int((labels == 0).sum())}",
        )
    return labels


def _thresholds(
    prob: np.ndarray, labels: np.ndarray, photos: np.ndarray, target: float | None
) -> tuple[float, dict[str, float]]:
    """The overall threshold and one per pattern with enough pairs of both classes."""
    overall = best_threshold(prob, labels, target)[0]
    per: dict[str, float] = {}
    for count, name in PATTERNS.items():
        mask = photos == count
        pos = int(labels[mask].sum())
        if pos >= MIN_PATTERN and int(mask.sum()) - pos >= MIN_PATTERN:
            per[name] = best_threshold(prob[mask], labels[mask], target)[0]
    return overall, per


def fit_parameters(
    scores: PairScores,
    labels: np.ndarray,
    base: Calibration,
    *,
    method: str = "components",
    target_precision: float | None = None,
    source: str = "pairs",
) -> Calibration:
    """Steps 1-3 of the module docstring (no validation) for ``method`` "components" (the
    report holds per component its pairs, fit, AUC and weight), or the fixed 0.3/0.7 fusion
    with only its thresholds fitted (``method="fixed"``)."""
    labels = _check(scores, labels, source)
    report: dict[str, Any] = {}
    if method == "fixed":
        cal = replace(base, method="fixed")
    else:
        cal, report = _fit_components(scores, labels, base, target_precision, source)
    threshold, per = _thresholds(fuse(scores, cal), labels, scores.photos, target_precision)
    objective = "f1" if target_precision is None else f"precision>={target_precision:g}"
    return replace(
        cal, threshold=threshold, thresholds=per, source="fitted", objective=objective,
        report=report,
    )  # fmt: skip


def _fit_components(
    scores: PairScores,
    labels: np.ndarray,
    base: Calibration,
    target_precision: float | None,
    source: str,
) -> tuple[Calibration, dict[str, Any]]:
    comps = dict(base.components)
    fitted: list[int] = []
    evidence: dict[int, float] = {}
    per_component: dict[str, Any] = {}
    for i, name in enumerate(COMPONENTS):
        present = ~np.isnan(scores.raw[:, i])
        y = labels[present]
        pos, neg = int(y.sum()), int((y == 0).sum())
        per_component[name] = {"pairs": int(present.sum()), "positives": pos}
        if pos < MIN_PER_CLASS or neg < MIN_PER_CLASS:
            continue
        x = scores.raw[present, i]
        slope, intercept = _logistic_1d(x, y.astype(float))
        auc, se = _auc(slope * x, y)  # ranking by the fitted log-odds (sign included)
        comps[name] = ComponentParams(slope, intercept, comps[name].weight, fitted=True)
        fitted.append(i)
        evidence[i] = max(0.0, auc - 0.5 - 2 * se)
        per_component[name].update(
            slope=round(slope, 4), intercept=round(intercept, 4), auc=round(auc, 4),
            auc_se=round(se, 4), informative=evidence[i] > 0,
        )  # fmt: skip
    if not fitted:
        raise CalibrationError(source, "no component has enough labelled pairs of both classes")
    defaults = base.arrays()[2]
    weights = defaults.copy()  # components not fitted keep their default weights
    scale = float(defaults[fitted].sum())
    ev = np.asarray([evidence[i] for i in fitted])
    prior = defaults[fitted] * (ev > 0)
    if ev.sum() > 0:
        shrink = PRIOR / (PRIOR + float(labels.sum()))
        mixed = (1 - shrink) * ev / ev.sum() + shrink * prior / prior.sum()
        weights[fitted] = scale * mixed
    for i in fitted:
        per_component[COMPONENTS[i]]["weight"] = round(float(weights[i]), 4)
    comps = {
        name: replace(comps[name], weight=float(weights[i])) for i, name in enumerate(COMPONENTS)
    }
    cal = replace(base, components=comps, method="components")
    log_odds = component_log_odds(scores, cal)
    penalties = PENALTIES if cal.category_rule == "penalty" else (cal.category_penalty,)
    best: tuple[float, float] | None = None
    penalty = cal.category_penalty
    for candidate in penalties:
        prob = fuse(scores, cal, penalty=candidate, log_odds=log_odds)
        _, precision, recall, f1 = best_threshold(prob, labels, target_precision)
        value = f1 if target_precision is None else recall + (precision >= target_precision)
        key = (round(value, 9), -abs(candidate - base.category_penalty))
        if best is None or key > best:
            best, penalty = key, candidate
    return replace(cal, category_penalty=float(penalty)), {"components": per_component}


def _summary(
    cal: Calibration, scores: PairScores, labels: np.ndarray, target: float | None
) -> dict[str, Any]:
    """Metrics on the calibration's own pairs (optimistic) and its precision-recall curve."""
    prob = fuse(scores, cal)
    decided = (prob >= cal.cuts(scores.photos)) & (prob > 0)
    y = labels.astype(bool)
    tp, fp, fn = int((decided & y).sum()), int((decided & ~y).sum()), int((~decided & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    thr, prec, rec, f1s = pr_curve(prob, labels)
    step = max(1, len(thr) // 50)
    curve = [
        {"threshold": round(float(t), 5), "precision": round(float(p), 4),
         "recall": round(float(r), 4), "f1": round(float(f), 4)}
        for t, p, r, f in list(zip(thr, prec, rec, f1s, strict=True))[::step]
    ]  # fmt: skip
    return {
        "pairs": len(labels),
        "positives": int(labels.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "threshold": round(cal.threshold, 6),
        "thresholds": {k: round(v, 6) for k, v in cal.thresholds.items()},
        "target_precision": target,
        "curve": curve,
    }


def fit_calibration(
    scores: PairScores,
    labels: np.ndarray,
    base: Calibration,
    *,
    target_precision: float | None = None,
    source: str = "pairs",
    groups: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> Calibration:
    """A calibration fitted to labelled pairs (``labels`` 1 = same object, 0 = not), checked
    by cross-validation against the fixed fusion (``groups``: pairs sharing a group, e.g. the
    same query record, stay in one fold); the fixed fusion is returned when it does as well
    held out. ``report["validation"]`` says which was used and why."""
    labels = _check(scores, labels, source)
    fitters = {
        name: partial(
            fit_parameters, base=base, method=name, target_precision=target_precision, source=source
        )
        for name in ("components", "fixed")
    }
    if scores.fixed is None:  # pairs scored without record vectors: nothing to compare with
        del fitters["fixed"]
    fitted = fitters["components"](scores, labels)
    validation = cross_validate(scores, labels, fitters, groups=groups, folds=folds, seed=seed)
    cal = fitters["fixed"](scores, labels) if validation["used"] == "fixed" else fitted
    report = {
        "source": source,
        **_summary(cal, scores, labels, target_precision),
        "method": cal.method,
        "components": fitted.report["components"],
        "validation": validation,
    }
    return replace(cal, report=report)
