"""What a labelling says about its clusters: centroids, medoids, cohesion, separation, metrics.

* centroid: mean of the members, L2-re-normalised (a direction on the unit sphere);
* medoid: the real member with the highest cosine to the centroid (the representative);
* cohesion: mean cosine of the members to their centroid (1 = tight);
* separation: cosine between the centroid and the nearest other centroid (lower = apart);
* ``meta["cos_threshold"]``: the cosine to the centroid that 95% of the members reach (all
  of them below 20 members), each member measured against the centroid of the others;
  farther than that, a new item is "unknown" to the cluster
  (:mod:`clipatlas.analysis.clustering.classify`); ``meta["representatives"]``: up to
  :data:`REPRESENTATIVES` member ids nearest the centroid, best first;
* global: silhouette (cosine, on a sample, noise excluded) and Davies-Bouldin (noise excluded).

The noise group (label -1) is reported as its own :class:`Cluster` with a size only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipatlas.analysis.clustering.kmeans import davies_bouldin, normalise, silhouette
from clipatlas.store.runs import NOISE, Cluster

__all__ = [
    "MEMBER_PERCENTILE",
    "REPRESENTATIVES",
    "describe",
    "member_threshold",
    "relabel_by_size",
]

MEMBER_PERCENTILE = 95.0  # share of members inside the "known" radius of a cluster
REPRESENTATIVES = 8


def held_out_cosines(members: np.ndarray) -> np.ndarray:
    """Each member's cosine to the centroid of the *other* members (leave-one-out), so the
    radius is not flattered by members pulling the centroid towards themselves; a single
    member gets its cosine to itself (1)."""
    members = np.asarray(members, dtype=np.float32)
    if len(members) < 2:
        return np.ones(len(members), np.float32)
    others = members.sum(axis=0, keepdims=True) - members
    norms = np.linalg.norm(others, axis=1)
    norms[norms == 0] = 1.0
    return np.asarray(np.einsum("ij,ij->i", members, others) / norms, dtype=np.float32)


def member_threshold(cos: np.ndarray, percentile: float = MEMBER_PERCENTILE) -> float:
    """The cosine to the centroid that ``percentile`` % of the members reach (the farthest
    member's below 20 members, where a percentile is not yet meaningful)."""
    if len(cos) < 20:
        return float(cos.min())
    return float(np.percentile(cos, 100.0 - percentile))


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..K-1, largest first (noise stays -1); ties by old label."""
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = sorted(zip(found.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    mapping = np.full(int(found.max()) + 1 if len(found) else 0, -1, dtype=np.int32)
    for new, (old, _) in enumerate(order):
        mapping[old] = new
    out = np.full(len(labels), NOISE, dtype=np.int32)
    real = labels >= 0
    out[real] = mapping[labels[real]]
    return out


def describe(
    ids: np.ndarray, matrix: np.ndarray, labels: np.ndarray, *, seed: int = 0
) -> tuple[list[Cluster], dict[str, Any]]:
    """Per-cluster stats and global metrics of ``labels`` (one per row of ``matrix``)."""
    found = [int(c) for c in np.unique(labels) if c >= 0]
    centroids = (
        normalise(np.vstack([matrix[labels == c].mean(axis=0) for c in found]))
        if found
        else np.zeros((0, matrix.shape[1]), np.float32)
    )
    between = centroids @ centroids.T
    np.fill_diagonal(between, -np.inf)
    clusters: list[Cluster] = []
    for row, label in enumerate(found):
        members = np.flatnonzero(labels == label)
        cos = matrix[members] @ centroids[row]
        nearest = np.argsort(-cos, kind="stable")[:REPRESENTATIVES]
        clusters.append(
            Cluster(
                label=label,
                size=len(members),
                medoid_id=int(ids[members[int(np.argmax(cos))]]),
                cohesion=round(float(cos.mean()), 6),
                separation=round(float(between[row].max()), 6) if len(found) > 1 else None,
                centroid=centroids[row],
                meta={
                    "cos_threshold": round(member_threshold(held_out_cosines(matrix[members])), 6),
                    "representatives": [int(ids[members[i]]) for i in nearest],
                },
            )
        )
    noise = int(np.count_nonzero(labels == NOISE))
    if noise:
        clusters.append(Cluster(NOISE, noise, None, None, None, None))
    sil = silhouette(matrix, labels, seed=seed)
    dbi = davies_bouldin(matrix, labels)
    metrics: dict[str, Any] = {
        "items": len(labels),
        "clusters": len(found),
        "noise": noise,
        "noise_share": round(noise / len(labels), 6) if len(labels) else 0.0,
        "silhouette": None if sil is None else round(sil, 6),
        "davies_bouldin": None if dbi is None else round(dbi, 6),
        "mean_cohesion": round(float(np.mean([c.cohesion for c in clusters[: len(found)]])), 6)
        if found
        else None,
    }
    return clusters, metrics
