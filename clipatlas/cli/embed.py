"""``clipatlas embed``: ingest a folder with decoding and embedding spread over Ray.

clipatlas embed /shared/pictures -c photos --ray                 # a local Ray
clipatlas embed /shared/pictures -c photos --address ray://head:10001 --actors 4 --gpus 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, settings_of
from clipatlas.cli.render import print_ingest_report, progress_bar
from clipatlas.errors import ConfigError

commands = typer.Typer()

Opt = typer.Option


@commands.command()
def embed(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder of pictures (on a path all nodes see).")],
    ray: Annotated[
        bool, Opt("--ray", help="Decode and embed over Ray (local unless --address).")
    ] = False,
    address: Annotated[
        str | None, Opt(help="Ray cluster address (auto, ray://head:10001); implies --ray.")
    ] = None,
    collection: Collection = "default",
    model: Annotated[str | None, Opt(help="Embedder for a new collection.")] = None,
    batch_size: Annotated[
        int | None, Opt(min=0, help="Pictures per model batch (0 = automatic).")
    ] = None,
    actors: Annotated[int, Opt(min=1, help="Model replicas (Ray actors).")] = 1,
    gpus: Annotated[float, Opt(min=0, help="GPUs per model replica.")] = 0.0,
    json_out: Json = False,
) -> None:
    """Embed a folder into a collection (with --ray: over a Ray cluster), idempotently."""
    settings = settings_of(ctx)
    if batch_size is not None:
        settings = settings.model_copy(update={"batch_size": batch_size})
    if not folder.expanduser().is_dir():
        raise ConfigError(f"{folder} is not a folder")
    with (
        Atlas.open(collection, settings=settings, model=model) as atlas,
        progress_bar(not json_out) as progress,
    ):
        if not (ray or address):
            report = atlas.ingest(folder.expanduser(), progress=progress)
        else:
            from clipatlas.distributed import embed_with_ray

            report = embed_with_ray(
                atlas,
                folder.expanduser(),
                address=address,
                actors=actors,
                gpus_per_actor=gpus,
                progress=progress,
            )
    print_ingest_report(collection, report, str(folder), json_out)
