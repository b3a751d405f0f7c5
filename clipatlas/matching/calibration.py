"""Fit the matcher on labelled pairs: per-component log-odds, fusion weights, threshold.

1. Each component with enough labelled pairs (at least :data:`MIN_PER_CLASS` of each class
   among the pairs where it is present) gets a one-feature logistic regression (L2-regularised,
   on the standardised raw score): its slope and intercept map raw scores to log-odds, which
   puts CLIP image-image, CLIP text-image and text-model cosines on one scale. Components
   without enough data keep their defaults.
2. Fusion weights are searched on a simplex grid (step :data:`GRID_STEP`) over the fitted
   components (the others keep their default weights, so a pair type missing from the labels,
   e.g. photo-photo, is still scored), together with the category penalty when the rule is
   ``penalty``; for each
   candidate the threshold maximising F1 (or the lowest one reaching the target precision) is
   found by sweeping the sorted scores. The best candidate wins; ties go to the grid point
   closest to the default weights.
3. The report holds precision, recall, F1, the chosen threshold and the precision-recall curve.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np

from clipatlas.errors import CalibrationError
from clipatlas.matching.scoring import (
    COMPONENTS,
    Calibration,
    ComponentParams,
    PairScores,
    component_log_odds,
    fuse,
)

__all__ = ["GRID_STEP", "MIN_PER_CLASS", "best_threshold", "fit_calibration", "pr_curve"]

GRID_STEP = 0.1
MIN_PER_CLASS = 3
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


def _simplex(n: int, step: float) -> np.ndarray:
    ticks = round(1 / step)
    points = [c for c in itertools.product(range(ticks + 1), repeat=n) if sum(c) == ticks]
    return np.asarray(points, dtype=np.float64) / ticks


def fit_calibration(
    scores: PairScores,
    labels: np.ndarray,
    base: Calibration,
    *,
    target_precision: float | None = None,
    source: str = "pairs",
) -> Calibration:
    """A calibration fitted to labelled pairs (``labels`` 1 = same object, 0 = not)."""
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
    comps = dict(base.components)
    fitted: list[int] = []
    per_component: dict[str, Any] = {}
    for i, name in enumerate(COMPONENTS):
        present = ~np.isnan(scores.raw[:, i])
        pos, neg = int(labels[present].sum()), int((labels[present] == 0).sum())
        per_component[name] = {"pairs": int(present.sum()), "positives": pos}
        if pos < MIN_PER_CLASS or neg < MIN_PER_CLASS:
            continue
        slope, intercept = _logistic_1d(scores.raw[present, i], labels[present].astype(float))
        comps[name] = ComponentParams(slope, intercept, comps[name].weight, fitted=True)
        fitted.append(i)
        per_component[name].update(slope=round(slope, 4), intercept=round(intercept, 4))
    if not fitted:
        raise CalibrationError(source, "no component has enough labelled pairs of both classes")
    cal = replace(base, components=comps)
    log_odds = component_log_odds(scores, cal)
    defaults = cal.arrays()[2]
    grid = _simplex(len(fitted), GRID_STEP)
    penalties = PENALTIES if cal.category_rule == "penalty" else (cal.category_penalty,)
    best: tuple[float, float, float] | None = None
    choice: tuple[np.ndarray, float] = (defaults, cal.category_penalty)
    for penalty in penalties:
        for point in grid:
            w = defaults.copy()  # components not fitted keep their default weights
            w[fitted] = point
            prob = fuse(scores, cal, weights=w, penalty=penalty, log_odds=log_odds)
            _, precision, recall, f1 = best_threshold(prob, labels, target_precision)
            value = f1 if target_precision is None else recall + (precision >= target_precision)
            distance = -float(np.abs(point - defaults[fitted] / defaults[fitted].sum()).sum())
            key = (round(value, 9), -abs(penalty - base.category_penalty), distance)
            if best is None or key > best:
                best, choice = key, (w, penalty)
    weights, penalty = choice
    comps = {
        name: replace(comps[name], weight=float(weights[i])) for i, name in enumerate(COMPONENTS)
    }
    cal = replace(cal, components=comps, category_penalty=float(penalty))
    prob = fuse(scores, cal)
    threshold, precision, recall, f1 = best_threshold(prob, labels, target_precision)
    thr, prec, rec, f1s = pr_curve(prob, labels)
    step = max(1, len(thr) // 50)
    curve = [
        {
            "threshold": round(float(t), 5),
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
        }
        for t, p, r, f in list(zip(thr, prec, rec, f1s, strict=True))[::step]
    ]
    report = {
        "pairs": len(labels),
        "positives": int(labels.sum()),
        "source": source,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "threshold": round(threshold, 6),
        "target_precision": target_precision,
        "components": per_component,
        "curve": curve,
    }
    objective = "f1" if target_precision is None else f"precision>={target_precision:g}"
    return replace(cal, threshold=threshold, source="fitted", objective=objective, report=report)
