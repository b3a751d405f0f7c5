"""How well clustering recovers known groups as they overlap more (issue 4, "Done means").

Synthetic ground truth (:func:`clipatlas.analysis.clustering.synthetic.make_groups`): 20 groups
of 15..120 items in 64-d plus 5 % uniform noise; ``spread`` is the per-dimension Gaussian spread
around each group's direction (member-to-direction cosine ~ 1/sqrt(1 + 64 spread^2)). For each
spread and seed it runs automatic-K KMeans and HDBSCAN (defaults of ``Atlas.cluster``) and
reports ARI: KMeans on the grouped items only (it has no noise label), HDBSCAN on all items with
noise as one group (and on the grouped items it did not call noise, to separate "impure
clusters" from "members called noise"). Prints a Markdown block for bench/RESULTS.md.

    .venv/bin/python bench/cluster_quality.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas.analysis.clustering.kmeans import backend
from clipatlas.analysis.clustering.runner import ClusterParams, cluster_vectors
from clipatlas.analysis.clustering.synthetic import make_groups

SPREADS = (0.05, 0.07, 0.10, 0.13, 0.16, 0.20, 0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for spread in SPREADS:
        km_ari, km_k, hd_ari, hd_in, hd_k, hd_noise, cos_in, secs = [], [], [], [], [], [], [], []
        for seed in range(args.seeds):
            data = make_groups(20, dim=64, spread=spread, noise_share=0.05, seed=seed)
            truth = np.asarray(data.labels)
            grouped = truth != "noise"
            ids = np.arange(len(truth))
            centre = {
                g: data.vectors[truth == g].mean(axis=0) for g in set(data.labels) - {"noise"}
            }
            cos_in.append(
                np.mean(
                    [
                        float(v @ centre[g] / np.linalg.norm(centre[g]))
                        for v, g in zip(data.vectors, data.labels, strict=True)
                        if g != "noise"
                    ]
                )
            )
            t = time.perf_counter()
            km = cluster_vectors(ids, data.vectors, ClusterParams(method="kmeans", seed=seed))
            hd = cluster_vectors(ids, data.vectors, ClusterParams(method="hdbscan", seed=seed))
            secs.append(time.perf_counter() - t)
            km_ari.append(adjusted_rand_score(truth[grouped], km.labels[grouped]))
            km_k.append(km.metrics["clusters"])
            hd_ari.append(adjusted_rand_score(truth, hd.labels))
            kept = grouped & (hd.labels >= 0)
            hd_in.append(adjusted_rand_score(truth[kept], hd.labels[kept]))
            hd_k.append(hd.metrics["clusters"])
            hd_noise.append(hd.metrics["noise_share"])
        rows.append(
            f"| {spread:.2f} | {np.mean(cos_in):.2f} | {np.mean(km_ari):.3f} ({min(km_ari):.3f})"
            f" | {'/'.join(map(str, km_k))} | {np.mean(hd_ari):.3f} ({min(hd_ari):.3f})"
            f" | {np.mean(hd_in):.3f} | {'/'.join(map(str, hd_k))} | {np.mean(hd_noise):.1%}"
            f" | {np.mean(secs):.1f} |"
        )
    print(f"### cluster_quality ({time.strftime('%Y-%m-%d')})\n")
    print("`.venv/bin/python bench/cluster_quality.py" + f" --seeds {args.seeds}`  ")
    print(
        f"20 groups of 15..120 items, 64-d, +5% uniform noise; {args.seeds} seeds per row; "
        f"KMeans backend: {backend()}; K range 2..30; HDBSCAN min_cluster_size=10, "
        "min_samples=5, PCA-50\n"
    )
    print(
        "| spread | member cos to centre | KMeans auto-K ARI, grouped items: mean (min) "
        "| chosen K | HDBSCAN ARI, all items: mean (min) | HDBSCAN ARI, items it clustered "
        "| HDBSCAN clusters | HDBSCAN noise "
        "| s per seed (both) |"
    )
    print("|---:|---:|---:|---|---:|---:|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
