"""Rich rendering for the CLI: progress bars, tables, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from clipatlas.analysis.search import SearchHit
from clipatlas.progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from clipatlas.pipeline.ingest import IngestReport

__all__ = [
    "console",
    "err_console",
    "print_hits",
    "print_ingest_report",
    "print_json",
    "progress_bar",
]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    console.out(json.dumps(data, ensure_ascii=False, indent=2, default=str), highlight=False)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A progress callback drawing one rich bar per stage (on stderr, so --json stays clean)."""
    if not enabled:
        yield lambda event: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def update(event: ProgressEvent) -> None:
            counts = " ".join(f"{k}={v}" for k, v in event.counts.items())
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=event.total, counts=counts)
            bar.update(tasks[event.stage], completed=event.done, total=event.total, counts=counts)

        yield update


def print_hits(hits: Sequence[SearchHit]) -> None:
    if not hits:
        console.print("no results (is the collection empty?)")
        return
    table = Table("rank", "score", "id", "item", box=None, pad_edge=False)
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), f"{hit.score:.4f}", str(hit.id), hit.path or hit.uri)
    console.print(table)


def print_ingest_report(collection: str, report: IngestReport, target: str, json_out: bool) -> None:
    """What an ingest (or embed) run stored, rejected by reason and skipped; or its JSON."""
    if json_out:
        print_json({"collection": collection, **report.as_dict()})
        return
    console.print(
        f"{collection}: stored {report.stored}, rejected {report.rejected}, "
        f"unchanged {report.skipped} ({report.seconds:.1f}s)"
    )
    for reason, n in sorted(report.reasons.items()):
        console.print(f"  {reason}: {n}")
    if report.outside_root:
        console.print(f"  skipped {report.outside_root} links pointing outside {target}")
    if report.arrivals:
        console.print(f"  {report.arrivals['advice']}", markup=False)
