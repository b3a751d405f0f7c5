"""Workers: processes that claim queued jobs and run them, one at a time each.

``clipatlas worker`` runs one in the foreground; ``clipatlas serve`` starts ``--workers N`` of
them as child processes (:class:`WorkerProcesses`), so a long ingest never slows the web
server. A worker claims from every queue on the board (SQLite: each collection's file), beats
while it runs, and on start-up (and every ``stale_after / 2`` s) turns running jobs whose
heartbeat went stale into ``interrupted`` ones, which a user can resume.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import FrameType

from clipatlas.errors import ClipatlasError
from clipatlas.jobs.board import JobBoard
from clipatlas.jobs.kinds import JobKinds, default_kinds
from clipatlas.jobs.runner import execute
from clipatlas.settings import Settings, load_settings

__all__ = ["DEFAULT_STALE_AFTER", "SETTINGS_ENV", "Worker", "WorkerProcesses"]

DEFAULT_STALE_AFTER = 30.0  # seconds without a heartbeat before a running job is interrupted
SETTINGS_ENV = "CLIPATLAS_WORKER_SETTINGS"  # JSON settings handed to child workers


class Worker:
    """Claims and runs jobs until :meth:`stop` (or ``max_jobs`` ran)."""

    def __init__(
        self,
        settings: Settings,
        *,
        kinds: JobKinds | None = None,
        worker_id: str | None = None,
        poll: float = 0.5,
        heartbeat: float = 0.5,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        self.settings = settings
        self.kinds = kinds or default_kinds()
        self.board = JobBoard(settings, self.kinds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll, self.heartbeat, self.stale_after = poll, heartbeat, stale_after
        self._stop = threading.Event()
        self.ran: list[tuple[str, str]] = []  # (job key, final status)

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> bool:
        """Claim one job from any queue and run it; False when nothing was waiting."""
        for queue in self.board.queues():
            job = queue.claim(self.worker_id, self.kinds.names())
            if job is None:
                continue
            status = execute(
                queue, job, self.worker_id, self.settings, self.kinds, heartbeat=self.heartbeat
            )
            self.ran.append((job.key, status))
            return True
        return False

    def run(self, *, max_jobs: int | None = None) -> None:
        last_recovery = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_recovery > self.stale_after / 2:
                    self.board.recover_stale(self.stale_after)
                    last_recovery = time.monotonic()
                try:
                    ran = self.run_once()
                except ClipatlasError:
                    ran = False  # a database busy or unreadable right now: retry after a pause
                if max_jobs is not None and len(self.ran) >= max_jobs:
                    return
                if not ran:
                    self._stop.wait(self.poll)
        finally:
            self.board.close()


class WorkerProcesses:
    """``count`` worker child processes (``python -m clipatlas.jobs``)."""

    def __init__(self, settings: Settings, count: int, *, stale_after: float = DEFAULT_STALE_AFTER):
        self.settings, self.count, self.stale_after = settings, count, stale_after
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json()}
        for _ in range(self.count):
            command = [
                sys.executable,
                "-m",
                "clipatlas.jobs",
                "--stale-after",
                str(self.stale_after),
            ]
            self.procs.append(subprocess.Popen(command, env=env))

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def revive(self) -> int:
        """Restart workers that died (killed, out of memory); returns how many. Their running
        job goes stale and is interrupted by the next recovery, ready to be resumed."""
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json()}
        revived = 0
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                self.procs[i] = subprocess.Popen(self._command(), env=env)
                revived += 1
        return revived

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "clipatlas.jobs", "--stale-after", str(self.stale_after)]

    def stop(self, timeout: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


def _settings_from_env() -> Settings:
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        return load_settings()
    return Settings.model_validate(json.loads(raw))


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point: run a worker until SIGTERM/SIGINT."""
    args = list(sys.argv[1:] if argv is None else argv)
    stale = DEFAULT_STALE_AFTER
    if "--stale-after" in args:
        stale = float(args[args.index("--stale-after") + 1])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    worker = Worker(_settings_from_env(), stale_after=stale)

    def _term(_sig: int, _frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    worker.run()
