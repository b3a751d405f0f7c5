"""What a labelling says about its clusters: centroids, medoids, cohesion, separation, metrics.

* centroid: mean of the members, L2-re-normalised (a direction on the unit sphere);
* medoid: the real member with the highest cosine to the centroid (the representative);
* cohesion: mean cosine of the members to their centroid (1 = tight);
* separation: cosine between the centroid and the nearest other centroid (lower = apart);
* global: silhouette (cosine, on a sample, noise excluded) and Davies-Bouldin (noise excluded).

The noise group (label -1) is reported as its own :class:`Cluster` with a size only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipatlas.analysis.clustering.kmeans import davies_bouldin, normalise, silhouette
from clipatlas.store.runs import NOISE, Cluster

__all__ = ["describe", "relabel_by_size"]


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
        clusters.append(
            Cluster(
                label=label,
                size=len(members),
                medoid_id=int(ids[members[int(np.argmax(cos))]]),
                cohesion=round(float(cos.mean()), 6),
                separation=round(float(between[row].max()), 6) if len(found) > 1 else None,
                centroid=centroids[row],
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
