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
from clipatlas.matching.scoring import Calibration, PairScores, fuse

__all__ = ["GROUPS", "metrics_at", "naive_scores", "naive_vectors", "scores_report"]

GROUPS = {0: "no_photo", 1: "one_photo", 2: "both_photos"}
TEXT_WEIGHT, IMAGE_WEIGHT = 0.3, 0.7


def metrics_at(prob: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
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
    prob: np.ndarray, labels: np.ndarray, photos: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Overall metrics at ``threshold`` and the same per photo group (0, 1 or 2 photos)."""
    out = {"overall": metrics_at(prob, labels, threshold), "threshold": round(threshold, 6)}
    for count, name in GROUPS.items():
        mask = photos == count
        if mask.any():
            out[name] = metrics_at(prob[mask], labels[mask], threshold)
    return out


def matcher_report(scores: PairScores, labels: np.ndarray, cal: Calibration) -> dict[str, Any]:
    return scores_report(fuse(scores, cal), labels, scores.photos, cal.threshold)


def naive_vectors(rs: RecordSet, mode: str = "clip") -> np.ndarray:
    """One vector per record: 0.3 x text + 0.7 x image (see the module docstring)."""
    image = rs.photo * rs.has_photo[:, None]
    if mode == "clip":
        return l2_normalize(TEXT_WEIGHT * rs.clip_text + IMAGE_WEIGHT * image)
    if mode == "concat":
        return l2_normalize(np.hstack([TEXT_WEIGHT * rs.text, IMAGE_WEIGHT * image]))
    raise ValueError(f"naive mode {mode!r}: use clip or concat")


def naive_scores(rs: RecordSet, li: np.ndarray, ri: np.ndarray, mode: str = "clip") -> np.ndarray:
    v = naive_vectors(rs, mode)
    out: np.ndarray = np.einsum("ij,ij->i", v[li], v[ri]).astype(np.float64)
    return out


def naive_threshold(prob: np.ndarray, labels: np.ndarray) -> float:
    return best_threshold(prob, labels)[0]
