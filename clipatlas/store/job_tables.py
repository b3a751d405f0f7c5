"""Tables of durable jobs (migration 7): one row per job with progress, heartbeat and log.

A job row is the whole truth about a job: what to do (``kind`` + ``params``), where it stands
(``status``, progress counters, ``heartbeat_at``), who runs it (``worker_id``, ``attempts``) and
how it ended (``result`` or ``error``). ``job_logs`` keeps a bounded, redacted log per job.
Jobs are addressed by id within their database; ``collection`` names the collection they act on.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from clipatlas.store.metadata import metadata

__all__ = ["TABLES", "job_logs", "jobs", "metadata"]

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("collection", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("params", JSON, nullable=False),
    # queued | running | done | failed | cancelled | interrupted
    Column("status", String(20), nullable=False),
    Column("stage", String(50)),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer),
    Column("counts", JSON, nullable=False, default=dict),
    Column("message", Text),
    Column("result", JSON),
    Column("error", Text),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("worker_id", String(100)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
)
Index("ix_jobs_status", jobs.c.status, jobs.c.id)
Index("ix_jobs_collection", jobs.c.collection, jobs.c.id)

job_logs = Table(
    "job_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
)
Index("ix_job_logs_job", job_logs.c.job_id, job_logs.c.id)

TABLES: list[Table] = [jobs, job_logs]
