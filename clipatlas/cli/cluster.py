"""``clipatlas cluster``, ``clipatlas runs`` and ``clipatlas eval-clusters``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, settings_of
from clipatlas.cli.render import console, print_json, progress_bar
from clipatlas.wording import counted

commands = typer.Typer()

Opt = typer.Option


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


@commands.command()
def cluster(
    ctx: typer.Context,
    collection: Collection = "default",
    method: Annotated[
        str,
        Opt(
            help="auto (HDBSCAN if its groups are clean and stable, else KMeans), kmeans, "
            "dbscan or hdbscan."
        ),
    ] = "auto",
    k: Annotated[
        int | None, Opt("--k", help="KMeans clusters (default: automatic; implies kmeans).")
    ] = None,
    k_min: Annotated[int, Opt(help="Smallest K tried by automatic K.")] = 2,
    k_max: Annotated[int, Opt(help="Largest K tried by automatic K.")] = 30,
    eps: Annotated[float, Opt(help="DBSCAN neighbourhood (cosine distance).")] = 0.2,
    min_samples: Annotated[int, Opt(help="DBSCAN/HDBSCAN core neighbours.")] = 5,
    min_cluster_size: Annotated[int, Opt(help="HDBSCAN smallest cluster.")] = 10,
    pca_dims: Annotated[int, Opt(help="HDBSCAN PCA dimensions.")] = 50,
    sample: Annotated[int, Opt(help="Items used for automatic K / HDBSCAN fitting.")] = 20_000,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
    name: Annotated[bool, Opt(help="Name the clusters (style words and tags).")] = True,
    json_out: Json = False,
) -> None:
    """Cluster a collection and store the run (automatic method, KMeans, DBSCAN or HDBSCAN)."""
    with (
        Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas,
        progress_bar(not json_out) as progress,
    ):
        run = atlas.cluster(
            method, k=k, k_range=(k_min, k_max), eps=eps, min_samples=min_samples,
            min_cluster_size=min_cluster_size, pca_dims=pca_dims, sample=sample, seed=seed,
            name=name, progress=progress,
        )  # fmt: skip
    if json_out:
        print_json(run.as_dict())
        return
    m = run.metrics
    console.print(
        f"run {run.id}: {run.method}, {counted(run.n_clusters, 'cluster')}, {run.n_noise} noise, "
        f"silhouette {_fmt(m['silhouette'])}, Davies-Bouldin {_fmt(m['davies_bouldin'])}"
    )
    console.print(run.explanation, markup=False)
    table = Table(
        "label", "name", "size", "cohesion", "separation", "medoid", box=None, pad_edge=False
    )
    for c in run.clusters:
        table.add_row(
            "noise" if c.label < 0 else str(c.label),
            c.name or "-",
            str(c.size),
            _fmt(c.cohesion),
            _fmt(c.separation),
            "-" if c.medoid_id is None else str(c.medoid_id),
        )
    console.print(table)
    if run.directory:
        console.print(f"curves: {run.directory}", markup=False)


@commands.command()
def runs(ctx: typer.Context, collection: Collection = "default", json_out: Json = False) -> None:
    """List the clustering runs of a collection, newest first."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        found = atlas.runs()
    if json_out:
        print_json(found)
        return
    if not found:
        console.print("no clustering runs yet (try: clipatlas cluster -c NAME)")
        return
    table = Table("id", "method", "items", "clusters", "noise", "silhouette", "DB", box=None)
    for r in found:
        table.add_row(
            str(r["id"]), r["method"], str(r["items"]), str(r["clusters"]), str(r["noise"]),
            _fmt(r["metrics"].get("silhouette")), _fmt(r["metrics"].get("davies_bouldin")),
        )  # fmt: skip
    console.print(table)


@commands.command("eval-clusters")
def eval_clusters(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see clipatlas runs).")],
    labels: Annotated[Path, typer.Argument(help="Ground truth: .csv (key,label) or .jsonl.")],
    collection: Collection = "default",
    json_out: Json = False,
) -> None:
    """Score a run against ground-truth labels: ARI, NMI, purity (noise is its own group)."""
    from clipatlas.analysis.clustering.evaluate import read_labels

    truth = read_labels(labels)
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        scores = atlas.eval_clusters(run_id, dict(truth))
    if json_out:
        print_json(scores)
        return
    console.print(
        f"run {run_id}: ARI {scores['ari']:.4f}  NMI {scores['nmi']:.4f}  "
        f"purity {scores['purity']:.4f}  over {counted(scores['n'], 'item')}"
        + (f" ({scores['unmatched']} labels not in the run)" if scores["unmatched"] else "")
    )


@commands.command("map")
def map_(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see `clipatlas runs`).")],
    collection: Collection = "default",
    sample: Annotated[int, Opt(help="Items UMAP is fitted on; the rest are placed.")] = 50_000,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
    json_out: Json = False,
) -> None:
    """Draw a run's atlas map: coordinates, an offline interactive HTML map and a PNG."""
    with (
        Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas,
        progress_bar(not json_out) as progress,
    ):
        result = atlas.map(run_id, sample=sample, seed=seed, progress=progress)
    if json_out:
        print_json(result.as_dict())
        return
    console.print(f"run {result.run_id}: {result.points} points ({result.strategy})")
    console.print(f"  html: {result.html}")
    console.print(f"  png:  {result.png}")
