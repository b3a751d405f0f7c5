"""``clipatlas ingest`` and ``clipatlas sync``: one command for every source.

``ingest TARGET``: a folder, a URL-list file (.txt/.csv/.jsonl), or the name of a registered
network source (``civitai``, ``naver``) followed by that source's options. Only the options a
user gives are passed on, so each source sees just what applies to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, settings_of
from clipatlas.cli.render import print_ingest_report, progress_bar
from clipatlas.errors import ConfigError

commands = typer.Typer()

Opt = typer.Option
PageSize = Annotated[
    int | None,
    Opt(min=1, max=200, help="CivitAI API page size (1-100 for models, 1-200 for images)."),
]


def _source_options(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v not in (None, [], ())}


def _run(
    ctx: typer.Context,
    target: str,
    collection: str,
    model: str | None,
    embed: bool,
    workers: int | None,
    batch_size: int | None,
    allow_host: list[str] | None,
    json_out: bool,
    options: dict[str, Any],
    *,
    incremental: bool = False,
) -> None:
    settings = settings_of(ctx)
    updates: dict[str, Any] = {
        k: v for k, v in {"workers": workers, "batch_size": batch_size}.items() if v is not None
    }
    if allow_host:
        updates["allow_hosts"] = [*settings.allow_hosts, *allow_host]
    settings = settings.model_copy(update=updates)
    path = Path(target).expanduser()
    with (
        Atlas.open(collection, settings=settings, model=model) as atlas,
        progress_bar(not json_out) as progress,
    ):
        if path.is_dir():
            kind, options = "folder", {"root": path, **options}
        elif path.is_file():
            kind, options = "urls", {"path": path, **options}
        elif target in atlas.registry.sources:
            kind = target
        else:
            raise ConfigError(
                f"{target!r} is not a folder, a URL-list file or a source "
                f"({', '.join(sorted(atlas.registry.sources))})"
            )
        if incremental:
            options["known"] = set(atlas.store.known_keys(atlas.collection, kind))
        try:
            source = atlas.source(kind, **options)
        except TypeError as exc:  # an option that this source does not take
            raise ConfigError(f"source {kind!r}: {exc}") from None
        report = atlas.ingest(source, embed=embed, progress=progress)
    print_ingest_report(collection, report, target, json_out)


@commands.command()
def ingest(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Folder, URL-list file, or civitai / naver.")],
    collection: Collection = "default",
    model: Annotated[str | None, Opt(help="Embedder, e.g. hf:/path/to/local/model.")] = None,
    embed: Annotated[bool, Opt(help="Embed pictures (--no-embed: store only).")] = True,
    workers: Annotated[int | None, Opt(help="Decode processes (0 = auto).")] = None,
    batch_size: Annotated[
        int | None, Opt(min=0, help="Pictures per model batch (0 = automatic).")
    ] = None,
    allow_host: Annotated[list[str] | None, Opt(help="Allow a non-public host.")] = None,
    limit: Annotated[int | None, Opt(help="At most this many pictures (network).")] = None,
    query: Annotated[
        str | None, Opt("--query", "-q", help="Search words (civitai, naver).")
    ] = None,
    types: Annotated[list[str] | None, Opt(help="CivitAI model types, e.g. LORA.")] = None,
    sort: Annotated[str | None, Opt(help="Sort order of the source.")] = None,
    period: Annotated[str | None, Opt(help="CivitAI period (AllTime, Month, ...).")] = None,
    nsfw: Annotated[bool | None, Opt("--nsfw/--sfw", help="CivitAI NSFW filter.")] = None,
    tag: Annotated[str | None, Opt(help="CivitAI tag.")] = None,
    username: Annotated[str | None, Opt(help="CivitAI creator.")] = None,
    base_model: Annotated[list[str] | None, Opt(help="CivitAI base model.")] = None,
    mode: Annotated[str | None, Opt(help="CivitAI: models, model, version, images.")] = None,
    model_id: Annotated[int | None, Opt(help="CivitAI model id.")] = None,
    version_id: Annotated[int | None, Opt(help="CivitAI model version id.")] = None,
    images_per_version: Annotated[int | None, Opt(help="CivitAI previews per version.")] = None,
    image_width: Annotated[int | None, Opt(help="CivitAI preview width (px).")] = None,
    page_size: PageSize = None,
    size: Annotated[str | None, Opt(help="Naver size filter: all, large, medium, small.")] = None,
    url_column: Annotated[str | None, Opt(help="URL column of a CSV/JSONL list.")] = None,
    json_out: Json = False,
) -> None:
    """Ingest pictures: decode safely, drop duplicates, embed, store."""
    options = _source_options(
        limit=limit, query=query, types=types, sort=sort, period=period, nsfw=nsfw, tag=tag,
        username=username, base_models=base_model, mode=mode, model_id=model_id,
        version_id=version_id, images_per_version=images_per_version, image_width=image_width,
        page_limit=page_size, size_filter=size, url_column=url_column,
    )  # fmt: skip
    _run(ctx, target, collection, model, embed, workers, batch_size, allow_host, json_out, options)


@commands.command()
def sync(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A network source: civitai.")],
    collection: Collection = "default",
    model: Annotated[str | None, Opt(help="Embedder for a new collection.")] = None,
    allow_host: Annotated[list[str] | None, Opt(help="Allow a non-public host.")] = None,
    limit: Annotated[int | None, Opt(help="At most this many new pictures.")] = None,
    types: Annotated[list[str] | None, Opt(help="CivitAI model types, e.g. LORA.")] = None,
    query: Annotated[str | None, Opt("--query", "-q", help="Search words.")] = None,
    tag: Annotated[str | None, Opt(help="CivitAI tag.")] = None,
    username: Annotated[str | None, Opt(help="CivitAI creator.")] = None,
    base_model: Annotated[list[str] | None, Opt(help="CivitAI base model.")] = None,
    page_size: PageSize = None,
    json_out: Json = False,
) -> None:
    """Fetch only what is new since the last run (newest first; stops at known pictures)."""
    options = _source_options(
        limit=limit, types=types, query=query, tag=tag, username=username,
        base_models=base_model, sort="Newest", page_limit=page_size,
    )  # fmt: skip
    _run(ctx, source, collection, model, True, None, None, allow_host, json_out, options,
         incremental=True)  # fmt: skip
