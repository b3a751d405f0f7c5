"""Place vectors on a fitted run without refitting: nearest centroid, margin, "unknown".

Every cluster carries a calibrated radius: ``meta["cos_threshold"]``, the cosine to the centroid
that 95% of its own members reach (see :func:`~clipatlas.analysis.clustering.summary.
member_threshold`). A vector whose nearest centroid is farther than that cluster's threshold
is *unknown*: it is less like the cluster than nearly all of the cluster's members are. The
margin is the cosine gap to the runner-up centroid: below :data:`CLOSE_CALL` a close call, a
clear lead only from :data:`CLEAR_LEAD` up and when most inputs agree (:func:`lead_verdict`).

Several vectors describing one thing (e.g. the preview images of one CivitAI model) are
aggregated as the re-normalised mean of their vectors, and each one's own vote is reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipatlas.analysis.clustering.kmeans import normalise
from clipatlas.analysis.clustering.summary import held_out_cosines, member_threshold
from clipatlas.errors import ClusteringError
from clipatlas.store.run_notes import Assignment
from clipatlas.store.runs import NOISE, ClusterRun
from clipatlas.wording import counted

__all__ = ["CLEAR_LEAD", "CLOSE_CALL", "Classification", "ClusterScore", "RunModel", "lead_verdict"]

CLOSE_CALL = 0.02  # a margin below this is reported as a close call
CLEAR_LEAD = 0.05  # a margin from this up, with most inputs agreeing, is a clear lead


def lead_verdict(margin: float, agree: int, inputs: int) -> str:
    """Words for the nearest cluster's lead: the margin to the runner-up and, with several
    inputs (a model's previews), how many of them alone vote for it. A lead is "clear" only
    when the margin is at least :data:`CLEAR_LEAD` and most inputs agree."""
    split = inputs > 1 and 2 * agree <= inputs
    if margin < CLOSE_CALL:
        return "a close call"
    if split:
        return (
            f"a {'narrow' if margin < CLEAR_LEAD else 'fair'} lead of the mean vector only: "
            f"{inputs - agree} of {inputs} inputs alone are nearer another cluster, so "
            "treat it as uncertain"
        )
    if margin < CLEAR_LEAD:
        return "a narrow lead"
    return "a clear lead"


@dataclass(frozen=True)
class ClusterScore:
    label: int
    name: str | None
    cosine: float
    threshold: float
    size: int

    @property
    def within(self) -> bool:
        return self.cosine >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "cosine": round(self.cosine, 6),
            "threshold": round(self.threshold, 6),
            "within": self.within,
            "size": self.size,
        }


@dataclass(frozen=True)
class Classification:
    """The answer for one thing (one or several vectors) against one run."""

    run_id: int
    label: int | None  # None = unknown
    scores: list[ClusterScore]  # nearest first
    margin: float | None  # cosine gap between the nearest and the runner-up
    explanation: str
    inputs: list[dict[str, Any]] = field(default_factory=list)  # per vector: its own vote
    subject: dict[str, Any] = field(default_factory=dict)  # what was classified

    @property
    def unknown(self) -> bool:
        return self.label is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "label": self.label,
            "name": self.scores[0].name if self.scores and self.label is not None else None,
            "unknown": self.unknown,
            "margin": None if self.margin is None else round(self.margin, 6),
            "nearest": [s.as_dict() for s in self.scores],
            "explanation": self.explanation,
            "inputs": self.inputs,
            "subject": self.subject,
        }


def _quote(score: ClusterScore) -> str:
    return f"cluster {score.label}" + (f" ({score.name!r})" if score.name else "")


class RunModel:
    """The centroids, radii and names of a run, ready to place vectors."""

    def __init__(self, run: ClusterRun, vectors: np.ndarray | None = None) -> None:
        """``vectors`` (aligned with ``run.item_ids``) are needed only for a run stored
        without calibrated radii; they are then computed from the members."""
        real = [c for c in run.clusters if c.label != NOISE and c.centroid is not None]
        if not real:
            raise ClusteringError(f"run {run.id} has no clusters to classify against")
        self.run = run
        self.labels = np.asarray([c.label for c in real], dtype=np.int32)
        self.centroids = np.vstack([c.centroid for c in real if c.centroid is not None])
        self.names = [c.name for c in real]
        self.sizes = [c.size for c in real]
        thresholds = [c.meta.get("cos_threshold") for c in real]
        if any(t is None for t in thresholds):
            if vectors is None:
                raise ClusteringError(f"run {run.id} has no calibrated radii; pass its vectors")
            for i, c in enumerate(real):
                thresholds[i] = member_threshold(held_out_cosines(vectors[run.labels == c.label]))
        self.thresholds = np.asarray(thresholds, dtype=np.float32)

    def _score(self, row: int, cosine: float) -> ClusterScore:
        return ClusterScore(
            int(self.labels[row]),
            self.names[row],
            float(cosine),
            float(self.thresholds[row]),
            int(self.sizes[row]),
        )

    def classify(
        self, vectors: np.ndarray, *, top: int = 3, subject: dict[str, Any] | None = None,
        input_names: list[str] | None = None,
    ) -> Classification:  # fmt: skip
        """Classify the aggregate of ``vectors`` (one or more rows)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if not len(vectors):
            raise ClusteringError("nothing to classify: no vectors")
        query = normalise(vectors.mean(axis=0, keepdims=True))[0]
        cos = self.centroids @ query
        order = np.argsort(-cos, kind="stable")[: max(1, top)]
        scores = [self._score(int(r), float(cos[r])) for r in order]
        margin = float(cos[order[0]] - cos[order[1]]) if len(order) > 1 else None
        best = scores[0]
        inputs: list[dict[str, Any]] = []
        if len(vectors) > 1 or input_names:
            own = vectors @ self.centroids.T
            for i, row in enumerate(own):
                j = int(np.argmax(row))
                inputs.append(
                    {
                        "input": input_names[i] if input_names else str(i),
                        "nearest": int(self.labels[j]),
                        "cosine": round(float(row[j]), 6),
                        "within": bool(row[j] >= self.thresholds[j]),
                    }
                )
        label = best.label if best.within else None
        return Classification(
            run_id=self.run.id,
            label=label,
            scores=scores,
            margin=margin,
            explanation=self._explain(scores, margin, inputs),
            inputs=inputs,
            subject=subject or {},
        )

    def _explain(
        self, scores: list[ClusterScore], margin: float | None, inputs: list[dict[str, Any]]
    ) -> str:
        best = scores[0]
        radius = (
            f"95% of its {best.size} members are at cosine >= {best.threshold:.3f}"
            if best.size >= 20
            else f"all {best.size} of its members are at cosine >= {best.threshold:.3f}"
            if best.size > 1
            else f"its only member is at cosine >= {best.threshold:.3f}"
        )
        if best.within:
            parts = [
                f"Nearest is {_quote(best)} at cosine {best.cosine:.3f}; {radius}, "
                "so the item falls inside it."
            ]
        else:
            parts = [
                f"The nearest cluster, {_quote(best)}, is at cosine {best.cosine:.3f}, farther "
                f"than its own members ({radius}): unknown to run {self.run.id}."
            ]
        agree = Counter(i["nearest"] for i in inputs).get(best.label, 0)
        if margin is not None and len(scores) > 1:
            runner = scores[1]
            verdict = lead_verdict(margin, agree, len(inputs))
            parts.append(
                f"Runner-up {_quote(runner)} at {runner.cosine:.3f}: margin {margin:.3f}, "
                f"{verdict}."
            )
        if len(inputs) > 1:
            parts.append(
                f"Aggregated from {counted(len(inputs), 'image')} (mean of their vectors); "
                f"{agree} of {len(inputs)} alone "
                f"{'is' if agree == 1 else 'are'} nearest to cluster {best.label}."
            )
        return " ".join(parts)

    def assign(self, item_ids: np.ndarray, vectors: np.ndarray) -> list[Assignment]:
        """One assignment per row (the "unknown" rule applied per item)."""
        out: list[Assignment] = []
        for start in range(0, len(item_ids), 8192):
            block = np.asarray(vectors[start : start + 8192], dtype=np.float32) @ self.centroids.T
            if block.shape[1] > 1:
                top2 = np.argsort(-block, axis=1, kind="stable")[:, :2]
            else:
                top2 = np.zeros((len(block), 1), dtype=np.int64)
            for i, row in enumerate(block):
                j = int(top2[i, 0])
                second = float(row[top2[i, 1]]) if block.shape[1] > 1 else float("nan")
                inside = bool(row[j] >= self.thresholds[j])
                out.append(
                    Assignment(
                        item_id=int(item_ids[start + i]),
                        label=int(self.labels[j]) if inside else NOISE,
                        nearest=int(self.labels[j]),
                        cosine=round(float(row[j]), 6),
                        margin=round(float(row[j]) - second, 6) if block.shape[1] > 1 else 1.0,
                    )
                )
        return out
