"""Clustering and atlas-map times at scale on synthetic CLIP-like vectors.

For each N, generates N x 512 float32 unit vectors as a noisy mixture of 50 centres (known
labels), then times

* automatic K (``--k-range``, default 2..60): the library's own path,
  ``clipatlas.analysis.clustering.runner.cluster_vectors`` with ``k=None`` (inertia/silhouette/
  Davies-Bouldin curves fitted on a 20k sample, then the chosen K fitted on all N), with the
  K it chose;
* KMeans k=50: FAISS (``faiss.Kmeans(d, 50, niter=20, spherical=True)`` + assignment), sklearn
  MiniBatchKMeans (batch 4096), and sklearn full-batch KMeans (n_init=1) only up to 100k;
* HDBSCAN (``sklearn.cluster.HDBSCAN``) on PCA-50 of a 20k sample, then nearest-centroid
  assignment of every vector (in PCA space; noise of the sample stays noise);
* the map (``clipatlas.analysis.atlas_map.layout``): PCA-50 + UMAP fitted on a ``--map-sample``
  sample, the rest placed by k-NN interpolation (``placement="knn"``, all N); and UMAP's own
  ``transform`` measured on at most ``--transform-limit`` vectors beyond the sample, with the
  time for all N extrapolated from the measured rate when the limit cuts it short (labelled).

ARI against the generating labels is printed beside each clustering as a sanity check.

    .venv/bin/python bench/cluster_scale.py            # 100k and 1M (many minutes)
    .venv/bin/python bench/cluster_scale.py --quick    # 20k and 50k, a smoke run
    .venv/bin/python bench/cluster_scale.py --sizes 1000000 --only autok

Peak resident memory of the process is printed after each N (``ru_maxrss``: it never goes
down, so it is the peak of everything measured so far, including the generated vectors).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas.analysis.atlas_map import layout

D, K = 512, 50
METHODS = ("autok", "kmeans", "hdbscan", "map")


def make_vectors(n: int, seed: int = 0, noise: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around K random centres; ``noise`` is the expected norm of the noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = rng.dirichlet(np.full(K, 2.0))
    labels = rng.choice(K, size=n, p=sizes).astype(np.int32)
    x = np.empty((n, D), dtype=np.float32)
    for s in range(0, n, 100_000):
        lab = labels[s : s + 100_000]
        block = centres[lab] + rng.standard_normal((len(lab), D), dtype=np.float32) * (
            noise / np.sqrt(D)
        )
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[s : s + len(lab)] = block
    return x, labels


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_faiss(x: np.ndarray) -> tuple[np.ndarray, float]:
    import faiss

    def run() -> np.ndarray:
        km = faiss.Kmeans(D, K, niter=20, spherical=True, seed=1, verbose=False)
        km.train(x)
        return km.index.search(x, 1)[1][:, 0]

    return timed(run)


def bench_sklearn(x: np.ndarray, full: bool) -> tuple[np.ndarray, float]:
    if full:
        model = KMeans(n_clusters=K, n_init=1, random_state=0)
    else:
        model = MiniBatchKMeans(n_clusters=K, batch_size=4096, n_init=3, random_state=0)
    return timed(lambda: model.fit_predict(x))


def bench_auto_k(x: np.ndarray, k_range: tuple[int, int]) -> tuple[np.ndarray, float, str]:
    from clipatlas.analysis.clustering.runner import ClusterParams, cluster_vectors

    params = ClusterParams(k=None, k_range=k_range).check("bench", len(x))
    fitted, secs = timed(lambda: cluster_vectors(np.arange(len(x)), x, params))
    assert fitted.selection is not None
    sel = fitted.selection
    sample = min(len(x), params.sample)
    note = (f"chose K={sel.chosen_k} (elbow {sel.elbow_k}, silhouette max {sel.silhouette_k}) "
            f"from {k_range[0]}..{k_range[1]}, curves on {sample:,}")  # fmt: skip
    return fitted.labels, secs, note


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_hdbscan(x: np.ndarray, sample: int) -> tuple[np.ndarray, dict[str, float], int]:
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))
    t = time.perf_counter()
    pca = PCA(n_components=50, random_state=0).fit(x[idx])
    reduced = pca.transform(x[idx])
    t_pca = time.perf_counter() - t
    sub, t_fit = timed(lambda: HDBSCAN(min_cluster_size=50, copy=True).fit_predict(reduced))
    t = time.perf_counter()
    found = sorted(set(sub.tolist()) - {-1})
    labels = np.full(len(x), -1, dtype=np.int64)
    if found:
        cents = np.stack([reduced[sub == c].mean(axis=0) for c in found]).astype(np.float32)
        csq = (cents**2).sum(axis=1)
        for s in range(0, len(x), 65_536):
            q = pca.transform(x[s : s + 65_536]).astype(np.float32)
            labels[s : s + len(q)] = np.asarray(found)[np.argmin(csq[None] - 2 * q @ cents.T, 1)]
    labels[idx] = sub
    t_assign = time.perf_counter() - t
    return labels, {"pca": t_pca, "hdbscan": t_fit, "assign": t_assign}, len(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k and 50k vectors, small samples")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--map-sample", type=int, default=None, help="UMAP fit sample (30000)")
    ap.add_argument("--hdbscan-sample", type=int, default=20_000)
    ap.add_argument(
        "--transform-limit",
        type=int,
        default=None,
        help="vectors placed by UMAP.transform beyond the sample (50000)",
    )
    ap.add_argument("--k-range", type=int, nargs=2, default=(2, 60), metavar=("MIN", "MAX"))
    ap.add_argument("--only", nargs="+", choices=METHODS, default=list(METHODS))
    args = ap.parse_args()
    only = set(args.only)
    sizes = args.sizes or ([20_000, 50_000] if args.quick else [100_000, 1_000_000])
    map_sample = args.map_sample or (5_000 if args.quick else 30_000)
    limit = args.transform_limit or (5_000 if args.quick else 50_000)
    hdb_sample = min(args.hdbscan_sample, 5_000) if args.quick else args.hdbscan_sample

    print(
        f"cluster_scale: {os.cpu_count()} cores, {platform.processor() or platform.machine()},"
        f" d={D}, k={K}, map sample {map_sample}, HDBSCAN sample {hdb_sample}",
        flush=True,
    )
    if "map" in only:
        warm = time.perf_counter()  # numba compiles UMAP's kernels on first use: not timed
        layout(make_vectors(3_000, seed=9)[0], sample=2_000, placement="transform", seed=0)
        print(f"UMAP/numba warm-up (JIT compile, untimed): {time.perf_counter() - warm:.1f}s")
    rows: list[tuple[str, ...]] = []
    for n in sizes:
        (x, truth), t_gen = timed(lambda n=n: make_vectors(n))
        print(f"\nN={n}: generated in {t_gen:.1f}s", flush=True)

        def row(method: str, secs: float, ari: float | None, note: str = "", n: int = n) -> None:
            a = f"{ari:.3f}" if ari is not None else "-"
            rows.append((f"{n:,}", method, f"{secs:.1f}", a, note))
            print(f"  {method:<44} {secs:8.1f}s  ARI {a}  {note}", flush=True)

        if "autok" in only:
            lab, secs, note = bench_auto_k(x, tuple(args.k_range))  # type: ignore[arg-type]
            row("KMeans, automatic K (clipatlas cluster)", secs, adjusted_rand_score(truth, lab),
                note)  # fmt: skip
        if "kmeans" in only:
            lab, secs = bench_faiss(x)
            row("KMeans k=50, faiss (20 iter, spherical)", secs, adjusted_rand_score(truth, lab))
            lab, secs = bench_sklearn(x, full=False)
            row("KMeans k=50, sklearn MiniBatch (3 inits)", secs, adjusted_rand_score(truth, lab))
        if "kmeans" in only and n <= 100_000:
            lab, secs = bench_sklearn(x, full=True)
            row("KMeans k=50, sklearn full batch (1 init)", secs, adjusted_rand_score(truth, lab))
        if "hdbscan" in only:
            hdbscan_row(x, truth, hdb_sample, row)
        if "map" in only:
            map_rows(x, n, map_sample, limit, row)
        print(f"  peak RSS so far: {peak_rss_mb():,.0f} MB", flush=True)
        del x, truth

    print("\n| N | method | seconds | ARI | notes |\n|---:|---|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\npeak RSS of the run: {peak_rss_mb():,.0f} MB")


def hdbscan_row(x, truth, hdb_sample, row):  # type: ignore[no-untyped-def]
    lab, parts, found = bench_hdbscan(x, hdb_sample)
    noise = float((lab == -1).mean())
    row(
        f"HDBSCAN on PCA-50 of {hdb_sample // 1000}k + nearest centroid",
        sum(parts.values()),
        adjusted_rand_score(truth, lab),
        f"{found} clusters, {noise:.1%} noise; pca {parts['pca']:.1f}s, "
        f"hdbscan {parts['hdbscan']:.1f}s, assign {parts['assign']:.1f}s",
    )


def map_rows(x, n, map_sample, limit, row):  # type: ignore[no-untyped-def]
    m = layout(x, sample=map_sample, placement="knn", seed=0)
    s = m.seconds
    row(
        f"map: PCA-50 + UMAP fit on {map_sample // 1000}k + kNN place rest",
        s["total"],
        None,
        f"pca {s['pca']:.1f}s, umap fit {s['umap_fit']:.1f}s, "
        f"place {n - map_sample:,} in {s['place']:.1f}s "
        f"({(n - map_sample) / s['place']:,.0f}/s)",
    )
    placed = min(n - map_sample, limit)
    t = layout(x[: map_sample + placed], sample=map_sample, placement="transform", seed=0)
    rate = placed / t.seconds["place"]
    est = t.seconds["pca"] + t.seconds["umap_fit"] + (n - map_sample) / rate
    measured = placed == n - map_sample
    row(
        f"map: PCA-50 + UMAP fit on {map_sample // 1000}k + UMAP.transform rest",
        t.seconds["total"] if measured else est,
        None,
        f"transform {rate:,.0f}/s"
        + (
            ""
            if measured
            else f" measured on {placed:,}; total EXTRAPOLATED for {n - map_sample:,}"
        ),
    )


if __name__ == "__main__":
    main()
