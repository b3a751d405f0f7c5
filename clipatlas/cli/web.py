"""``clipatlas serve``: the web app (and its job workers) on 127.0.0.1 by default."""

from __future__ import annotations

from typing import Annotated

import typer

from clipatlas.cli.common import settings_of
from clipatlas.cli.render import err_console
from clipatlas.errors import ConfigError

commands = typer.Typer()

Opt = typer.Option


@commands.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, Opt(help="Bind address; anything but loopback needs --token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, Opt(min=1, max=65535)] = 8000,
    token: Annotated[
        str | None,
        Opt(
            envvar="CLIPATLAS_WEB_TOKEN",
            help="Access token (header X-Clipatlas-Token).",
            show_default=False,
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None, Opt(help="Extra Host header values to accept (e.g. a DNS name).")
    ] = None,
    workers: Annotated[int, Opt(min=0, help="Job worker processes to start (0: none).")] = 1,
    upload_mb: Annotated[float, Opt(min=0.1, help="Largest request body (MB).")] = 20.0,
) -> None:
    """Start the web app: collections, gallery, search, atlas maps and background jobs."""
    from clipatlas.web.config import WebConfig

    try:
        from clipatlas.web.server import run_server
    except ImportError as exc:  # the optional server extra is missing
        raise ConfigError(f"the web app needs: pip install 'clipatlas[server]' ({exc})") from None

    config = WebConfig.build(
        host=host,
        port=port,
        token=token,
        allowed_hosts=allow_host or [],
        workers=workers,
        max_body=int(upload_mb * 1024 * 1024),
    )
    err_console.print(f"clipatlas web on http://{config.url_host}:{port}/  (Ctrl+C to stop)")
    settings = settings_of(ctx)
    if "index_staleness" not in settings.model_fields_set:
        # searches during an ingest job answer from an index at most 30 s old (rebuilt in the
        # background) instead of waiting for a rebuild after every batch
        settings = settings.model_copy(update={"index_staleness": 30.0})
    run_server(settings, config)
