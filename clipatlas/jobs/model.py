"""What a job is: its status values and the record read back from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["ACTIVE", "FINISHED", "RESUMABLE", "Job", "JobStatus", "LogLine"]


class JobStatus(str, Enum):
    """Values are stable: they are written to the database."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its worker vanished (stale heartbeat); resumable


ACTIVE = frozenset({JobStatus.QUEUED.value, JobStatus.RUNNING.value})
FINISHED = frozenset(
    {
        s.value
        for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)
    }
)
RESUMABLE = frozenset(
    {s.value for s in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)}
)


@dataclass(frozen=True)
class LogLine:
    at: float
    level: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "level": self.level, "message": self.message}


@dataclass(frozen=True)
class Job:
    id: int
    collection: str
    kind: str
    params: dict[str, Any]
    status: str
    stage: str | None
    done: int
    total: int | None
    counts: dict[str, int]
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    worker_id: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    logs: list[LogLine] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Unique across collections: ``collection/id`` (ids are per database in SQLite mode)."""
        return f"{self.collection}/{self.id}"

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return 1.0 if self.status == JobStatus.DONE.value else None
        return min(1.0, self.done / self.total)

    def as_dict(self, *, logs: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "key": self.key,
            "collection": self.collection,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "fraction": self.fraction,
            "counts": self.counts,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "worker_id": self.worker_id,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "heartbeat_at": self.heartbeat_at,
        }
        if logs:
            out["logs"] = [line.as_dict() for line in self.logs]
        return out
