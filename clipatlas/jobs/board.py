"""Where jobs live: the job queue of each collection's database, seen as one board.

With a server database (PostgreSQL) every collection shares one database, hence one queue.
In SQLite mode each collection is its own file and keeps its own jobs (its history moves,
backs up and is deleted with it); the board opens each collection's queue on demand and a
worker polls them all. Job keys are ``collection/id``.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from clipatlas.errors import ConfigError, StoreError
from clipatlas.jobs.kinds import JobKinds
from clipatlas.jobs.model import Job
from clipatlas.jobs.queue import JobQueue
from clipatlas.settings import Settings
from clipatlas.store.sql import SqlStore, sqlite_url

__all__ = ["JobBoard", "check_collection_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the rule of Atlas.open
_SHARED = "*"


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"collection name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def _open_store(url: str, vector_dtype: str, attempts: int = 6) -> SqlStore:
    """Open (and migrate) a database; retried, because another process creating the same new
    SQLite file at the same moment makes the loser's schema check fail once."""
    for attempt in range(attempts):
        try:
            return SqlStore(url, vector_dtype=vector_dtype)
        except StoreError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


class JobBoard:
    """Every job queue under one :class:`Settings`; thread-safe."""

    def __init__(self, settings: Settings, kinds: JobKinds) -> None:
        self.settings, self.kinds = settings, kinds
        self._queues: dict[str, JobQueue] = {}
        self._lock = threading.Lock()

    # -- queues ------------------------------------------------------------------------------

    def _open(self, key: str, url: str, where: str) -> JobQueue:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                store = _open_store(url, self.settings.vector_dtype)
                queue = JobQueue(store, where=where, secrets=self.settings.secrets())
                self._queues[key] = queue
            return queue

    def queue(self, collection: str) -> JobQueue:
        """The queue holding ``collection``'s jobs (its database is created when missing)."""
        check_collection_name(collection)
        if self.settings.database_url:
            return self._shared()
        db = self.settings.collection_dir(collection) / "clipatlas.db"
        return self._open(collection, sqlite_url(db), f"collection {collection!r}")

    def queues(self) -> builtins.list[JobQueue]:
        """Every queue that exists now (SQLite: one per collection file)."""
        if self.settings.database_url:
            return [self._shared()]
        root = self.settings.home / "collections"
        names = sorted(p.parent.name for p in root.glob("*/clipatlas.db")) if root.is_dir() else []
        return [self.queue(n) for n in names if _NAME.match(n)]

    def _shared(self) -> JobQueue:
        assert self.settings.database_url
        return self._open(_SHARED, self.settings.database_url, "the server database")

    def close(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.store.close()
            self._queues.clear()

    # -- operations --------------------------------------------------------------------------

    def submit(self, collection: str, kind: str, params: Mapping[str, Any] | None = None) -> Job:
        """Validate ``params`` for ``kind`` and queue the job."""
        job_kind = self.kinds.get(kind)
        raw = dict(params or {})
        checked = job_kind.check(raw, self.settings, collection) if job_kind.check else raw
        return self.queue(collection).submit(collection, kind, checked)

    def get(self, collection: str, job_id: int, *, logs: bool = False) -> Job:
        return self.queue(collection).get(job_id, logs=logs)

    def list(
        self, *, collection: str | None = None, status: str | None = None, limit: int = 100
    ) -> builtins.list[Job]:
        """Newest first, across collections."""
        statuses = [status] if status else None
        queues = [self.queue(collection)] if collection else self.queues()
        found = [
            j for q in queues for j in q.list(collection=collection, statuses=statuses, limit=limit)
        ]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        return found[:limit]

    def cancel(self, collection: str, job_id: int) -> Job:
        return self.queue(collection).cancel(job_id)

    def resume(self, collection: str, job_id: int) -> Job:
        return self.queue(collection).resume(job_id)

    def clear(self, collection: str | None = None) -> int:
        queues = [self.queue(collection)] if collection else self.queues()
        return sum(q.clear(collection=collection) for q in queues)

    def recover_stale(self, stale_after: float) -> builtins.list[str]:
        """Mark running jobs with a stale heartbeat interrupted; returns their keys."""
        keys: builtins.list[str] = []
        for q in self.queues():
            for job_id in q.recover_stale(stale_after):
                keys.append(f"{q.get(job_id).collection}/{job_id}")
        return keys
