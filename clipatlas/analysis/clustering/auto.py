"""The default method (``auto``): HDBSCAN on PCA when it finds clean, stable groups, else
KMeans with automatic K.

Why: KMeans is the wrong model for groups of very different sizes. On planted groups of Zipf
sizes (issue 22) a large group that varies along a few directions is cheaper to split than two
small groups are to merge, so even the true K gives ARI ~0.6-0.8 and elbow/silhouette K drifts
(K=15..24, ARI 0.56 at spread 0.8), while HDBSCAN, which needs no K and has no preference for
equal sizes, recovers the groups (ARI 0.99). HDBSCAN fails the other way, on groups that
overlap: it then calls most items noise, where a KMeans partition of every item is the more
useful answer.

The rule:

1. HDBSCAN (``min_cluster_size``, ``min_samples``, PCA-``pca_dims``, fitted on at most
   ``sample`` items, the rest assigned: :func:`~clipatlas.analysis.clustering.density.
   hdbscan_labels`) on every item;
2. the same fitted on a random :data:`STABILITY_SHARE` as many items; *stability* is the ARI
   of the two labellings on the shared items (noise one group): clean groups give the same answer
   (0.95-1.0), a density threshold that cuts through overlapping groups does not;
3. HDBSCAN wins when it finds at least two clusters, calls at most :data:`MAX_NOISE` of the
   items noise, and its stability is at least :data:`MIN_STABILITY`. Otherwise KMeans with
   automatic K (elbow + silhouette, :func:`~clipatlas.analysis.clustering.kmeans.select_k`)
   runs, and the explanation says which test HDBSCAN failed.

The verdict (:class:`MethodChoice`) is saved in the run's metrics as ``method_choice`` and the
explanation names the winner and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clipatlas.analysis.clustering.density import hdbscan_labels

__all__ = ["MAX_NOISE", "MIN_STABILITY", "STABILITY_SHARE", "MethodChoice", "try_hdbscan"]

MAX_NOISE = 0.25  # above this share of noise the groups overlap: a partition serves better
MIN_STABILITY = 0.8  # ARI between HDBSCAN on all sampled items and on a random 80% of them
STABILITY_SHARE = 0.8


@dataclass(frozen=True)
class MethodChoice:
    """Which method the automatic choice took, and the evidence."""

    chosen: str  # "hdbscan" or "kmeans"
    reason: str
    clusters: int  # HDBSCAN's clusters on the sample
    noise_share: float  # HDBSCAN's noise share on the sample
    stability: float | None  # ARI between the full and the subsample fit (None: not measured)
    sizes: tuple[int, int] | None  # HDBSCAN's largest and smallest cluster

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "hdbscan": {
                "clusters": self.clusters,
                "noise_share": round(self.noise_share, 6),
                "stability": None if self.stability is None else round(self.stability, 6),
                "largest": None if self.sizes is None else self.sizes[0],
                "smallest": None if self.sizes is None else self.sizes[1],
            },
            "max_noise": MAX_NOISE,
            "min_stability": MIN_STABILITY,
        }


def try_hdbscan(
    matrix: np.ndarray,
    *,
    min_cluster_size: int,
    min_samples: int,
    pca_dims: int,
    sample: int,
    seed: int,
) -> tuple[np.ndarray, int, MethodChoice]:
    """HDBSCAN labels of every row of ``matrix`` (-1 = noise; fitted on at most ``sample``
    rows, the rest assigned), the number of rows it fitted, and whether it should win."""
    from sklearn.metrics import adjusted_rand_score

    if len(matrix) < 2 * max(min_cluster_size, min_samples):
        reason = (
            f"{len(matrix)} items are too few for HDBSCAN to find two clusters of at least "
            f"min_cluster_size={min_cluster_size}"
        )
        return (
            np.full(len(matrix), -1, np.int32),
            0,
            MethodChoice("kmeans", reason, 0, 1.0, None, None),
        )

    def fit(x: np.ndarray, size: int) -> tuple[np.ndarray, int]:
        return hdbscan_labels(
            x, min_cluster_size=min_cluster_size, min_samples=min_samples, pca_dims=pca_dims,
            sample=size, seed=seed,
        )  # fmt: skip

    labels, seen = fit(matrix, sample)
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    noise = float(np.mean(labels < 0)) if len(labels) else 1.0
    sizes = (int(counts.max()), int(counts.min())) if len(found) else None
    if len(found) < 2:
        reason = (
            f"HDBSCAN found {len(found)} cluster{'' if len(found) == 1 else 's'} "
            f"({noise:.0%} noise): no density structure to follow"
        )
        return labels, seen, MethodChoice("kmeans", reason, len(found), noise, None, sizes)
    if noise > MAX_NOISE:
        reason = (
            f"HDBSCAN called {noise:.0%} of the items noise (above {MAX_NOISE:.0%}): the groups "
            "overlap, so a partition of every item serves better"
        )
        return labels, seen, MethodChoice("kmeans", reason, len(found), noise, None, sizes)
    rng = np.random.default_rng(seed + 1)
    size = int(STABILITY_SHARE * seen)
    rows = np.sort(rng.choice(len(matrix), size, replace=False))
    again, _ = fit(matrix[rows], size)
    stability = float(adjusted_rand_score(labels[rows], again))
    if stability < MIN_STABILITY:
        reason = (
            f"HDBSCAN is unstable: its clusters on a random {STABILITY_SHARE:.0%} of the items "
            f"agree with those on all of them only to ARI {stability:.2f} (below "
            f"{MIN_STABILITY}), a density cut through overlapping groups"
        )
        return labels, seen, MethodChoice("kmeans", reason, len(found), noise, stability, sizes)
    assert sizes is not None
    uneven = (
        f"; cluster sizes range {sizes[1]}..{sizes[0]}, uneven groups that KMeans would split "
        "and merge"
        if sizes[0] >= 4 * sizes[1]
        else ""
    )
    reason = (
        f"HDBSCAN found {len(found)} clusters with {noise:.1%} noise and is stable (ARI "
        f"{stability:.2f} between its fits on all and on a random {STABILITY_SHARE:.0%} of the "
        f"items){uneven}"
    )
    return labels, seen, MethodChoice("hdbscan", reason, len(found), noise, stability, sizes)
