"""2-D layout of embedding vectors for the atlas map: PCA, then UMAP.

:func:`layout` reduces unit-length vectors with PCA (to ``pca_dims``, 50 by default) and then
UMAP to two dimensions. Strategies, recorded in :attr:`MapLayout.strategy`:

* ``"umap"``: N <= ``sample``; PCA and UMAP are fitted on every vector.
* ``"umap-sample+transform"``: N > ``sample``; PCA and UMAP are fitted on a seeded random
  sample and the other vectors are placed with the fitted ``UMAP.transform`` (in chunks, so
  progress is reported). Faithful to UMAP; ~5k vectors/s on 2 cores (PCA-50, 30k sample).
* ``"umap-sample+knn"`` (``placement="knn"``): as above, but each other vector is placed at
  the inverse-distance weighted mean of the 2-D coordinates of its ``knn`` nearest sample
  vectors in PCA space. Exact search with FAISS (``IndexFlatL2``): ~30k vectors/s on 2 cores
  in a fresh process, but only ~6k/s measured inside the pipeline after UMAP has run
  (suspected OpenMP thread contention with numba, not yet fixed), i.e. ~1.2-1.4x
  ``transform``; without FAISS a numpy fallback runs at ~1.3k/s, slower than ``transform``
  (``bench/cluster_scale.py``, ``bench/RESULTS.md``).
* ``placement="auto"`` (default) picks ``knn`` when FAISS is importable and more than
  ``AUTO_TRANSFORM_MAX`` (50k) vectors are to be placed, else ``transform``;
  ``params["placement_used"]`` says which.
* ``"pca"``: too few vectors for UMAP (N < ``n_neighbors + 2``); PCA to two dimensions
  (padded with zeros when N or d allow fewer components).
* ``"single"`` (N = 1), ``"identical"`` (all vectors equal): every point at the origin;
  ``"empty"`` (N = 0).

The result is deterministic for a fixed ``seed`` (UMAP then runs single-threaded).
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.decomposition import PCA

from clipatlas.errors import ConfigError
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

__all__ = ["MapLayout", "Placement", "layout"]

Placement = Literal["auto", "transform", "knn"]

_STAGE = "map"
_TRANSFORM_CHUNK = 20_000
_KNN_BLOCK = 8_192
AUTO_TRANSFORM_MAX = 50_000  # "auto": UMAP.transform up to this many, then knn (with faiss)


@dataclass(frozen=True)
class MapLayout:
    """2-D coordinates (N, 2) float32, in the order of the input vectors."""

    coords: np.ndarray
    strategy: str
    seconds: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _quiet_umap() -> Iterator[None]:
    """Silence the known, harmless warnings of umap-learn (and nothing else).

    * ``ImportWarning`` on import: TensorFlow is absent, so ParametricUMAP is unavailable.
    * ``UserWarning`` "n_jobs value 1 overridden": a seed makes UMAP single-threaded.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ImportWarning)
        warnings.filterwarnings(
            "ignore", message=r"n_jobs value .* overridden", category=UserWarning
        )
        yield


def _umap_class() -> Any:
    with _quiet_umap():
        import umap  # heavy (numba): imported on first use only

    return umap.UMAP


