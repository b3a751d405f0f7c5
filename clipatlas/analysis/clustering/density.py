"""Density clustering: DBSCAN on cosine distance and HDBSCAN on PCA-reduced vectors.

* **DBSCAN** runs exactly (brute-force cosine neighbourhoods, ``eps`` is a cosine *distance*)
  and refuses collections above :data:`DBSCAN_MAX_ITEMS`: its neighbourhood lists grow with
  N x density, so memory is not bounded beyond that; the error suggests HDBSCAN.
* **HDBSCAN** (scikit-learn) fits on PCA-reduced vectors (``pca_dims``, whitening off), on a
  random sample of ``sample`` items when N is larger. Items outside the sample are given the
  cluster whose centroid (in the original space) is nearest by cosine, and become noise when
  that cosine is below the cluster's :data:`NOISE_PERCENTILE`-th percentile of its sampled
  members' cosines (an item farther out than 95 % of the members is not a member).

Both return one label per row, ``-1`` for noise.
"""

from __future__ import annotations

import numpy as np

from clipatlas.analysis.clustering.kmeans import assign, normalise
from clipatlas.errors import TooManyItemsError

__all__ = ["DBSCAN_MAX_ITEMS", "NOISE_PERCENTILE", "dbscan_labels", "hdbscan_labels"]

DBSCAN_MAX_ITEMS = 50_000
NOISE_PERCENTILE = 5.0


def dbscan_labels(matrix: np.ndarray, *, eps: float, min_samples: int) -> np.ndarray:
    if len(matrix) > DBSCAN_MAX_ITEMS:
        raise TooManyItemsError(
            "dbscan",
            len(matrix),
            DBSCAN_MAX_ITEMS,
            "use --method hdbscan (fits a sample, assigns the rest) or kmeans",
        )
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine", algorithm="brute")
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def reduce(matrix: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """PCA to ``dims`` (no-op when the vectors are already that small)."""
    dims = min(dims, matrix.shape[1], len(matrix))
    if dims >= matrix.shape[1]:
        return matrix
    from sklearn.decomposition import PCA

    return np.asarray(
        PCA(n_components=dims, random_state=seed).fit_transform(matrix), dtype=np.float32
    )


def hdbscan_labels(
    matrix: np.ndarray,
    *,
    min_cluster_size: int,
    min_samples: int | None,
    pca_dims: int,
    sample: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Labels for every row and the number of rows HDBSCAN itself saw."""
    from sklearn.cluster import HDBSCAN

    n = len(matrix)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, sample, replace=False)) if n > sample else np.arange(n)
    reduced = reduce(matrix[fit_rows], pca_dims, seed)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    fitted = np.asarray(model.fit_predict(reduced), dtype=np.int32)
    labels = np.full(n, -1, dtype=np.int32)
    labels[fit_rows] = fitted
    if len(fit_rows) == n:
        return labels, n
    found = np.unique(fitted[fitted >= 0])
    if not len(found):
        return labels, len(fit_rows)
    centroids = normalise(np.vstack([matrix[fit_rows][fitted == c].mean(axis=0) for c in found]))
    fitted_x = matrix[fit_rows]
    floor = np.asarray(
        [
            np.percentile(fitted_x[fitted == c] @ centroids[i], NOISE_PERCENTILE)
            for i, c in enumerate(found)
        ]
    )
    rest = np.setdiff1d(np.arange(n), fit_rows)
    nearest, cos = assign(matrix[rest], centroids)
    labels[rest] = np.where(cos >= floor[nearest], found[nearest], -1)
    return labels, len(fit_rows)
