"""Durable background jobs: queued/running/done/failed/cancelled/interrupted, with progress,
heartbeat, a bounded redacted log, cancel and resume. See docs/jobs.md.

    board = JobBoard(settings, default_kinds())
    job = board.submit("photos", "ingest", {"source": "folder", "options": {"root": "~/Pics"}})
    Worker(settings).run()          # or: clipatlas worker
"""

from clipatlas.jobs.board import JobBoard
from clipatlas.jobs.kinds import JobContext, JobKind, JobKinds, default_kinds
from clipatlas.jobs.model import Job, JobStatus, LogLine
from clipatlas.jobs.queue import JobQueue
from clipatlas.jobs.worker import Worker, WorkerProcesses

__all__ = [
    "Job",
    "JobBoard",
    "JobContext",
    "JobKind",
    "JobKinds",
    "JobQueue",
    "JobStatus",
    "LogLine",
    "Worker",
    "WorkerProcesses",
    "default_kinds",
]
