"""``clipatlas search``, ``info``, ``collections``, ``import-embeddings``, ``duplicates`` and
``export``: searching, describing, listing, filling, cleaning and exporting collections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from clipatlas.analysis.duplicates import DEFAULT_COSINE, DEFAULT_PHASH_DISTANCE
from clipatlas.atlas import Atlas, list_collections
from clipatlas.cli.common import Collection, Json, settings_of
from clipatlas.cli.render import console, print_hits, print_json, progress_bar
from clipatlas.wording import counted

commands = typer.Typer()


@commands.command()
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
    fusion: Annotated[
        str, typer.Option(help="With --captions: weighted (normalised scores) or rrf.")
    ] = "weighted",
    exact_first: Annotated[
        bool,
        typer.Option(
            "--exact-first/--no-exact-first",
            help="With --captions: items whose caption holds every query word first.",
        ),
    ] = True,
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
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        if captions and text is not None:
            pairs = [p.partition("=") for p in (weights or "").split(",") if p.strip()]
            try:
                w = {name.strip(): float(value) for name, _, value in pairs}
            except ValueError as exc:
                raise typer.BadParameter(f"--weights: {exc}") from exc
            found = atlas.search_captions(
                text, k=k, weights=w, fusion=fusion, exact_first=exact_first
            )
            if json_out:
                print_json([h.as_dict() for h in found])
                return
            for rank, h in enumerate(found, 1):
                where = h.hit.path or h.hit.uri
                ranks = " ".join(f"{n}={'-' if r is None else r}" for n, r in h.ranks.items())
                mark = "=" if h.exact else " "
                line = (
                    f"{rank:>3}{mark} {h.score:.4f}  {h.hit.id:>6}  {h.caption or '-'}  "
                    f"[{ranks}]  ({where})"
                )
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


@commands.command()
def info(ctx: typer.Context, collection: Collection = "default", json_out: Json = False) -> None:
    """Counts, embedder and rejection reasons of a collection."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        stats = atlas.stats()
    if json_out:
        print_json(stats.as_dict())
        return
    console.print(f"[bold]{stats.name}[/bold]  ({stats.database})")
    console.print(f"  embedder: {stats.embedder_id or '-'}  dim: {stats.dim or '-'}")
    console.print(f"  stored: {stats.stored}  vectors: {stats.vectors}  rejected: {stats.rejected}")
    for reason, n in stats.reasons.items():
        console.print(f"    {reason}: {n}")


@commands.command("collections")
def collections_(ctx: typer.Context, json_out: Json = False) -> None:
    """List the collections."""
    names = list_collections(settings_of(ctx))
    if json_out:
        print_json(names)
    else:
        for name in names:
            console.print(name)


@commands.command("import-embeddings")
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
        Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas,
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
        console.print(
            f"imported {counted(report.imported, 'vector')} ({report.dim}-d, {report.embedder_id})"
        )


@commands.command()
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
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
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
        f"{counted(report['compared'], 'item')}, {counted(len(report['groups']), 'group')} of "
        "near-duplicates: "
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


@commands.command()
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
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        report = atlas.export_metadata(path, status=status)
    if json_out:
        print_json({"collection": collection, **report.as_dict()})
    else:
        console.print(
            f"wrote {counted(report.rows, 'item')} to {report.path} ({report.format})", markup=False
        )
