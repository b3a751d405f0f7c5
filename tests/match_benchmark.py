"""One run of the record-matching comparison, shared by the quality test and the benchmark.

Builds the labelled lost-and-found set (:mod:`tests.match_dataset`), imports it into a fresh
collection, calibrates on the calibration half and scores the test half with: the calibrated
matcher, the default (uncalibrated) matcher, and the naive fixed 0.3/0.7 vector fusions
(``clip`` and ``concat``, thresholds fitted on the calibration half). Reports F1 overall and per
photo group, plus how often a near-miss distractor outranks the true match.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from clipatlas import Atlas
from clipatlas.matching import LabelledPair
from clipatlas.matching.evaluate import (
    GROUPS,
    matcher_report,
    naive_scores,
    naive_threshold,
    scores_report,
)
from clipatlas.matching.recordset import RecordSet
from clipatlas.settings import Settings
from tests.match_dataset import MatchDataset, build_match_dataset

__all__ = ["MINILM", "run_comparison"]

MINILM = "sentence-transformers:sentence-transformers/all-MiniLM-L6-v2"


def _indexes(rs: RecordSet, pairs: list[LabelledPair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    where = rs.index()
    li = np.asarray([where[p.left] for p in pairs], np.int64)
    ri = np.asarray([where[p.right] for p in pairs], np.int64)
    return li, ri, np.asarray([p.same for p in pairs], np.int8)


def _near_miss_wins(rs: RecordSet, ds: MatchDataset, score: dict[tuple[str, str], float]) -> float:
    """Share of lost records whose near-miss distractor scores at least as high as the true
    found post (lower is better)."""
    wins, total = 0, 0
    for row in ds.rows:
        if row["kind"] != "lost":
            continue
        obj = row["object"]
        true_key, near_key = f"found-{obj:03d}", f"found-n{obj:03d}"
        if (row["id"], true_key) in score:
            total += 1
            wins += score[(row["id"], near_key)] >= score[(row["id"], true_key)]
    return round(wins / max(total, 1), 4)


def _top1_by_group(
    pairs: list[LabelledPair], score: np.ndarray, photos: np.ndarray
) -> dict[str, float]:
    """Share of lost posts whose true found post ranks first among the found posts of the test
    half, by photo group of the true pair (a threshold-free view of the same question)."""
    best: dict[str, tuple[float, bool]] = {}
    group: dict[str, int] = {}
    for p, s, n in zip(pairs, score, photos, strict=True):
        if p.left not in best or s > best[p.left][0]:
            best[p.left] = (float(s), p.same)
        if p.same:
            group[p.left] = int(n)
    out = {}
    for count, name in GROUPS.items():
        hits = [best[left][1] for left, n in group.items() if n == count]
        if hits:
            out[name] = round(float(np.mean(hits)), 4)
    return out


def run_comparison(
    workdir: Path,
    *,
    n_objects: int = 64,
    seed: int = 0,
    model: str = "fake:64",
    text_model: str = MINILM,
    target_precision: float | None = None,
    language: str = "en",
) -> dict[str, Any]:
    start = time.perf_counter()
    ds = build_match_dataset(workdir / "data", n_objects=n_objects, seed=seed, language=language)
    settings = Settings(
        home=workdir / "home", model=model, match_text_model=text_model, workers=-1, batch_size=32
    )
    out: dict[str, Any] = {
        "objects": n_objects,
        "records": len(ds.rows),
        "model": model,
        "text_model": text_model,
        "language": language,
    }
    with Atlas.open("matching-bench", settings=settings) as atlas:
        report = atlas.import_records(ds.records_path)
        out["import"] = {
            "imported": report.imported,
            "with_photo": report.with_photo,
            "errors": len(report.errors),
            "seconds": round(report.seconds, 2),
        }
        matcher = atlas.records()
        default = matcher.calibration()
        t0 = time.perf_counter()
        cal = atlas.calibrate_match(ds.calibration_pairs, target_precision=target_precision)
        out["calibration_seconds"] = round(time.perf_counter() - t0, 2)
        rs = matcher.load()
        scores, labels, _ = matcher.score_pairs(ds.test_pairs, cal, rs)
        out["calibrated"] = matcher_report(scores, labels, cal)
        out["default"] = matcher_report(scores, labels, default)
        from clipatlas.matching.scoring import fuse

        prob = fuse(scores, cal)
        by_pair = {(p.left, p.right): float(s) for p, s in zip(ds.test_pairs, prob, strict=True)}
        out["calibrated"]["near_miss_wins"] = _near_miss_wins(rs, ds, by_pair)
        out["calibrated"]["top1"] = _top1_by_group(ds.test_pairs, prob, scores.photos)
        # true pairs of a photo-less record and a photo-bearing one: how many pass the
        # threshold of their pattern, and how many would pass the overall one
        one = (scores.photos == 1) & (labels == 1)
        out["one_photo_true_pass"] = {
            "pattern_threshold": round(
                float((prob[one] >= cal.cuts(scores.photos)[one]).mean()), 4
            ),
            "overall_threshold": round(float((prob[one] >= cal.threshold).mean()), 4),
        }
        cli, cri, clab = _indexes(rs, ds.calibration_pairs)
        li, ri, _ = _indexes(rs, ds.test_pairs)
        for mode in ("clip", "concat"):
            threshold = naive_threshold(naive_scores(rs, cli, cri, mode), clab)
            test = naive_scores(rs, li, ri, mode)
            out[f"naive_{mode}"] = scores_report(test, labels, scores.photos, threshold)
            by_pair = {
                (p.left, p.right): float(s) for p, s in zip(ds.test_pairs, test, strict=True)
            }
            out[f"naive_{mode}"]["near_miss_wins"] = _near_miss_wins(rs, ds, by_pair)
            out[f"naive_{mode}"]["top1"] = _top1_by_group(ds.test_pairs, test, scores.photos)
        out["weights"] = {k: round(v.weight, 2) for k, v in cal.components.items()}
        out["method"] = cal.method
        out["validation"] = {
            k: v
            for k, v in cal.report["validation"].items()
            if k in ("components", "fixed", "used")
        }
        out["thresholds"] = {k: round(v, 5) for k, v in cal.thresholds.items()}
        out["threshold"] = round(cal.threshold, 5)
        out["category_penalty"] = cal.category_penalty
        lost = [p.left for p in ds.test_pairs if p.same]
        batch = atlas.match_batch(keys=lost, against_kind="found", k=1, threshold=0.0)
        out["top1_accuracy"] = round(
            float(
                np.mean(
                    [
                        bool(batch[key]) and batch[key][0].key == f"found-{key.split('-')[1]}"
                        for key in lost
                    ]
                )
            ),
            4,
        )
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["home"] = str(settings.home)  # the collection "matching-bench" stays there
    out["rows"] = ds.rows
    return out
