"""Meaning stage: cluster the survivors, choose the cluster that is the query's, then judge
each picture on its own similarity.

* **Query direction.** Positives are the query text, extra ``prompts`` and ``positive_images``;
  negatives the ``negative_prompts`` and ``negative_images``. A vector's *relevance* is its mean
  cosine to the positives minus its mean cosine to the negatives (0 without negatives).
* **Clusters.** DBSCAN on cosine distance (``eps``, ``min_samples``) or HDBSCAN. The choice is
  :func:`clipatlas.dataset.evidence.choose_cluster`: the biggest cluster wins unless the query
  text, calibrated against unrelated control texts, is confident enough to break a tie between
  clusters of similar size or to veto one; a chosen cluster below ``min_share`` of the pictures
  is refused (:class:`~clipatlas.errors.WeakClusterError`) unless ``allow_small``.
* **Pictures.** Members of the chosen cluster are kept unless their own relevance is
  ``outlier_z`` robust deviations (1.4826 x MAD, at least 0.01) below the cluster median, or
  below ``min_similarity``. Noise points whose nearest cluster is the chosen one are kept when
  they lie as close to its centroid as 95 % of its members (the HDBSCAN assignment rule) and
  pass the same check. When no dense cluster exists, every picture is judged on its own (and
  the result says so: a ``no_dense_cluster`` warning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipatlas.analysis.clustering.density import NOISE_PERCENTILE, dbscan_labels, hdbscan_labels
from clipatlas.dataset.config import MeaningConfig
from clipatlas.dataset.evidence import CONTROL_TEXTS, choose_cluster
from clipatlas.dataset.quality import Survivor
from clipatlas.dataset.state import Outcome
from clipatlas.embedders.base import Embedder, l2_normalize
from clipatlas.errors import WeakClusterError
from clipatlas.images import decode_image

__all__ = ["ClusterScore", "MeaningResult", "QueryVectors", "meaning_stage", "query_vectors"]

_SIGMA_FLOOR = 0.01


@dataclass(frozen=True)
class QueryVectors:
    query: np.ndarray  # (d,) the query text alone
    positives: np.ndarray  # (P, d)
    negatives: np.ndarray  # (N, d), maybe empty
    controls: np.ndarray | None = None  # (T, d) unrelated texts: the null of the text evidence

    def relevance(self, vectors: np.ndarray) -> np.ndarray:
        rel = (vectors @ self.positives.T).mean(axis=1)
        if len(self.negatives):
            rel = rel - (vectors @ self.negatives.T).mean(axis=1)
        return np.asarray(rel, dtype=np.float64)


def _example_images(embedder: Embedder, paths: Sequence[str]) -> np.ndarray:
    if not paths:
        return np.zeros((0, embedder.dim), np.float32)
    pictures = [decode_image(Path(p).expanduser().read_bytes(), str(p)).image for p in paths]
    return embedder.embed_images(pictures)


def query_vectors(embedder: Embedder, query: str, config: MeaningConfig) -> QueryVectors:
    texts = embedder.embed_texts([query, *config.prompts])
    negative_texts = (
        embedder.embed_texts(list(config.negative_prompts))
        if config.negative_prompts
        else np.zeros((0, embedder.dim), np.float32)
    )
    positives = np.vstack([texts, _example_images(embedder, config.positive_images)])
    negatives = np.vstack([negative_texts, _example_images(embedder, config.negative_images)])
    controls = embedder.embed_texts(list(CONTROL_TEXTS))
    return QueryVectors(
        texts[0], l2_normalize(positives), l2_normalize(negatives), l2_normalize(controls)
    )


@dataclass
class ClusterScore:
    label: int
    size: int
    size_share: float
    relevance: float
    text_z: float  # the query text's evidence for this cluster over the chosen one
    vetoed: bool = False
    chosen: bool = False
    positions: list[int] = field(default_factory=list)  # candidate positions, best first

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "size_share": round(self.size_share, 4),
            "relevance": round(self.relevance, 4),
            "text_z": round(self.text_z, 2),
            "vetoed": self.vetoed,
            "chosen": self.chosen,
            "positions": self.positions,
        }


@dataclass
class MeaningResult:
    kept: list[tuple[Survivor, dict[str, Any]]]  # best relevance first
    dropped: list[Outcome]
    clusters: list[ClusterScore]
    chosen: int | None
    note: str = ""
    decided_by: str = ""  # size | text_tie_break | size_after_veto | only_cluster
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _labels(matrix: np.ndarray, c: MeaningConfig) -> np.ndarray:
    n = len(matrix)
    if c.method == "hdbscan":
        if n < max(c.min_cluster_size, 2):
            return np.full(n, -1, np.int32)
        return hdbscan_labels(
            matrix,
            min_cluster_size=c.min_cluster_size,
            min_samples=c.min_samples,
            pca_dims=50,
            sample=20_000,
            seed=0,
        )[0]
    if n < c.min_samples:
        return np.full(n, -1, np.int32)
    return dbscan_labels(matrix, eps=c.eps, min_samples=c.min_samples)


def _score_clusters(
    matrix: np.ndarray, labels: np.ndarray, q: QueryVectors, c: MeaningConfig
) -> tuple[list[ClusterScore], np.ndarray, int, str, list[dict[str, Any]]]:
    found = [int(x) for x in np.unique(labels) if x >= 0]
    centroids = l2_normalize(np.vstack([matrix[labels == x].mean(axis=0) for x in found]))
    rel = q.relevance(centroids)
    controls = q.controls if q.controls is not None else np.zeros((0, matrix.shape[1]))
    sizes = np.asarray([int((labels == x).sum()) for x in found])
    choice = choose_cluster(
        sizes,
        rel,
        np.asarray(controls @ centroids.T, np.float64),
        found,
        tie_ratio=c.tie_ratio,
        text_z_min=c.text_z,
        veto_z=c.veto_z,
    )
    out = [
        ClusterScore(
            x,
            int(sizes[i]),
            float(sizes[i] / sizes.sum()),
            float(rel[i]),
            float(choice.z[i, choice.index]),
            i in choice.vetoed,
        )
        for i, x in enumerate(found)
    ]
    return out, centroids, choice.index, choice.decided_by, choice.warnings


def _check_density(
    chosen: ClusterScore, clusters: list[ClusterScore], n: int, c: MeaningConfig
) -> list[dict[str, Any]]:
    """Refuse (or, with ``allow_small``, flag) a chosen cluster below ``min_share``."""
    if chosen.size >= c.min_share * n:
        return []
    sizes = ", ".join(str(cl.size) for cl in sorted(clusters, key=lambda cl: -cl.size))
    message = (
        f"the chosen cluster holds {chosen.size} of {n} pictures ({chosen.size / n:.0%}, below "
        f"min_share {c.min_share:.0%}; clusters: {sizes})"
    )
    if not c.allow_small:
        raise WeakClusterError(chosen.size, n, c.min_share, message)
    return [{"code": "small_cluster", "message": message, "cluster": chosen.label}]


def meaning_stage(
    survivors: Sequence[Survivor],
    vectors: dict[int, np.ndarray],
    q: QueryVectors,
    c: MeaningConfig,
) -> MeaningResult:
    dropped: list[Outcome] = []
    usable = []
    for s in survivors:
        if s.item.id in vectors:
            usable.append(s)
        else:
            dropped.append(
                Outcome(
                    s.row.position,
                    s.item.id,
                    "dropped",
                    "meaning",
                    "no_vector",
                    "the picture has no embedding",
                    dict(s.scores),
                )
            )
    if not usable:
        return MeaningResult([], dropped, [], None, "no picture to judge")
    matrix = l2_normalize(np.vstack([vectors[s.item.id] for s in usable]))
    rel = q.relevance(matrix)
    query_sim = matrix @ q.query
    labels = _labels(matrix, c)
    note = ""
    warnings: list[dict[str, Any]] = []
    if not (labels >= 0).any():
        labels = np.zeros(len(usable), np.int32)
        note = "no dense cluster was found: every picture was judged on its own similarity"
        warnings.append({"code": "no_dense_cluster", "message": note})
    clusters, centroids, best, decided_by, found = _score_clusters(matrix, labels, q, c)
    chosen = clusters[best]
    chosen.chosen = True
    warnings += found + _check_density(chosen, clusters, len(usable), c)
    members = labels == chosen.label
    centre = centroids[best]
    median = float(np.median(rel[members]))
    sigma = max(1.4826 * float(np.median(np.abs(rel[members] - median))), _SIGMA_FLOOR)
    floor = float(np.percentile(matrix[members] @ centre, NOISE_PERCENTILE))
    nearest = np.argmax(matrix @ centroids.T, axis=1)
    by_label = {cl.label: cl for cl in clusters}
    kept: list[tuple[Survivor, dict[str, Any]]] = []
    for i, s in enumerate(usable):
        label = int(labels[i])
        z = (rel[i] - median) / sigma
        scores: dict[str, Any] = {
            **s.scores,
            "cluster": label,
            "cluster_size": by_label[label].size if label >= 0 else None,
            "query_similarity": round(float(query_sim[i]), 4),
            "relevance": round(float(rel[i]), 4),
            "z": round(float(z), 3),
        }
        reason, detail = _judge(
            i, label, chosen, matrix, centre, floor, nearest, best, z, rel[i], c, by_label
        )
        if reason is None:
            kept.append((s, scores))
        else:
            dropped.append(
                Outcome(s.row.position, s.item.id, "dropped", "meaning", reason, detail, scores)
            )
    kept.sort(key=lambda pair: (-pair[1]["relevance"], pair[0].row.position))
    for cl in clusters:
        idx = np.flatnonzero(labels == cl.label)
        cl.positions = [usable[j].row.position for j in idx[np.argsort(-rel[idx], kind="stable")]]
    return MeaningResult(kept, dropped, clusters, chosen.label, note, decided_by, warnings)


def _judge(
    i: int,
    label: int,
    chosen: ClusterScore,
    matrix: np.ndarray,
    centre: np.ndarray,
    floor: float,
    nearest: np.ndarray,
    best: int,
    z: float,
    rel: float,
    c: MeaningConfig,
    by_label: dict[int, ClusterScore],
) -> tuple[str | None, str]:
    if label >= 0 and label != chosen.label:
        other = by_label[label]
        why = "vetoed by the query text" if other.vetoed else f"text evidence z={other.text_z:.1f}"
        return "other_cluster", (
            f"cluster {label} ({other.size} pictures, {why}) lost to cluster {chosen.label} "
            f"({chosen.size} pictures)"
        )
    if label < 0:
        cos = float(matrix[i] @ centre)
        if int(nearest[i]) != best or cos < floor:
            return "unclustered", (
                f"noise point, cosine {cos:.3f} to the chosen cluster (members >= {floor:.3f})"
            )
    if z < -c.outlier_z:
        return "off_query", f"query relevance {rel:.3f} is {-z:.1f} deviations below the cluster"
    if c.min_similarity is not None and rel < c.min_similarity:
        return "low_similarity", f"query relevance {rel:.3f} < {c.min_similarity:g}"
    return None, ""
