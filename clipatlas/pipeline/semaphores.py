"""Named semaphores of the decode pool, and removing the ones a killed run left behind.

A spawned process pool's queues hold POSIX named semaphores (``/dev/shm/sem.mp-<random>``).
Python removes them when the pool is garbage-collected, or through its resource tracker when the
process dies; a ``kill -9`` of the whole process group (a job cancelled hard, the OOM killer, a
container stop) takes the tracker with it and the names stay until reboot. So the pool's
context records every name it creates in ``<collection>/cache/semaphores/<pid>-<start>-<n>.names``
and the next ingest (any process) unlinks the names recorded by a process that no longer runs.
A record names the process by pid and start time, so a reused pid is not mistaken for its owner.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

__all__ = ["TrackedSpawnContext", "remove_stale_semaphores"]

_SUFFIX = ".names"
_POOLS = itertools.count()  # one record per pool: a process may run several ingests at once


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in () may hold spaces


def _unlink(name: str) -> None:
    from _multiprocessing import sem_unlink

    with contextlib.suppress(OSError):  # already removed (by its tracker, or by another run)
        sem_unlink(name)


def remove_stale_semaphores(folder: Path) -> int:
    """Unlink the semaphores recorded by processes that are gone; the number unlinked."""
    removed = 0
    if not folder.is_dir():
        return 0
    for record in folder.glob(f"*{_SUFFIX}"):
        pid, _, rest = record.stem.partition("-")
        start = rest.rpartition("-")[0]
        if not pid.isdigit() or _start_time(int(pid)) == start:
            continue  # its owner still runs
        with contextlib.suppress(OSError):
            names = record.read_text().split()
            for name in names:
                _unlink(name)
            removed += len(names)
            record.unlink()
    return removed


class TrackedSpawnContext(SpawnContext):
    """The spawn start method, recording the name of every semaphore it makes in ``folder``."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        pid = os.getpid()
        self.record = folder / f"{pid}-{_start_time(pid)}-{next(_POOLS)}{_SUFFIX}"
        folder.mkdir(parents=True, exist_ok=True)

    def _track(self, lock: Any) -> Any:
        with self.record.open("a") as out:
            out.write(lock._semlock.name + "\n")
        return lock

    def Lock(self) -> Any:  # the multiprocessing names
        return self._track(super().Lock())

    def RLock(self) -> Any:
        return self._track(super().RLock())

    def Semaphore(self, value: int = 1) -> Any:
        return self._track(super().Semaphore(value))

    def BoundedSemaphore(self, value: int = 1) -> Any:
        return self._track(super().BoundedSemaphore(value))

    def forget(self) -> None:
        """The pool was shut down cleanly (its semaphores go with it): drop the record."""
        self.record.unlink(missing_ok=True)
