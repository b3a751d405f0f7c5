"""The ``clipatlas`` command line: parses, calls :class:`clipatlas.Atlas`, prints.

Exit codes: 0 success, 1 a clipatlas error (one line on stderr), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from clipatlas.analysis.duplicates import DEFAULT_COSINE, DEFAULT_PHASH_DISTANCE
from clipatlas.atlas import Atlas, list_collections
from clipatlas.cli.render import console, err_console, print_hits, print_json, progress_bar
from clipatlas.errors import ClipatlasError
from clipatlas.settings import Settings, load_settings

app = typer.Typer(
    name="clipatlas",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Search, cluster, map, clean and caption image collections with CLIP embeddings.",
)

Collection = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(help="Data directory (CLIPATLAS_HOME).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Server database URL (CLIPATLAS_DATABASE_URL).")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Image embedding precision: auto, fp32, bf16, int8 (CLIPATLAS_PRECISION)."
        ),
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if precision is not None:
        overrides["precision"] = precision
    if home is not None:
        overrides["home"] = home
    if database_url is not None:
        overrides["database_url"] = database_url
    ctx.obj = load_settings(**overrides)


@app.command()
def search(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="What to look for, in words.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="Find pictures like this one.")
    ] = None,
    like: Annotated[
        int | None, typer.Option(help="Find pictures like this stored item id.")
    ] = None,
    collection: Collection = "default",
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Number of results.")] = 10,
    captions: Annotated[
        bool, typer.Option("--captions", help="TEXT: fuse CLIP, caption and keyword ranks.")
    ] = False,
    fusion: Annotated[str, typer.Option(help="With --captions: rrf or weighted.")] = "rrf",
    weights: Annotated[
        str | None, typer.Option(help="With --captions: e.g. clip=1,caption=1,keyword=0.5.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Search a collection by text, by an example picture, or by a stored item."""
    given = [x is not None for x in (text, image, like)]
    if sum(given) != 1:
        raise typer.BadParameter("give exactly one of TEXT, --image or --like")
    if captions and text is None:
        raise typer.BadParameter("--captions searches by TEXT")
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        if captions and text is not None:
            pairs = [p.partition("=") for p in (weights or "").split(",") if p.strip()]
            try:
                w = {name.strip(): float(value) for name, _, value in pairs}
            except ValueError as exc:
                raise typer.BadParameter(f"--weights: {exc}") from exc
            found = atlas.search_captions(text, k=k, weights=w, fusion=fusion)
            if json_out:
                print_json([h.as_dict() for h in found])
                return
            for rank, h in enumerate(found, 1):
                where = h.hit.path or h.hit.uri
                line = f"{rank:>3}  {h.score:.4f}  {h.hit.id:>6}  {h.caption or '-'}  ({where})"
                console.print(line, markup=False)
            if not found:
                console.print("no results")
            return
        if text is not None:
            hits = atlas.search_text(text, k=k)
        elif image is not None:
            hits = atlas.search_image(image, k=k)
        else:
            assert like is not None
            hits = atlas.search_item(like, k=k)
    if json_out:
        print_json([h.as_dict() for h in hits])
    else:
        print_hits(hits)


@app.command()
def info(ctx: typer.Context, collection: Collection = "default", json_out: Json = False) -> None:
    """Counts, embedder and rejection reasons of a collection."""
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        stats = atlas.stats()
    if json_out:
        print_json(stats.as_dict())
        return
    console.print(f"[bold]{stats.name}[/bold]  ({stats.database})")
    console.print(f"  embedder: {stats.embedder_id or '-'}  dim: {stats.dim or '-'}")
    console.print(f"  stored: {stats.stored}  vectors: {stats.vectors}  rejected: {stats.rejected}")
    for reason, n in stats.reasons.items():
        console.print(f"    {reason}: {n}")


@app.command("collections")
def collections_(ctx: typer.Context, json_out: Json = False) -> None:
    """List the collections."""
    names = list_collections(_settings(ctx))
    if json_out:
        print_json(names)
    else:
        for name in names:
            console.print(name)


