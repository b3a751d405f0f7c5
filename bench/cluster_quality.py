"""How well clustering recovers known groups as they overlap more (issue 4, "Done means").

Synthetic ground truth (:func:`clipatlas.analysis.clustering.synthetic.make_groups`): 20 groups
of 15..120 items in 64-d plus 5 % uniform noise; ``spread`` is the per-dimension Gaussian spread
around each group's direction (member-to-direction cosine ~ 1/sqrt(1 + 64 spread^2)). For each
spread and seed it runs automatic-K KMeans and HDBSCAN (defaults of ``Atlas.cluster``) and
reports ARI: KMeans on the grouped items only (it has no noise label), HDBSCAN on all items with
noise as one group (and on the grouped items it did not call noise, to separate "impure
clusters" from "members called noise"). Prints a Markdown block for bench/RESULTS.md.

    .venv/bin/python bench/cluster_quality.py [--seeds 3]
    .venv/bin/python bench/cluster_quality.py --uneven [--seeds 3] [--timing 10000]

``--uneven`` runs the data of issue 22 instead (``make_uneven_groups``: 2,000 items, 20 groups of
Zipf sizes, 5 % noise, deviations along 3 directions per group, spread 0.6 and 0.8) and compares
the default (``auto``) with auto-K KMeans, KMeans at the true K=20 and HDBSCAN (ARI on all items,
noise one group), plus the default's number of clusters with 2 % of the items held out.
``--timing N`` also times each on N x 512 such vectors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas.analysis.clustering.kmeans import backend
from clipatlas.analysis.clustering.runner import ClusterParams, Fitted, cluster_vectors
from clipatlas.analysis.clustering.synthetic import make_groups, make_uneven_groups

SPREADS = (0.05, 0.07, 0.10, 0.13, 0.16, 0.20, 0.25)


def _fit(vectors: np.ndarray, **params: Any) -> tuple[float, Fitted]:
    t = time.perf_counter()
    fitted = cluster_vectors(np.arange(len(vectors)), vectors, ClusterParams(**params))
    return time.perf_counter() - t, fitted


def uneven(seeds: int, timing: int) -> None:
    variants: dict[str, dict[str, Any]] = {
        "auto (default)": {},
        "KMeans auto-K": {"method": "kmeans"},
        "KMeans K=20": {"method": "kmeans", "k": 20},
        "HDBSCAN": {"method": "hdbscan"},
    }
    print(f"### cluster_quality --uneven ({time.strftime('%Y-%m-%d')})\n")
    shown = f" --timing {timing}" if timing else ""
    print(f"`.venv/bin/python bench/cluster_quality.py --uneven --seeds {seeds}{shown}`  ")
    print("2,000 items, 64-d, 20 groups of Zipf sizes (528..26), 5% noise, rank-3 deviations; "
          f"ARI on all items (noise one group), mean (min) of {seeds} seeds; K: clusters found "
          "(default with 2% held out in brackets)\n")  # fmt: skip
    print("| spread | " + " | ".join(variants) + " | default K (held out) |")
    print("|---:|" + "---:|" * len(variants) + "---|")
    for spread in (0.6, 0.8):
        scores: dict[str, list[float]] = {name: [] for name in variants}
        ks = []
        for seed in range(seeds):
            data = make_uneven_groups(2000, spread=spread, seed=seed)
            truth = np.asarray(data.labels)
            for name, params in variants.items():
                _, fitted = _fit(data.vectors, seed=seed, **params)
                scores[name].append(adjusted_rand_score(truth, fitted.labels))
                if name == "auto (default)":
                    keep = np.random.default_rng(seed + 1).permutation(2000)[:1960]
                    _, held = _fit(data.vectors[keep], seed=seed)
                    ks.append(f"{fitted.metrics['clusters']} ({held.metrics['clusters']})")
        cells = [f"{np.mean(v):.3f} ({min(v):.3f})" for v in scores.values()]
        print(f"| {spread} | " + " | ".join(cells) + f" | {', '.join(ks)} |")
    if timing:
        data = make_uneven_groups(timing, dim=512, spread=0.8, seed=0)
        print(f"\n{timing:,} x 512 (spread 0.8), seconds on this machine:\n")
        for name, params in variants.items():
            secs, fitted = _fit(data.vectors, **params)
            ari = adjusted_rand_score(np.asarray(data.labels), fitted.labels)
            print(f"- {name}: {secs:.1f} s, ARI {ari:.3f}, {fitted.metrics['clusters']} clusters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--uneven", action="store_true", help="the uneven groups of issue 22")
    parser.add_argument("--timing", type=int, default=0, help="also time N x 512 (--uneven)")
    args = parser.parse_args()
    if args.uneven:
        uneven(args.seeds, args.timing)
        return
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
