"""One clustering run over a matrix: check parameters, fit, describe, explain.

:class:`ClusterParams` names every knob of the methods (``auto``, the default, tries HDBSCAN
and falls back to KMeans with automatic K: :mod:`clipatlas.analysis.clustering.auto`) and
validates them against the number of items; :func:`cluster_vectors` returns labels
(renumbered largest cluster first, -1 = noise), per-cluster stats, metrics, the auto-K
selection and a plain-words explanation.
:func:`write_artifacts` saves the curves (JSON, plus a PNG when matplotlib is installed) under
``runs/<id>/`` of the collection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from clipatlas.analysis.clustering.auto import MethodChoice, try_hdbscan
from clipatlas.analysis.clustering.density import (
    NOISE_PERCENTILE,
    dbscan_labels,
    hdbscan_labels,
)
from clipatlas.analysis.clustering.kmeans import (
    assign,
    backend,
    fit_centroids,
    restarts_for,
    select_k,
)
from clipatlas.analysis.clustering.summary import describe, relabel_by_size
from clipatlas.errors import ClusterParameterError, TooFewItemsError
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.store.runs import Cluster, ClusterRun, KSelection
from clipatlas.wording import counted

__all__ = ["METHODS", "ClusterParams", "Fitted", "cluster_vectors", "write_artifacts"]

METHODS = ("auto", "kmeans", "dbscan", "hdbscan")


@dataclass(frozen=True)
class ClusterParams:
    method: str = "auto"  # HDBSCAN when it finds clean, stable groups, else KMeans (auto.py)
    k: int | None = None  # None: choose automatically in k_range; given: KMeans with this K
    k_range: tuple[int, int] = (2, 30)
    eps: float = 0.2  # DBSCAN: cosine distance
    min_samples: int = 5
    min_cluster_size: int = 10  # HDBSCAN
    pca_dims: int = 50  # HDBSCAN
    sample: int = 20_000  # auto-K and HDBSCAN fit on at most this many items
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["k_range"] = list(self.k_range)
        return data

    def check(self, collection: str, n: int) -> ClusterParams:
        """Validate against ``n`` items; returns the params with k_range clamped to n - 1."""
        bad = ClusterParameterError
        if self.method not in METHODS:
            raise bad("method", self.method, f"choose one of {', '.join(METHODS)}")
        lo, hi = self.k_range
        if self.k is not None and self.k < 2:
            raise bad("k", self.k, "must be at least 2")
        if lo < 2 or hi < lo:
            raise bad("k_range", self.k_range, "need 2 <= k_min <= k_max")
        if not 0 < self.eps <= 2:
            raise bad("eps", self.eps, "a cosine distance in (0, 2]")
        if self.min_samples < 1:
            raise bad("min_samples", self.min_samples, "must be at least 1")
        if self.min_cluster_size < 2:
            raise bad("min_cluster_size", self.min_cluster_size, "must be at least 2")
        if self.pca_dims < 2:
            raise bad("pca_dims", self.pca_dims, "must be at least 2")
        if self.sample < 100:
            raise bad("sample", self.sample, "must be at least 100")
        if self.method == "auto" and self.k is not None:
            return replace(self, method="kmeans").check(collection, n)  # K given: KMeans
        if self.method in ("kmeans", "auto"):
            if self.k is not None and n < self.k:
                raise TooFewItemsError(collection, n, self.k, f"kmeans with k={self.k}")
            if self.k is None and n < lo + 1:
                raise TooFewItemsError(collection, n, lo + 1, f"automatic K from {lo}")
            return ClusterParams(**{**asdict(self), "k_range": (lo, min(hi, n - 1))})
        if self.method == "hdbscan" and n < self.min_cluster_size:
            raise TooFewItemsError(
                collection, n, self.min_cluster_size, f"min_cluster_size={self.min_cluster_size}"
            )
        if self.method == "dbscan" and n < self.min_samples:
            raise TooFewItemsError(
                collection, n, self.min_samples, f"min_samples={self.min_samples}"
            )
        return self


@dataclass(frozen=True)
class Fitted:
    labels: np.ndarray
    clusters: list[Cluster]
    metrics: dict[str, Any]
    selection: KSelection | None
    explanation: str
    method: str  # the method that made the labels ("auto" resolves to kmeans or hdbscan)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _kmeans(
    matrix: np.ndarray, p: ClusterParams, progress: ProgressCallback | None
) -> tuple[np.ndarray, KSelection | None, str]:
    selection = None
    engine = "FAISS spherical KMeans" if backend() == "faiss" else "MiniBatchKMeans (normalised)"
    if p.k is None:
        rows = _sample(len(matrix), p.sample, p.seed)
        selection = select_k(matrix[rows], p.k_range, seed=p.seed, progress=progress)
        k = selection.chosen_k
        how = (
            f"K={k} chosen automatically from K={p.k_range[0]}..{p.k_range[1]} "
            f"(curves on {counted(len(rows), 'item')}): {selection.reason}"
        )
    else:
        k, how = p.k, f"K={p.k} as given"
    emit(progress, ProgressEvent("fit", 0, 1, {"k": k}))
    centroids = fit_centroids(matrix, k, seed=p.seed, restarts=restarts_for(len(matrix)))
    labels, _ = assign(matrix, centroids)
    emit(progress, ProgressEvent("fit", 1, 1, {"k": k}))
    return labels, selection, f"{engine} on {counted(len(matrix), 'item')}; {how}."


def _hdbscan_text(p: ClusterParams, n: int, dim: int, seen: int) -> str:
    text = (
        f"HDBSCAN (min_cluster_size={p.min_cluster_size}, min_samples={p.min_samples}) on "
        f"PCA-{min(p.pca_dims, dim)} vectors of {seen} of {counted(n, 'item')}"
    )
    return text + (
        f"; the other {n - seen} went to the nearest centroid, or to noise when "
        f"below the {NOISE_PERCENTILE:g}th percentile of its members' cosine."
        if seen < n
        else "."
    )


def _auto(
    matrix: np.ndarray, p: ClusterParams, progress: ProgressCallback | None
) -> tuple[np.ndarray, KSelection | None, str, MethodChoice]:
    emit(progress, ProgressEvent("try HDBSCAN", 0, 1))
    labels, seen, choice = try_hdbscan(
        matrix, min_cluster_size=p.min_cluster_size, min_samples=p.min_samples,
        pca_dims=p.pca_dims, sample=p.sample, seed=p.seed,
    )  # fmt: skip
    emit(progress, ProgressEvent("try HDBSCAN", 1, 1))
    if choice.chosen == "hdbscan":
        text = _hdbscan_text(p, len(matrix), matrix.shape[1], seen)
        return labels, None, f"Automatic method: HDBSCAN won: {choice.reason}. {text}", choice
    labels, selection, text = _kmeans(matrix, p, progress)
    return labels, selection, f"Automatic method: KMeans won: {choice.reason}. {text}", choice


def cluster_vectors(
    ids: np.ndarray,
    matrix: np.ndarray,
    params: ClusterParams,
    progress: ProgressCallback | None = None,
) -> Fitted:
    """Cluster L2-normalised rows of ``matrix`` (item ``ids``) as ``params`` says."""
    p = params
    selection: KSelection | None = None
    choice: MethodChoice | None = None
    method = p.method
    if p.method == "auto":
        labels, selection, text, choice = _auto(matrix, p, progress)
        method = choice.chosen
    elif p.method == "kmeans":
        labels, selection, text = _kmeans(matrix, p, progress)
    elif p.method == "dbscan":
        emit(progress, ProgressEvent("fit", 0, 1))
        labels = dbscan_labels(matrix, eps=p.eps, min_samples=p.min_samples)
        emit(progress, ProgressEvent("fit", 1, 1))
        text = (
            f"DBSCAN on cosine distance (eps={p.eps}, min_samples={p.min_samples}) over "
            f"{counted(len(matrix), 'item')}; items in no dense region are noise."
        )
    else:
        emit(progress, ProgressEvent("fit", 0, 1))
        labels, seen = hdbscan_labels(
            matrix,
            min_cluster_size=p.min_cluster_size,
            min_samples=p.min_samples,
            pca_dims=p.pca_dims,
            sample=p.sample,
            seed=p.seed,
        )
        emit(progress, ProgressEvent("fit", 1, 1))
        text = _hdbscan_text(p, len(matrix), matrix.shape[1], seen)
    labels = relabel_by_size(labels)
    clusters, metrics = describe(ids, matrix, labels, seed=p.seed)
    if choice is not None:
        metrics["method_choice"] = choice.as_dict()
    text += (
        f" Result: {counted(metrics['clusters'], 'cluster')}, "
        f"{counted(metrics['noise'], 'noise item')}; "
        f"silhouette {metrics['silhouette']}, Davies-Bouldin {metrics['davies_bouldin']}."
    )
    return Fitted(labels, clusters, metrics, selection, text, method)


def write_artifacts(run: ClusterRun, directory: Path) -> list[str]:
    """Save the auto-K curves under ``directory``; returns the file names written."""
    if run.selection is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "curves.json").write_text(json.dumps(run.selection.as_dict(), indent=2))
    written = ["curves.json"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    sel = run.selection
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    curves = (
        ("inertia", sel.inertia, sel.elbow_k),
        ("silhouette", sel.silhouette, sel.silhouette_k),
        ("davies_bouldin", sel.davies_bouldin, sel.davies_bouldin_k),
    )
    for ax, (name, values, best) in zip(axes, curves, strict=True):
        ax.plot(sel.ks, values, marker="o", ms=3)
        ax.axvline(best, ls=":", c="grey")
        ax.axvline(sel.chosen_k, c="red")
        ax.set_title(f"{name} (best K={best})")
        ax.set_xlabel("K")
    fig.suptitle(f"run {run.id}: K={sel.chosen_k}")
    fig.tight_layout()
    fig.savefig(directory / "k_curves.png", dpi=90)
    plt.close(fig)
    return [*written, "k_curves.png"]
