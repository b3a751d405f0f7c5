"""Progress events from the core. The CLI renders them with rich; the web app streams them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ProgressCallback", "ProgressEvent", "emit"]


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "scan", "ingest", "import", ...
    done: int
    total: int | None
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def emit(callback: ProgressCallback | None, event: ProgressEvent) -> None:
    if callback is not None:
        callback(event)
