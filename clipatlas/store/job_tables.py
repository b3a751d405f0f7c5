"""Tables of durable jobs (migration 7): one row per job with progress, heartbeat and log."""

from __future__ import annotations

from sqlalchemy import Table

from clipatlas.store.schema import metadata

__all__ = ["TABLES", "metadata"]

TABLES: list[Table] = []
