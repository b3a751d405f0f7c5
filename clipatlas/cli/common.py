"""What the ``clipatlas`` subcommand modules share: option types and the run's settings.

It sits below every command module and below :mod:`clipatlas.cli.app`, which only assembles
them, so no command module imports the app that registers it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from clipatlas.settings import Settings

__all__ = ["Collection", "Json", "NewModel", "TextModel", "settings_of"]

Collection = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
NewModel = Annotated[str | None, typer.Option(help="CLIP embedder of a new collection.")]
TextModel = Annotated[
    str | None,
    typer.Option(
        help="Text model (e.g. sentence-transformers:/path/to/model); later commands use the "
        "one the stored vectors come from."
    ),
]


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the ``clipatlas`` callback built from the global options and environment."""
    settings: Settings = ctx.obj
    return settings
