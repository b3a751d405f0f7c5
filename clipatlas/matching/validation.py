"""Held-out checks of a calibration: grouped k-fold cross-validation and bootstrap intervals.

Every candidate way of scoring (the fitted components, the fixed 0.3/0.7 fusion) is refitted
on the training folds and decides the pairs of the held-out fold at its own thresholds; the
held-out decisions of all folds are pooled into one F1 per candidate. Pairs of one group
(the same query record) are never split across folds, so a record's pairs cannot leak from
training into its test. The 95% intervals come from resampling the groups
(:data:`BOOTSTRAP` times), the difference of the two F1 included; the fitted components are
used only when their held-out F1 is higher than the fixed fusion's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from clipatlas.errors import CalibrationError
from clipatlas.matching.scoring import Calibration, PairScores, fuse

__all__ = ["BOOTSTRAP", "Fitter", "assign_folds", "cross_validate", "held_out_decisions"]

BOOTSTRAP = 1000
MIN_TRAIN = 3  # matching and non-matching pairs each training split needs
Fitter = Callable[[PairScores, np.ndarray], Calibration]


def assign_folds(
    labels: np.ndarray, groups: np.ndarray, folds: int, seed: int = 0
) -> np.ndarray | None:
    """Fold number of each pair (groups kept whole, positives spread evenly), or None when
    fewer than two folds would leave every training split :data:`MIN_TRAIN` of each class."""
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if len(group_of) else 0
    has_pos = np.bincount(group_of, weights=labels, minlength=n_groups) > 0
    rng = np.random.default_rng(seed)
    for k in range(min(folds, n_groups), 1, -1):
        fold_of_group = np.empty(n_groups, np.int64)
        for flag in (True, False):  # deal the groups with and without positives separately
            members = rng.permutation(np.flatnonzero(has_pos == flag))
            fold_of_group[members] = np.arange(len(members)) % k
        fold = fold_of_group[group_of]
        ok = all(
            labels[fold != f].sum() >= MIN_TRAIN and (labels[fold != f] == 0).sum() >= MIN_TRAIN
            for f in range(k)
        )
        if ok:
            return fold
    return None


def held_out_decisions(
    scores: PairScores, labels: np.ndarray, fold: np.ndarray, fit: Fitter
) -> tuple[np.ndarray, int]:
    """Each pair decided by a fit that never saw its fold; and how many folds could not be
    fitted (their pairs count as predicted non-matching)."""
    decided = np.zeros(len(labels), bool)
    failed = 0
    for f in np.unique(fold):
        test = fold == f
        try:
            cal = fit(scores.subset(~test), labels[~test])
        except CalibrationError:
            failed += 1
            continue
        held = scores.subset(test)
        prob = fuse(held, cal)
        decided[test] = (prob >= cal.cuts(held.photos)) & (prob > 0)
    return decided, failed


def _counts(decided: np.ndarray, y: np.ndarray, group_of: np.ndarray, n: int) -> np.ndarray:
    """(groups, 3) true positives, false positives, false negatives per group."""
    out = np.zeros((n, 3))
    for col, hit in enumerate((decided & y, decided & ~y, ~decided & y)):
        out[:, col] = np.bincount(group_of, weights=hit.astype(np.float64), minlength=n)
    return out


def _f1(tp_fp_fn: np.ndarray) -> np.ndarray:
    tp, fp, fn = tp_fp_fn[..., 0], tp_fp_fn[..., 1], tp_fp_fn[..., 2]
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return out


def _interval(values: np.ndarray) -> list[float]:
    return [
        round(float(np.percentile(values, 2.5)), 4),
        round(float(np.percentile(values, 97.5)), 4),
    ]


def cross_validate(
    scores: PairScores,
    labels: np.ndarray,
    fitters: Mapping[str, Fitter],
    *,
    groups: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out F1 of each fitter (95% bootstrap interval) and which one to use: the first
    fitter (the calibration) only when it beats the second (the baseline) held out."""
    y = np.asarray(labels, np.int8)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    fold = assign_folds(y, groups, folds, seed)
    names = list(fitters)
    if fold is None:
        return {
            "folds": 0,
            "used": names[0],
            "reason": f"too few pairs to hold any out (each training split needs {MIN_TRAIN} "
            "of each class): not validated",
        }
    _, group_of = np.unique(groups, return_inverse=True)
    n = int(group_of.max()) + 1
    per: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {"folds": int(fold.max()) + 1, "groups": n, "bootstrap": BOOTSTRAP}
    for name, fit in fitters.items():
        decided, failed = held_out_decisions(scores, y, fold, fit)
        per[name] = _counts(decided, y.astype(bool), group_of, n)
        out[name] = {"f1": round(float(_f1(per[name].sum(axis=0))), 4), "failed_folds": failed}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, BOOTSTRAP, 100):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(100, BOOTSTRAP - start))
        for name in names:
            draws[name].append(_f1(weights @ per[name]))
    boot = {name: np.concatenate(v) for name, v in draws.items()}
    for name in names:
        out[name]["ci95"] = _interval(boot[name])
    first, baseline = names[0], names[-1]
    if first == baseline:
        out.update(used=first, reason=f"only {first} to validate")
        return out
    out["difference"] = {
        "f1": round(out[first]["f1"] - out[baseline]["f1"], 4),
        "ci95": _interval(boot[first] - boot[baseline]),
    }
    better = out[first]["f1"] > out[baseline]["f1"]
    out["used"] = first if better else baseline
    out["reason"] = (
        f"{first} beats {baseline} on held-out pairs"
        if better
        else f"{first} does not beat {baseline} on held-out pairs: {baseline} is used"
    )
    return out