@app.command("import-embeddings")
def import_embeddings(
    ctx: typer.Context,
    vectors: Annotated[Path, typer.Argument(help=".npy matrix or .parquet file.")],
    ids: Annotated[
        Path | None, typer.Option(help="Ids for a .npy matrix (.txt/.json/.npy).")
    ] = None,
    collection: Collection = "default",
    model: Annotated[
        str | None, typer.Option(help="Embedder that produced the vectors (used for text search).")
    ] = None,
    match: Annotated[
        str, typer.Option(help="Match ids to item 'key' (source key) or 'id'.")
    ] = "key",
    id_column: Annotated[str, typer.Option(help="Parquet id column.")] = "id",
    vector_column: Annotated[str, typer.Option(help="Parquet vector column.")] = "vector",
    json_out: Json = False,
) -> None:
    """Attach vectors computed elsewhere to items already in a collection."""
    if match not in ("key", "id"):
        raise typer.BadParameter("--match must be 'key' or 'id'")
    how: Literal["key", "id"] = "key" if match == "key" else "id"
    with (
        Atlas.open(collection, settings=_settings(ctx), create=False) as atlas,
        progress_bar(not json_out) as progress,
    ):
        report = atlas.import_embeddings(
            vectors,
            ids,
            embedder_id=model,
            match=how,
            id_column=id_column,
            vector_column=vector_column,
            progress=progress,
        )
    if json_out:
        print_json({"imported": report.imported, "dim": report.dim, "embedder": report.embedder_id})
    else:
        console.print(f"imported {report.imported} vectors ({report.dim}-d, {report.embedder_id})")


@app.command()
def duplicates(
    ctx: typer.Context,
    collection: Collection = "default",
    phash_distance: Annotated[
        int,
        typer.Option(min=-1, max=64, help="Max pHash Hamming distance (-1: pHash test off)."),
    ] = DEFAULT_PHASH_DISTANCE,
    cosine: Annotated[
        float,
        typer.Option(min=-1.0, max=2.0, help="Min embedding cosine (above 1: cosine test off)."),
    ] = DEFAULT_COSINE,
    apply: Annotated[
        bool, typer.Option("--apply", help="Reject all but the kept item of each group.")
    ] = False,
    json_out: Json = False,
) -> None:
    """Find near-duplicate pictures (pHash or embedding); --apply rejects the extra copies."""
    thresholds: dict[str, Any] = {
        "phash_distance": None if phash_distance < 0 else phash_distance,
        "cosine": None if cosine > 1 else cosine,
    }
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        if apply:
            report = atlas.mark_duplicates(**thresholds)
        else:
            report = atlas.find_duplicates(**thresholds)
    if json_out:
        print_json({"collection": collection, **report.as_dict()})
        return
    _print_duplicates(report.as_dict())


def _print_duplicates(report: dict[str, Any]) -> None:
    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    verb = "rejected" if report["applied"] else "would reject"
    console.print(
        f"{report['compared']} items, {len(report['groups'])} groups of near-duplicates: "
        f"{verb} {report['marked'] if report['applied'] else report['duplicates']}"
    )
    for group in report["groups"]:
        console.print(f"keep {group['kept']}  {group['kept_uri']}", markup=False)
        for other in group["others"]:
            console.print(
                f"  {other['id']}  pHash {fmt(other['phash_distance'], 'd')}  "
                f"cosine {fmt(other['cosine'], '.4f')}  {other['uri']}",
                markup=False,
            )


@app.command()
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Output file: .csv or .parquet.")],
    collection: Collection = "default",
    status: Annotated[
        str | None, typer.Option(help="Only items of this status: ok or rejected.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Export every item's metadata (and rejection reasons) to CSV or Parquet."""
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        report = atlas.export_metadata(path, status=status)
    if json_out:
        print_json({"collection": collection, **report.as_dict()})
    else:
        console.print(f"wrote {report.rows} items to {report.path} ({report.format})", markup=False)


# command modules: each registers its commands on import
from clipatlas.cli import caption as _caption_commands  # noqa: E402, F401
from clipatlas.cli import cluster as _cluster_commands  # noqa: E402, F401
from clipatlas.cli import dataset as _dataset_commands  # noqa: E402, F401
from clipatlas.cli import embed as _embed_commands  # noqa: E402, F401
from clipatlas.cli import ingest as _ingest_commands  # noqa: E402, F401
from clipatlas.cli import jobs as _jobs_commands  # noqa: E402, F401
from clipatlas.cli import match as _match_commands  # noqa: E402, F401
from clipatlas.cli import style as _style_commands  # noqa: E402, F401
from clipatlas.cli import web as _web_commands  # noqa: E402, F401


def main() -> None:
    """Entry point: usage errors exit 2 (typer), clipatlas errors exit 1 with one line."""
    # Before torch loads: idle OpenMP threads sleep instead of spinning, so the low-priority
    # decode workers get the cores between model operations (measured in bench/RESULTS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except ClipatlasError as exc:
        err_console.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
