"""The job queue of one database: submit, claim, beat, finish, cancel, resume, clear.

Claiming is the only contended step. PostgreSQL picks the oldest queued row with
``SELECT ... FOR UPDATE SKIP LOCKED`` (several workers never wait on, or take, the same row);
SQLite takes the database's write lock first with ``BEGIN IMMEDIATE`` (one claimer at a time,
no snapshot upgrade failures). Both then move the row with a compare-and-set
(``WHERE status = 'queued'``), so a job is never claimed twice even if the lock were missing.

One job runs per collection at a time (a queued job waits while another job of its collection
runs): two ingests into one media folder would trip over each other's temporary files.

Every write by a running job is fenced by ``worker_id`` and ``status = 'running'``: once a job
has been declared interrupted (stale heartbeat) its old worker can no longer write to it.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from clipatlas.errors import JobNotFoundError, JobStateError, StoreError
from clipatlas.fetch.redact import scrub
from clipatlas.jobs.model import ACTIVE, FINISHED, RESUMABLE, Job, JobStatus, LogLine
from clipatlas.store.job_tables import job_logs, jobs
from clipatlas.store.sql import SqlStore, transaction

__all__ = ["MAX_LOG_CHARS", "MAX_LOG_LINES", "JobQueue"]

MAX_LOG_LINES = 500  # per job; older lines are dropped
MAX_LOG_CHARS = 2000  # per line
_CLAIM_LOCK = 0x636C6A62  # advisory lock id serialising PostgreSQL claims


class JobQueue:
    """Jobs stored in one clipatlas database (``where`` names it in messages)."""

    def __init__(self, store: SqlStore, *, where: str = "", secrets: Iterable[str] = ()) -> None:
        self.store = store
        self.engine = store.engine
        self.where = where
        self.secrets = tuple(s for s in secrets if s)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _claim_tx(self) -> Iterator[Connection]:
        if self.store.dialect != "sqlite":
            with transaction(self.engine) as conn:
                yield conn
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from exc

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: int, *, logs: bool = False) -> Job:
        with transaction(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == int(job_id))).first()
            if row is None:
                raise JobNotFoundError(int(job_id), self.where)
            lines = []
            if logs:
                lines = [
                    LogLine(r.at, r.level, r.message)
                    for r in conn.execute(
                        select(job_logs).where(job_logs.c.job_id == row.id).order_by(job_logs.c.id)
                    )
                ]
        return _job(row, lines)

    def list(
        self,
        *,
        collection: str | None = None,
        statuses: Iterable[str] | None = None,
        limit: int = 100,
    ) -> builtins.list[Job]:
        """Newest first."""
        q = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if collection is not None:
            q = q.where(jobs.c.collection == collection)
        if statuses is not None:
            q = q.where(jobs.c.status.in_(list(statuses)))
        with transaction(self.engine) as conn:
            return [_job(r) for r in conn.execute(q)]

    # -- submitting and claiming -------------------------------------------------------------

    def submit(self, collection: str, kind: str, params: Mapping[str, Any]) -> Job:
        with transaction(self.engine) as conn:
            key = conn.execute(
                insert(jobs).values(
                    collection=collection,
                    kind=kind,
                    params=dict(params),
                    status=JobStatus.QUEUED.value,
                    done=0,
                    counts={},
                    cancel_requested=False,
                    attempts=0,
                    created_at=time.time(),
                )
            ).inserted_primary_key
            assert key is not None
            job_id = int(key[0])
            self._log(conn, job_id, "info", f"queued {kind}")
        return self.get(job_id)

    def claim(self, worker_id: str, kinds: Iterable[str] | None = None) -> Job | None:
        """Take the oldest queued job (of ``kinds``) for ``worker_id``; None when none waits."""
        now = time.time()
        with self._claim_tx() as conn:
            if self.store.dialect == "postgresql":  # claims are short: one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            busy = select(jobs.c.collection).where(jobs.c.status == JobStatus.RUNNING.value)
            q = (
                select(jobs.c.id)
                .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.collection.not_in(busy))
                .order_by(jobs.c.id)
                .limit(1)
            )
            if kinds is not None:
                q = q.where(jobs.c.kind.in_(list(kinds)))
            if self.store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            job_id = conn.execute(q).scalar_one_or_none()
            if job_id is None:
                return None
            moved = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    worker_id=worker_id,
                    attempts=jobs.c.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                    finished_at=None,
                )
            ).rowcount
            if moved != 1:
                return None
            self._log(conn, job_id, "info", f"started by worker {worker_id}")
        return self.get(job_id)

    # -- while running -----------------------------------------------------------------------

    def beat(
        self,
        job_id: int,
        worker_id: str,
        progress: Mapping[str, Any] | None = None,
        lines: Iterable[tuple[float, str, str]] = (),
    ) -> tuple[bool, bool]:
        """Heartbeat (+ progress, + log lines) of a running job: (still ours, cancel asked)."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        values.update(_progress_values(progress))
        with transaction(self.engine) as conn:
            owned = _update_if_owned(conn, job_id, worker_id, values)
            if not owned:
                return False, False
            for at, level, message in lines:
                self._log(conn, job_id, level, message, at=at)
            cancel = conn.execute(
                select(jobs.c.cancel_requested).where(jobs.c.id == job_id)
            ).scalar_one()
        return True, bool(cancel)

    def finish(
        self,
        job_id: int,
        worker_id: str,
        status: JobStatus,
        *,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        progress: Mapping[str, Any] | None = None,
        lines: Iterable[tuple[float, str, str]] = (),
    ) -> bool:
        """End a running job that ``worker_id`` still owns; False when it no longer does."""
        values: dict[str, Any] = {
            "status": status.value,
            "finished_at": time.time(),
            "result": dict(result) if result is not None else None,
            "error": self._clean(error) if error else None,
        }
        values.update(_progress_values(progress))
        with transaction(self.engine) as conn:
            owned = _update_if_owned(conn, job_id, worker_id, values)
            if owned:
                for at, level, message in lines:
                    self._log(conn, job_id, level, message, at=at)
                self._log(
                    conn,
                    job_id,
                    "error" if error else "info",
                    f"{status.value}" + (f": {error}" if error else ""),
                )
        return bool(owned)

    # -- user actions ------------------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        """A queued job is cancelled at once; a running one is asked to stop between items."""
        with transaction(self.engine) as conn:
            status = self._status(conn, job_id)
            if status == JobStatus.QUEUED.value:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == status)
                    .values(
                        status=JobStatus.CANCELLED.value,
                        finished_at=time.time(),
                        cancel_requested=True,
                    )
                )
                self._log(conn, job_id, "info", "cancelled before it started")
            elif status == JobStatus.RUNNING.value:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
                self._log(conn, job_id, "info", "cancel requested")
            else:
                raise JobStateError(job_id, status, "cancel")
        return self.get(job_id)

    def resume(self, job_id: int) -> Job:
        """Queue a failed, cancelled or interrupted job again; its operation is idempotent, so
        the rerun skips what was committed and does the rest."""
        with transaction(self.engine) as conn:
            status = self._status(conn, job_id)
            if status not in RESUMABLE:
                raise JobStateError(job_id, status, "resume")
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == status)
                .values(
                    status=JobStatus.QUEUED.value,
                    cancel_requested=False,
                    error=None,
                    worker_id=None,
                    finished_at=None,
                )
            )
            self._log(conn, job_id, "info", f"resumed (was {status})")
        return self.get(job_id)

    def recover_stale(self, stale_after: float) -> builtins.list[int]:
        """Running jobs whose heartbeat is older than ``stale_after`` s become interrupted."""
        cutoff = time.time() - stale_after
        with transaction(self.engine) as conn:
            ids = list(
                conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.status == JobStatus.RUNNING.value,
                        func.coalesce(jobs.c.heartbeat_at, 0.0) < cutoff,
                    )
                ).scalars()
            )
            for job_id in ids:
                moved = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                    .values(status=JobStatus.INTERRUPTED.value, finished_at=time.time())
                ).rowcount
                if moved:
                    self._log(
                        conn,
                        job_id,
                        "warning",
                        f"interrupted: no heartbeat for {stale_after:.0f}s (resumable)",
                    )
        return ids

    def clear(self, *, collection: str | None = None) -> int:
        """Delete finished jobs (done, failed, cancelled, interrupted) and their logs."""
        cond: builtins.list[ColumnElement[bool]] = [jobs.c.status.in_(sorted(FINISHED))]
        if collection is not None:
            cond.append(jobs.c.collection == collection)
        with transaction(self.engine) as conn:
            ids = list(conn.execute(select(jobs.c.id).where(*cond)).scalars())
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(delete(job_logs).where(job_logs.c.job_id.in_(chunk)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(chunk)))
        return len(ids)

    def log(self, job_id: int, level: str, message: str) -> None:
        with transaction(self.engine) as conn:
            self._log(conn, job_id, level, message)

    def active_count(self) -> int:
        with transaction(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(jobs).where(jobs.c.status.in_(sorted(ACTIVE)))
                ).scalar_one()
            )

    # -- internals ---------------------------------------------------------------------------

    def _status(self, conn: Connection, job_id: int) -> str:
        status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one_or_none()
        if status is None:
            raise JobNotFoundError(job_id, self.where)
        return str(status)

    def _clean(self, text: str) -> str:
        text = scrub(text, self.secrets)
        return text if len(text) <= MAX_LOG_CHARS else text[: MAX_LOG_CHARS - 1] + "…"

    def _log(
        self, conn: Connection, job_id: int, level: str, message: str, *, at: float | None = None
    ) -> None:
        conn.execute(
            insert(job_logs).values(
                job_id=job_id, at=at or time.time(), level=level[:10], message=self._clean(message)
            )
        )
        oldest_kept = conn.execute(
            select(job_logs.c.id)
            .where(job_logs.c.job_id == job_id)
            .order_by(job_logs.c.id.desc())
            .offset(MAX_LOG_LINES - 1)
            .limit(1)
        ).scalar_one_or_none()
        if oldest_kept is not None:
            conn.execute(
                delete(job_logs).where(job_logs.c.job_id == job_id, job_logs.c.id < oldest_kept)
            )


def _job(row: Any, lines: list[LogLine] | None = None) -> Job:
    return Job(
        id=row.id,
        collection=row.collection,
        kind=row.kind,
        params=dict(row.params or {}),
        status=row.status,
        stage=row.stage,
        done=int(row.done or 0),
        total=row.total,
        counts=dict(row.counts or {}),
        message=row.message,
        result=row.result,
        error=row.error,
        cancel_requested=bool(row.cancel_requested),
        worker_id=row.worker_id,
        attempts=int(row.attempts or 0),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        logs=lines or [],
    )


def _progress_values(progress: Mapping[str, Any] | None) -> dict[str, Any]:
    """The progress columns present in ``progress`` (none when it is empty)."""
    keys = ("stage", "done", "total", "counts", "message")
    return {k: progress[k] for k in keys if k in progress} if progress else {}


def _update_if_owned(
    conn: Connection, job_id: int, worker_id: str, values: Mapping[str, Any]
) -> int:
    """Update a job only while ``worker_id`` still runs it (the fence); rows changed (0 or 1)."""
    return conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.worker_id == worker_id,
            jobs.c.status == JobStatus.RUNNING.value,
        )
        .values(**values)
    ).rowcount
