"""Spherical KMeans at scale, and the automatic choice of K.

Fitting starts from greedy k-means++ seeds (drawn from at most 20 000 rows) and iterates with
FAISS ``Kmeans(spherical=True)`` when faiss is installed (multi-threaded, fine at 1M x 512) or
scikit-learn's ``MiniBatchKMeans`` on L2-normalised vectors otherwise; never sklearn's
full-batch ``KMeans``. The best of several restarts (total cosine) is kept: 8 up to 5000 items,
3 above (2 per K of an automatic-K curve; :func:`restarts_for`), since a poor local optimum at
the true K makes a jagged silhouette curve. Assignment is by highest cosine to the
re-normalised centroids, computed in chunks so memory stays bounded.

Automatic K (:func:`select_k`) fits every K of the range on a sample and records three curves:
inertia (sum of squared distances to the centroid), silhouette (cosine, on a smaller sample) and
Davies-Bouldin. The *elbow* is the Kneedle knee of the inertia curve (both axes scaled to [0, 1];
the K whose point lies farthest below the chord from the first to the last point). The
*silhouette K* is the silhouette maximum. When the two disagree, the elbow is kept only if its
silhouette is within :data:`SILHOUETTE_TOLERANCE` of the maximum (the simpler model, with the
geometry nearly as good); otherwise the silhouette maximum wins. Davies-Bouldin is reported as
a third opinion and named in the explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import davies_bouldin_score, silhouette_score

from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.store.runs import KSelection

__all__ = [
    "SILHOUETTE_TOLERANCE",
    "assign",
    "backend",
    "davies_bouldin",
    "fit_centroids",
    "kneedle",
    "normalise",
    "restarts_for",
    "seed_centroids",
    "select_k",
    "silhouette",
]

SILHOUETTE_TOLERANCE = 0.03  # below this, sampled silhouettes and restarts disagree anyway
SILHOUETTE_SAMPLE = 4000
SEED_SAMPLE = 20_000
PARALLEL_WORK = 5_000_000  # rows x K above which FAISS uses all its threads
_CHUNK = 65_536


def normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def backend() -> str:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "minibatch"
    return "faiss"


def seed_centroids(matrix: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds (2 + log k candidates per step) from at most 20 000 rows."""
    x = matrix
    if len(x) > SEED_SAMPLE:
        x = x[rng.choice(len(x), SEED_SAMPLE, replace=False)]
    trials = 2 + int(np.log(k))
    chosen = [int(rng.integers(len(x)))]
    d2 = np.maximum(2.0 - 2.0 * (x @ x[chosen[0]]), 0.0)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            chosen.append(int(rng.integers(len(x))))
            continue
        candidates = rng.choice(len(x), size=trials, p=d2 / total)
        options = np.minimum(d2[None, :], np.maximum(2.0 - 2.0 * (x[candidates] @ x.T), 0.0))
        best = int(np.argmin(options.sum(axis=1)))
        chosen.append(int(candidates[best]))
        d2 = options[best]
    return np.ascontiguousarray(x[chosen], dtype=np.float32)


