"""Run one claimed job: call its kind, keep the heartbeat, relay progress, log and cancel.

A side thread beats every ``heartbeat`` seconds: it writes the latest progress and buffered log
lines, and reads the cancel flag. Progress events only touch memory, so a hot loop can report
per item. Once a cancel is asked (or the job was taken away as interrupted), ``should_stop()``
turns true and the next progress event raises :class:`OperationCancelled`; the job ends as
``cancelled`` after its committed work, and can be resumed later.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from clipatlas.errors import ClipatlasError, OperationCancelled
from clipatlas.jobs.kinds import JobContext, JobKinds
from clipatlas.jobs.model import Job, JobStatus
from clipatlas.jobs.queue import JobQueue
from clipatlas.progress import ProgressEvent
from clipatlas.settings import Settings

__all__ = ["JobProgress", "execute"]


class JobProgress:
    """The progress callback handed to a job's operation; also offers ``should_stop()``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.stop = threading.Event()
        self.lost = threading.Event()  # the job was declared interrupted: never write to it
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._lines: list[tuple[float, str, str]] = []
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.stage != self._stage:
                self._stage = event.stage
                self._lines.append((time.time(), "info", f"stage {event.stage}"))
            self._state = {
                "stage": event.stage,
                "done": int(event.done),
                "total": None if event.total is None else int(event.total),
                "counts": {k: int(v) for k, v in event.counts.items()},
                "message": event.message or None,
            }
        if self.stop.is_set():
            raise OperationCancelled(self.job.kind)

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def log(self, message: str, level: str = "info") -> None:
        with self._lock:
            self._lines.append((time.time(), level, message))

    def take(self) -> tuple[dict[str, Any], list[tuple[float, str, str]]]:
        with self._lock:
            state, lines = dict(self._state), self._lines
            self._lines = []
        return state, lines


def _beat(
    queue: JobQueue,
    job: Job,
    worker_id: str,
    progress: JobProgress,
    every: float,
    done: threading.Event,
) -> None:
    while not done.wait(every):
        state, lines = progress.take()
        try:
            owned, cancel = queue.beat(job.id, worker_id, state, lines)
        except ClipatlasError:
            continue  # a busy database: try again at the next beat
        if not owned:
            progress.lost.set()
            progress.stop.set()
            return
        if cancel:
            progress.stop.set()


def execute(
    queue: JobQueue,
    job: Job,
    worker_id: str,
    settings: Settings,
    kinds: JobKinds,
    *,
    heartbeat: float = 0.5,
) -> str:
    """Run ``job`` (already claimed by ``worker_id``) to its end; returns the final status."""
    progress = JobProgress(job)
    finished = threading.Event()
    beater = threading.Thread(
        target=_beat,
        args=(queue, job, worker_id, progress, heartbeat, finished),
        name=f"job-{job.id}-heartbeat",
        daemon=True,
    )
    if job.cancel_requested:
        progress.stop.set()
    beater.start()
    status, result, error = JobStatus.DONE, None, None
    try:
        kind = kinds.get(job.kind)
        ctx = JobContext(job, settings, progress, progress.should_stop, progress.log)
        if progress.should_stop():
            raise OperationCancelled(job.kind)
        out = kind.run(ctx)
        result = dict(out) if isinstance(out, Mapping) else None
    except OperationCancelled:
        status = JobStatus.CANCELLED
    except ClipatlasError as exc:
        status, error = JobStatus.FAILED, str(exc)
    except Exception as exc:  # a bug in an operation must not kill the worker
        status, error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"
        progress.log(traceback.format_exc(limit=8), "error")
    finally:
        finished.set()
        beater.join(timeout=10)
    if progress.lost.is_set():
        return JobStatus.INTERRUPTED.value
    state, lines = progress.take()
    owned = queue.finish(
        job.id, worker_id, status, result=result, error=error, progress=state, lines=lines
    )
    return status.value if owned else JobStatus.INTERRUPTED.value
