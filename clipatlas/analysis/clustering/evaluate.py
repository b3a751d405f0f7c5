"""Agreement of a run with ground-truth labels: ARI, NMI and purity.

Noise (-1) counts as one predicted group of its own. Only items present in both the run and
the ground truth are scored (``n``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from clipatlas.errors import GroundTruthError

__all__ = ["align", "read_labels", "score_labels"]


def score_labels(truth: list[str], predicted: list[int]) -> dict[str, Any]:
    n = len(truth)
    if n == 0:
        raise GroundTruthError("<mapping>", "no labelled item is part of the run")
    pairs: dict[int, dict[str, int]] = {}
    for t, p in zip(truth, predicted, strict=True):
        pairs.setdefault(p, {}).setdefault(t, 0)
        pairs[p][t] += 1
    purity = sum(max(c.values()) for c in pairs.values()) / n
    return {
        "ari": round(float(adjusted_rand_score(truth, predicted)), 6),
        "nmi": round(float(normalized_mutual_info_score(truth, predicted)), 6),
        "purity": round(float(purity), 6),
        "n": n,
    }


def read_labels(path: Path) -> dict[str, str]:
    """``key,label`` rows from a .csv (header optional) or ``{"key", "label"}`` lines (.jsonl).

    A key is an item's source key or its numeric id; ``id`` is accepted for ``key``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GroundTruthError(str(path), exc.strerror or str(exc)) from exc
    out: dict[str, str] = {}
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = row["key"] if "key" in row else row["id"]
                out[str(key)] = str(row["label"])
            except (ValueError, KeyError, TypeError) as exc:
                raise GroundTruthError(str(path), f"line {number}: {exc!r}") from exc
    elif path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r]
        if rows and [c.strip().lower() for c in rows[0][:2]] in (["key", "label"], ["id", "label"]):
            rows = rows[1:]
        for number, row in enumerate(rows, 1):
            if len(row) < 2:
                raise GroundTruthError(str(path), f"row {number}: expected key,label")
            out[row[0].strip()] = row[1].strip()
    else:
        raise GroundTruthError(str(path), "use a .csv (key,label) or .jsonl file")
    if not out:
        raise GroundTruthError(str(path), "no labels")
    return out


def align(
    label_of: Mapping[int, int], truth_by_id: Mapping[int, str]
) -> tuple[list[str], list[int]]:
    ids = sorted(set(label_of) & set(truth_by_id))
    return [truth_by_id[i] for i in ids], [label_of[i] for i in ids]