def _lloyd_faiss(x: np.ndarray, init: np.ndarray, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(
        x.shape[1],
        len(init),
        niter=30,
        spherical=True,
        seed=seed + 1234,
        min_points_per_centroid=1,  # no warning on small inputs (the library never prints)
        max_points_per_centroid=4096,
        verbose=False,
    )
    threads = faiss.omp_get_max_threads()
    if len(x) * len(init) < PARALLEL_WORK:
        # small problems: one thread. OpenMP barriers stall badly when another process shares
        # the cores (measured 7x slower with 2 threads on a busy 2-core machine).
        faiss.omp_set_num_threads(1)
    try:
        km.train(x, init_centroids=init)
    finally:
        faiss.omp_set_num_threads(threads)
    return np.asarray(km.centroids, dtype=np.float32)


def restarts_for(n: int, *, curve: bool = False) -> int:
    """KMeans restarts: 8 up to 5000 items (cheap, and smooth auto-K curves), else 3 for a
    final fit and 2 for each K of an automatic-K curve (on its sample of up to 20k items, where
    restarts differ little): at 1M items, K = 2..60 took 133 s with 3 per K, 90% of it in the
    curves (bench/cluster_scale.py --only autok)."""
    if n <= 5000:
        return 8
    return 2 if curve else 3


def fit_centroids(matrix: np.ndarray, k: int, *, seed: int = 0, restarts: int = 3) -> np.ndarray:
    """L2-normalised centroids of a spherical KMeans with ``k`` clusters.

    Each of ``restarts`` runs starts from greedy k-means++ seeds and iterates (FAISS Lloyd,
    spherical; else MiniBatchKMeans); the run with the highest total cosine to the assigned
    centroid wins.
    """
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    rng = np.random.default_rng(seed)
    best, best_score = None, -np.inf
    for attempt in range(restarts):
        init = seed_centroids(x, k, rng)
        if backend() == "faiss":
            centroids = normalise(_lloyd_faiss(x, init, seed + attempt))
        else:
            from sklearn.cluster import MiniBatchKMeans

            mbk = MiniBatchKMeans(
                n_clusters=k,
                init=init,
                n_init=1,
                random_state=seed + attempt,
                batch_size=min(len(x), 4096),
                max_iter=100,
            )
            mbk.fit(x)
            centroids = normalise(np.asarray(mbk.cluster_centers_, dtype=np.float32))
        score = float(assign(x, centroids)[1].sum())
        if score > best_score:
            best, best_score = centroids, score
    assert best is not None
    return best


def assign(matrix: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label int32, cosine to that centroid) per row, computed in chunks."""
    labels = np.empty(len(matrix), dtype=np.int32)
    best = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), _CHUNK):
        sims = matrix[start : start + _CHUNK] @ centroids.T
        top = np.argmax(sims, axis=1)
        labels[start : start + _CHUNK] = top
        best[start : start + _CHUNK] = sims[np.arange(len(top)), top]
    return labels, best


def silhouette(matrix: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float | None:
    """Cosine silhouette on at most :data:`SILHOUETTE_SAMPLE` rows (noise rows excluded)."""
    keep = labels >= 0
    x, y = matrix[keep], labels[keep]
    if len(np.unique(y)) < 2 or len(y) < 3:
        return None
    if len(y) > SILHOUETTE_SAMPLE:
        pick = np.random.default_rng(seed).choice(len(y), SILHOUETTE_SAMPLE, replace=False)
        x, y = x[pick], y[pick]
        if len(np.unique(y)) < 2:
            return None
    return float(silhouette_score(x, y, metric="cosine"))


def davies_bouldin(matrix: np.ndarray, labels: np.ndarray) -> float | None:
    keep = labels >= 0
    if len(np.unique(labels[keep])) < 2:
        return None
    return float(davies_bouldin_score(matrix[keep], labels[keep]))


def kneedle(ks: Sequence[int], values: Sequence[float]) -> int:
    """The knee of a decreasing, convex curve (Kneedle on the curve scaled to [0, 1])."""
    x = np.asarray(ks, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(x) < 3 or np.ptp(y) == 0:
        return int(x[0])
    xn = (x - x.min()) / np.ptp(x)
    yn = (y - y.min()) / np.ptp(y)
    below = (1.0 - xn) - yn  # distance below the chord from (0, 1) to (1, 0)
    return int(x[int(np.argmax(below))])


def select_k(
    matrix: np.ndarray,
    k_range: tuple[int, int],
    *,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> KSelection:
    """Fit each K in ``k_range`` (inclusive) on ``matrix`` and choose one (see module doc)."""
    ks = list(range(k_range[0], k_range[1] + 1))
    inertia: list[float] = []
    sil: list[float] = []
    dbi: list[float] = []
    for done, k in enumerate(ks, 1):
        restarts = restarts_for(len(matrix), curve=True)
        centroids = fit_centroids(matrix, k, seed=seed, restarts=restarts)
        labels, cos = assign(matrix, centroids)
        inertia.append(float(np.sum(2.0 - 2.0 * cos)))  # squared distance on the unit sphere
        sil.append(silhouette(matrix, labels, seed=seed) or -1.0)
        db = davies_bouldin(matrix, labels)
        dbi.append(float("inf") if db is None else db)
        emit(progress, ProgressEvent("choose K", done, len(ks), {"k": k}))
    elbow = kneedle(ks, inertia)
    best_sil = ks[int(np.argmax(sil))]
    best_db = ks[int(np.argmin(dbi))]
    sil_of = dict(zip(ks, sil, strict=True))
    if elbow == best_sil:
        chosen = elbow
        reason = f"elbow of inertia and silhouette maximum agree on K={chosen}"
    elif sil_of[elbow] >= sil_of[best_sil] - SILHOUETTE_TOLERANCE:
        chosen = elbow
        reason = (
            f"elbow K={elbow} kept over silhouette maximum K={best_sil}: its silhouette "
            f"{sil_of[elbow]:.3f} is within {SILHOUETTE_TOLERANCE} of {sil_of[best_sil]:.3f}"
        )
    else:
        chosen = best_sil
        reason = (
            f"silhouette maximum K={best_sil} ({sil_of[best_sil]:.3f}) chosen over elbow "
            f"K={elbow} ({sil_of[elbow]:.3f}): the elbow's clusters are clearly less separated"
        )
    reason += f"; Davies-Bouldin minimum at K={best_db}" + (
        " agrees" if best_db == chosen else " (lower is better; shown for comparison)"
    )
    return KSelection(
        ks=ks,
        inertia=inertia,
        silhouette=sil,
        davies_bouldin=[d if np.isfinite(d) else -1.0 for d in dbi],
        elbow_k=elbow,
        silhouette_k=best_sil,
        davies_bouldin_k=best_db,
        chosen_k=chosen,
        reason=reason,
    )
