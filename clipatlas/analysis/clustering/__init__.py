"""Clustering runs: automatic (HDBSCAN or KMeans), KMeans with automatic K, DBSCAN (cosine),
HDBSCAN (PCA), and evaluation.

Modules, in the order a run uses them:

* ``runner``   -- parameters, one run over a matrix, artefacts (curves) on disk;
* ``auto``     -- the default method: HDBSCAN when its groups are clean and stable, else KMeans;
* ``kmeans``   -- spherical KMeans (FAISS or MiniBatch), assignment, automatic K;
* ``density``  -- DBSCAN on cosine distance, HDBSCAN on PCA vectors with sample + assign;
* ``summary``  -- centroids, medoids, cohesion, separation, silhouette, Davies-Bouldin;
* ``evaluate`` -- ARI / NMI / purity against ground-truth labels;
* ``synthetic`` -- groups with known labels for tests and benchmarks.

Runs are stored by :class:`clipatlas.store.runs.RunStore`; :class:`clipatlas.Atlas` ties it
together (``cluster``, ``runs``, ``run``, ``eval_clusters``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipatlas.store.runs import NOISE, Cluster, ClusterRun, KSelection

if TYPE_CHECKING:
    from clipatlas.analysis.clustering.evaluate import read_labels, score_labels
    from clipatlas.analysis.clustering.runner import (
        METHODS,
        ClusterParams,
        cluster_vectors,
        write_artifacts,
    )

# scikit-learn and FAISS load when a run is fitted or scored, not when runs are only listed
_LAZY = {
    "read_labels": "evaluate",
    "score_labels": "evaluate",
    "METHODS": "runner",
    "ClusterParams": "runner",
    "cluster_vectors": "runner",
    "write_artifacts": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"clipatlas.analysis.clustering.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHODS",
    "NOISE",
    "Cluster",
    "ClusterParams",
    "ClusterRun",
    "KSelection",
    "cluster_vectors",
    "read_labels",
    "score_labels",
    "write_artifacts",
]
