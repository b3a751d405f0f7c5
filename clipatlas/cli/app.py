"""The ``clipatlas`` command line: parses, calls :class:`clipatlas.Atlas`, prints.

This module only assembles it: the app, its global options and the entry point; the commands
live in the command modules beside it (shared option types in :mod:`clipatlas.cli.common`,
output helpers in :mod:`clipatlas.cli.render`).

Exit codes: 0 success, 1 a clipatlas error (one line on stderr), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clipatlas.cli import (
    caption,
    cluster,
    collection,
    dataset,
    embed,
    ingest,
    jobs,
    match,
    style,
    web,
)
from clipatlas.cli.render import err_console
from clipatlas.errors import ClipatlasError
from clipatlas.settings import load_settings

app = typer.Typer(
    name="clipatlas",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Search, cluster, map, clean and caption image collections with CLIP embeddings.",
)


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


# Each command module holds its commands in its own ``commands`` Typer; they are merged into
# ``app`` in this order, which is the order ``clipatlas --help`` lists them in.
for _module in (collection, caption, cluster, dataset, ingest, embed, jobs, match, style, web):
    app.add_typer(_module.commands)
app.add_typer(jobs.jobs_app, name="jobs")


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
