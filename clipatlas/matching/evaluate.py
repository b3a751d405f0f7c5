"""Quality of a matcher on labelled pairs, and the naive vector-fusion baselines.

The naive baseline is what the issue warns about: one vector per record,
``0.3 x text + 0.7 x image``, compared by cosine with one threshold.

* ``clip``: text is the CLIP text tower, so both parts share CLIP's space and are summed;
  a record without a photo is its text vector alone.
* ``concat``: text is the text model's vector; the two weighted parts are concatenated (they
  have different dimensions); a record without a photo has a zero image part.

Both get their best-F1 threshold fitted on the same calibration pairs as the matcher.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipatlas.embedders.base import l2_normalize
from clipatlas.matching.calibration import best_threshold
from clipatlas.matching.recordset import RecordSet
from clipatlas.matching.scoring import (
    FIXED_IMAGE,
    FIXED_TEXT,
    PATTERNS,
    Calibration,
    PairScores,
    fixed_vectors,
    fuse,
)

__all__ = ["GROUPS", "metrics_at", "naive_scores", "naive_vectors", "scores_report"]

GROUPS = PATTERNS


def metrics_at(
    prob: np.ndarray, labels: np.ndarray, threshold: float | np.ndarray
) -> dict[str, Any]:
    predicted = prob >= threshold
    y = labels.astype(bool)
    tp = int((predicted & y).sum())
    fp, fn = int((predicted & ~y).sum()), int((~predicted & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs": len(y),
        "positives": int(y.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def scores_report(
    prob: np.ndarray, labels: np.ndarray, photos: np.ndarray, threshold: float | np.ndarray
) -> dict[str, Any]:
    """Overall metrics at ``threshold`` (one, or one per pair) and the same per photo group
    (0, 1 or 2 photos)."""
    cut = np.broadcast_to(np.asarray(threshold, np.float64), prob.shape)
    out: dict[str, Any] = {"overall": metrics_at(prob, labels, cut)}
    out["threshold"] = round(float(cut[0]), 6) if np.ndim(threshold) == 0 and len(cut) else None
    for count, name in GROUPS.items():
        mask = photos == count
        if mask.any():
            out[name] = metrics_at(prob[mask], labels[mask], cut[mask])
    return out


def matcher_report(scores: PairScores, labels: np.ndarray, cal: Calibration) -> dict[str, Any]:
    """Metrics of the matcher, each pair decided at the threshold of its pattern."""
    out = scores_report(fuse(scores, cal), labels, scores.photos, cal.cuts(scores.photos))
    out["threshold"] = round(cal.threshold, 6)
    out["thresholds"] = {k: round(v, 6) for k, v in cal.thresholds.items()}
    out["method"] = cal.method
    return out


def naive_vectors(rs: RecordSet, mode: str = "clip") -> np.ndarray:
    """One vector per record: 0.3 x text + 0.7 x image (see the module docstring)."""
    if mode == "clip":
        return fixed_vectors(rs)  # what the matcher's fixed fusion compares
    if mode == "concat":
        image = rs.photo * rs.has_photo[:, None]
        return l2_normalize(np.hstack([FIXED_TEXT * rs.text, FIXED_IMAGE * image]))
    raise ValueError(f"naive mode {mode!r}: use clip or concat")


def naive_scores(rs: RecordSet, li: np.ndarray, ri: np.ndarray, mode: str = "clip") -> np.ndarray:
    v = naive_vectors(rs, mode)
    out: np.ndarray = np.einsum("ij,ij->i", v[li], v[ri]).astype(np.float64)
    return out


def naive_threshold(prob: np.ndarray, labels: np.ndarray) -> float:
    return best_threshold(prob, labels)[0]