def _validate(vectors: np.ndarray, pca_dims: int, n_neighbors: int, sample: int) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ConfigError(f"vectors must be a 2-D array (N, d), got shape {x.shape}")
    if x.shape[0] and x.shape[1] == 0:
        raise ConfigError("vectors have no dimensions (d = 0)")
    if pca_dims < 2:
        raise ConfigError(f"pca_dims must be at least 2, got {pca_dims}")
    if n_neighbors < 2:
        raise ConfigError(f"n_neighbors must be at least 2, got {n_neighbors}")
    if sample < n_neighbors + 2:
        raise ConfigError(f"sample must be at least n_neighbors + 2, got {sample}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ConfigError("vectors contain NaN or infinite values")
    return x


def _pca_2d(x: np.ndarray, seed: int) -> np.ndarray:
    n, d = x.shape
    k = min(2, d, n - 1)
    out = np.zeros((n, 2), dtype=np.float32)
    if k >= 1:
        out[:, :k] = PCA(n_components=k, random_state=seed).fit_transform(x)
    return out


def _faiss_flat_index(points: np.ndarray) -> Any | None:
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(np.ascontiguousarray(points, dtype=np.float32))
    return index


def _knn_place(
    fitted: np.ndarray,
    coords: np.ndarray,
    queries: np.ndarray,
    k: int,
    progress: ProgressCallback | None,
    done0: int,
    total: int,
) -> np.ndarray:
    """Inverse-distance weighted mean of the 2-D coords of the k nearest fitted points.

    Exact neighbours: FAISS ``IndexFlatL2`` when faiss is installed (multi-threaded top-k),
    else blocked numpy matrix products with ``argpartition`` (several times slower).
    """
    k = min(k, fitted.shape[0])
    index = _faiss_flat_index(fitted)
    sq = np.einsum("ij,ij->i", fitted, fitted)
    out = np.empty((queries.shape[0], 2), dtype=np.float32)
    for start in range(0, queries.shape[0], _KNN_BLOCK):
        q = queries[start : start + _KNN_BLOCK]
        if index is not None:
            dist, idx = index.search(np.ascontiguousarray(q, dtype=np.float32), k)
        else:
            d2 = sq[None, :] - 2.0 * (q @ fitted.T)  # + |q|^2, constant per row: irrelevant
            idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
            dist = np.take_along_axis(d2, idx, axis=1) + np.einsum("ij,ij->i", q, q)[:, None]
        w = 1.0 / (np.sqrt(np.maximum(dist, 0.0)) + 1e-6)
        w /= w.sum(axis=1, keepdims=True)
        out[start : start + len(q)] = np.einsum("ij,ijk->ik", w, coords[idx])
        emit(progress, ProgressEvent(_STAGE, done0 + start + len(q), total, message="place (knn)"))
    return out


def layout(
    vectors: np.ndarray,
    *,
    pca_dims: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    sample: int = 50_000,
    seed: int = 0,
    placement: Placement = "auto",
    knn: int = 10,
    progress: ProgressCallback | None = None,
) -> MapLayout:
    """Lay out ``vectors`` (N, d), unit-length rows, in 2-D: PCA to ``pca_dims``, then UMAP.

    For N > ``sample``, PCA and UMAP are fitted on a seeded sample of ``sample`` vectors and the
    rest are placed by ``placement`` (``"transform"``: UMAP's own transform; ``"knn"``: weighted
    mean of the ``knn`` nearest sample points; ``"auto"``: knn with FAISS beyond
    ``AUTO_TRANSFORM_MAX`` placed vectors, else transform; see the module docstring).
    Raises :class:`ConfigError` for a malformed
    array or parameters; any N >= 0 works. ``progress`` receives ``stage="map"`` events.
    """
    if placement not in ("auto", "transform", "knn"):
        raise ConfigError(f"placement must be 'auto', 'transform' or 'knn', got {placement!r}")
    x = _validate(vectors, pca_dims, n_neighbors, sample)
    n, d = x.shape
    params: dict[str, Any] = {
        "n": n,
        "d": d,
        "pca_dims": pca_dims,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
        "sample": sample,
        "seed": seed,
        "placement": placement,
        "knn": knn,
    }
    t_start = time.perf_counter()
    if n == 0:
        return MapLayout(np.zeros((0, 2), np.float32), "empty", {"total": 0.0}, params)
    if n == 1:
        return MapLayout(np.zeros((1, 2), np.float32), "single", {"total": 0.0}, params)
    if not np.ptp(x, axis=0).any():  # every vector the same: nothing to lay out
        return MapLayout(np.zeros((n, 2), np.float32), "identical", {"total": 0.0}, params)
    if n < n_neighbors + 2:
        coords = _pca_2d(x, seed)
        secs = time.perf_counter() - t_start
        return MapLayout(coords, "pca", {"pca": secs, "total": secs}, params)

    rng = np.random.default_rng(seed)
    sampled = n > sample
    fit_idx = np.sort(rng.choice(n, size=sample, replace=False)) if sampled else np.arange(n)
    seconds: dict[str, float] = {}
    total_steps = n

    t = time.perf_counter()
    dims = min(pca_dims, d, len(fit_idx) - 1)
    pca = PCA(n_components=dims, random_state=seed).fit(x[fit_idx])
    fit_reduced = pca.transform(x[fit_idx]).astype(np.float32)
    seconds["pca"] = time.perf_counter() - t
    params["pca_dims_used"] = dims
    emit(progress, ProgressEvent(_STAGE, 0, total_steps, message="pca"))

    t = time.perf_counter()
    umap_cls = _umap_class()
    reducer = umap_cls(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1,
        low_memory=True,
        verbose=False,
    )
    with _quiet_umap():
        fit_coords = np.asarray(reducer.fit_transform(fit_reduced), dtype=np.float32)
    seconds["umap_fit"] = time.perf_counter() - t
    params["fitted_on"] = len(fit_idx)
    emit(progress, ProgressEvent(_STAGE, len(fit_idx), total_steps, message="umap fit"))

    if not sampled:
        seconds["total"] = time.perf_counter() - t_start
        return MapLayout(fit_coords, "umap", seconds, params)

    coords = np.empty((n, 2), dtype=np.float32)
    coords[fit_idx] = fit_coords
    rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
    if placement == "auto":
        fast_knn = importlib.util.find_spec("faiss") is not None
        placement = "knn" if fast_knn and len(rest) > AUTO_TRANSFORM_MAX else "transform"
    params["placement_used"] = placement
    t = time.perf_counter()
    if placement == "knn":
        rest_reduced = np.empty((len(rest), dims), dtype=np.float32)
        for s in range(0, len(rest), 65_536):
            rest_reduced[s : s + 65_536] = pca.transform(x[rest[s : s + 65_536]])
        coords[rest] = _knn_place(
            fit_reduced, fit_coords, rest_reduced, knn, progress, len(fit_idx), total_steps
        )
    else:
        for s in range(0, len(rest), _TRANSFORM_CHUNK):
            chunk = rest[s : s + _TRANSFORM_CHUNK]
            with _quiet_umap():
                placed = reducer.transform(pca.transform(x[chunk]).astype(np.float32))
            coords[chunk] = np.asarray(placed, dtype=np.float32)
            emit(
                progress,
                ProgressEvent(
                    _STAGE, len(fit_idx) + s + len(chunk), total_steps, message="place (transform)"
                ),
            )
    seconds["place"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start
    return MapLayout(coords, f"umap-sample+{placement}", seconds, params)
