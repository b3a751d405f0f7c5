"""``clipatlas classify``, ``recommend``, ``name-clusters``, ``rename-cluster`` and ``assign``:
reading a stored clustering run (the newest unless ``--run`` names one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, settings_of
from clipatlas.cli.render import console, print_json
from clipatlas.wording import counted

commands = typer.Typer()

Opt = typer.Option
RunOpt = Annotated[int | None, Opt("--run", "-r", help="Run id (default: the newest run).")]


def _name(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


@commands.command()
def classify(
    ctx: typer.Context,
    image: Annotated[Path | None, typer.Argument(help="A picture file.")] = None,
    url: Annotated[str | None, Opt("--url", help="A picture URL (fetched safely).")] = None,
    civitai_model: Annotated[
        int | None, Opt("--civitai-model", help="A CivitAI model id: its previews, averaged.")
    ] = None,
    run_id: RunOpt = None,
    collection: Collection = "default",
    images: Annotated[int, Opt(min=1, help="Preview images read of a CivitAI model.")] = 8,
    top: Annotated[int, Opt(min=1, help="Nearest clusters shown.")] = 3,
    json_out: Json = False,
) -> None:
    """Which cluster of a run a picture, URL or CivitAI model belongs to (or "unknown")."""
    if sum(x is not None for x in (image, url, civitai_model)) != 1:
        raise typer.BadParameter("give exactly one of IMAGE, --url or --civitai-model")
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        answer = atlas.classify(
            run_id, image=image, url=url, civitai_model=civitai_model, images=images, top=top
        )
    if json_out:
        print_json(answer.as_dict())
        return
    data = answer.as_dict()
    verdict = "unknown" if answer.unknown else f"cluster {answer.label} ({_name(data['name'])})"
    console.print(f"run {answer.run_id}: {verdict}", markup=False)
    table = Table("label", "name", "cosine", "threshold", "inside", "size", box=None)
    for s in answer.scores:
        table.add_row(
            str(s.label), _name(s.name), f"{s.cosine:.4f}", f"{s.threshold:.4f}",
            "yes" if s.within else "no", str(s.size),
        )  # fmt: skip
    console.print(table)
    console.print(answer.explanation, markup=False)
    for failed in answer.subject.get("failed_inputs", []):
        console.print(f"  skipped {failed['input']}: {failed['reason']}", markup=False)


@commands.command()
def recommend(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What you want to make, in words.")],
    run_id: RunOpt = None,
    collection: Collection = "default",
    top: Annotated[int, Opt(min=1, help="Clusters recommended.")] = 3,
    items: Annotated[int, Opt(min=1, help="Items (and models) shown per cluster.")] = 5,
    json_out: Json = False,
) -> None:
    """Style clusters of a run that fit a text prompt, with their best items and models."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        found = atlas.recommend(prompt, run_id, top=top, items=items)
    if json_out:
        print_json(found)
        return
    for c in found["clusters"]:
        console.print(
            f"{c['rank']}. cluster {c['label']} {_name(c['name'])!s}  cosine {c['cosine']:.4f}  "
            f"({counted(c['size'], 'item')})",
            markup=False,
        )
        for m in c["models"]:
            console.print(
                f"     model {m['model_id']} {_name(m['model_name'])} "
                f"({counted(m['images'], 'image')}, best {m['cosine']:.4f})",
                markup=False,
            )
        for i in c["items"]:
            console.print(f"     item {i['id']} {i['cosine']:.4f} {i['uri']}", markup=False)


@commands.command("name-clusters")
def name_clusters(
    ctx: typer.Context,
    run_id: RunOpt = None,
    collection: Collection = "default",
    vocabulary: Annotated[
        Path | None, Opt(help="Style words, one per line (default: the built-in list).")
    ] = None,
    force: Annotated[bool, Opt(help="Replace names users gave too.")] = False,
    json_out: Json = False,
) -> None:
    """Name a run's clusters from zero-shot style words and the members' distinctive tags."""
    words = None
    if vocabulary is not None:
        try:
            lines = vocabulary.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise typer.BadParameter(f"{vocabulary}: {exc.strerror or exc}") from None
        words = [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]
        if not words:
            raise typer.BadParameter(f"{vocabulary}: no words")
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        named = atlas.name_clusters(run_id, vocabulary=words, force=force)
    if json_out:
        print_json(named)
        return
    table = Table("label", "name", "style words", "tags", box=None)
    for n in named:
        table.add_row(
            str(n["label"]),
            n["name"] + (" (kept: user's name)" if n["kept"] else ""),
            ", ".join(t["term"] for t in n["terms"][:3]),
            ", ".join(t["tag"] for t in n["tags"][:3]),
        )
    console.print(table)


@commands.command("rename-cluster")
def rename_cluster(
    ctx: typer.Context,
    label: Annotated[int, typer.Argument(help="Cluster label.")],
    name: Annotated[str, typer.Argument(help="The new name.")],
    run_id: RunOpt = None,
    collection: Collection = "default",
    json_out: Json = False,
) -> None:
    """Give a cluster your own name (automatic naming keeps it)."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        run = atlas.run(run_id)
        done = atlas.rename_cluster(run.id, label, name)
    if json_out:
        print_json(done)
    else:
        console.print(f"run {done['run']}: cluster {label} is now {done['name']!r}", markup=False)


@commands.command()
def assign(
    ctx: typer.Context,
    run_id: RunOpt = None,
    collection: Collection = "default",
    json_out: Json = False,
) -> None:
    """Place items stored after a run on its clusters (no refit) and advise on re-clustering."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        report = atlas.assign_new(run_id)
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"run {report.run_id}: {report.assigned} newly assigned, {report.total} later items, "
        f"{report.unknown} unknown",
        markup=False,
    )
    console.print(report.advice, markup=False)
