"""``clipatlas jobs`` (list, show, cancel, resume, clear) and ``clipatlas worker``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from clipatlas.cli.common import Json, settings_of
from clipatlas.cli.render import console, print_json
from clipatlas.errors import ConfigError
from clipatlas.jobs import Job, JobBoard, Worker, default_kinds
from clipatlas.jobs.worker import DEFAULT_STALE_AFTER

commands = typer.Typer()  # ``clipatlas worker``
# ``clipatlas jobs ...`` (cli/app.py registers it under that name)
jobs_app = typer.Typer(no_args_is_help=True, help="Background jobs: list, cancel, resume, clear.")

Key = Annotated[str, typer.Argument(help="Job key COLLECTION/ID (see `clipatlas jobs list`).")]


def _board(ctx: typer.Context) -> JobBoard:
    return JobBoard(settings_of(ctx), default_kinds())


def _split(key: str) -> tuple[str, int]:
    collection, _, number = key.rpartition("/")
    if not collection or not number.isdigit():
        raise ConfigError(f"job key {key!r}: expected COLLECTION/ID, e.g. photos/3")
    return collection, int(number)


def _progress(job: Job) -> str:
    if job.total:
        return f"{job.done}/{job.total}"
    return str(job.done) if job.done else "-"


def _print(job: Job) -> None:
    console.print(
        f"{job.key}  {job.kind}  {job.status}  {job.stage or ''} {_progress(job)}", markup=False
    )
    if job.error:
        console.print(f"  error: {job.error}", markup=False)


@jobs_app.command("list")
def list_(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    status: Annotated[str | None, typer.Option(help="Only jobs of this status.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json_out: Json = False,
) -> None:
    """Jobs, newest first."""
    board = _board(ctx)
    try:
        found = board.list(collection=collection, status=status, limit=limit)
    finally:
        board.close()
    if json_out:
        print_json([j.as_dict() for j in found])
        return
    if not found:
        console.print("no jobs")
        return
    table = Table("job", "kind", "status", "stage", "progress", "error", box=None)
    for j in found:
        table.add_row(j.key, j.kind, j.status, j.stage or "-", _progress(j), (j.error or "")[:60])
    console.print(table)


@jobs_app.command()
def show(ctx: typer.Context, key: Key, json_out: Json = False) -> None:
    """One job with its log."""
    collection, job_id = _split(key)
    board = _board(ctx)
    try:
        job = board.get(collection, job_id, logs=True)
    finally:
        board.close()
    if json_out:
        print_json(job.as_dict(logs=True))
        return
    _print(job)
    for line in job.logs:
        console.print(f"  [{line.level}] {line.message}", markup=False)


def _move(
    ctx: typer.Context, key: str, json_out: bool, action: Callable[[JobBoard, str, int], Job]
) -> None:
    collection, job_id = _split(key)
    board = _board(ctx)
    try:
        job = action(board, collection, job_id)
    finally:
        board.close()
    print_json(job.as_dict()) if json_out else _print(job)


@jobs_app.command()
def cancel(ctx: typer.Context, key: Key, json_out: Json = False) -> None:
    """Cancel a queued job, or ask a running one to stop between items."""
    _move(ctx, key, json_out, JobBoard.cancel)


@jobs_app.command()
def resume(ctx: typer.Context, key: Key, json_out: Json = False) -> None:
    """Queue a failed, cancelled or interrupted job again (it redoes only what is missing)."""
    _move(ctx, key, json_out, JobBoard.resume)


@jobs_app.command()
def clear(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    json_out: Json = False,
) -> None:
    """Delete finished jobs (done, failed, cancelled, interrupted) and their logs."""
    board = _board(ctx)
    try:
        removed = board.clear(collection)
    finally:
        board.close()
    if json_out:
        print_json({"removed": removed})
    else:
        console.print(f"removed {removed} finished jobs")


@commands.command()
def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run queued jobs, then exit.")] = False,
    stale_after: Annotated[
        float, typer.Option(help="Seconds without heartbeat before a job is interrupted.")
    ] = DEFAULT_STALE_AFTER,
    json_out: Json = False,
) -> None:
    """Run background jobs in the foreground (``clipatlas serve`` starts its own workers)."""
    runner = Worker(settings_of(ctx), stale_after=stale_after)
    try:
        if once:
            runner.board.recover_stale(stale_after)
            while runner.run_once():
                pass
            runner.board.close()
        else:
            runner.run()
    except KeyboardInterrupt:
        runner.stop()
    if json_out:
        print_json([{"job": key, "status": status} for key, status in runner.ran])
    else:
        for key, status in runner.ran:
            console.print(f"{key}: {status}", markup=False)
