"""No named semaphore leaks in /dev/shm after an ingest is killed with SIGKILL: the decode pool
records its semaphores and the next ingest unlinks those of a dead process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from _multiprocessing import SemLock  # type: ignore[attr-defined]
from pathlib import Path

import pytest

from clipatlas.atlas import Atlas
from clipatlas.pipeline.semaphores import TrackedSpawnContext, remove_stale_semaphores
from clipatlas.settings import Settings
from tests.web_helpers import write_colour_folder

SHM = Path("/dev/shm")
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")

SCRIPT = """
import sys
from clipatlas.atlas import Atlas
from clipatlas.settings import Settings

if __name__ == "__main__":
    home, folder = sys.argv[1], sys.argv[2]
    settings = Settings(home=home, model="fake:64", workers=2, batch_size=8, database_url=None)
    with Atlas.open("pics", settings=settings) as atlas:
        atlas.ingest(folder)
"""


def _shm(name: str) -> Path:
    return SHM / f"sem.{name.lstrip('/')}"


def _recorded(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [n for f in folder.glob("*.names") for n in f.read_text().split()]


def test_a_killed_ingest_leaks_no_semaphores_after_the_next_run(
    settings: Settings, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    write_colour_folder(pics, per_colour=60)
    script = tmp_path / "ingest.py"
    script.write_text(SCRIPT)
    records = settings.collection_dir("pics") / "cache" / "semaphores"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(settings.home), str(pics)], start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(_recorded(records)) < 3 and proc.poll() is None:  # the pool's queues exist
        assert time.monotonic() < deadline, "the ingest never started its decode pool"
        time.sleep(0.01)
    assert proc.poll() is None, "the ingest ended before it could be killed"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # the process, its workers and its resource tracker
    proc.wait()
    time.sleep(0.5)
    names = _recorded(records)
    leaked = [n for n in names if _shm(n).exists()]
    assert leaked, f"expected the kill to leave semaphores behind (recorded {names})"
    # the next ingest (here, in this process) removes them before it starts its own pool
    with Atlas.open("pics", settings=settings.model_copy(update={"workers": 2})) as atlas:
        atlas.ingest(pics)
    assert [n for n in leaked if _shm(n).exists()] == []
    assert _recorded(records) == []  # and its own pool, shut down cleanly, left no record


def test_records_of_running_processes_are_kept(tmp_path: Path) -> None:
    context = TrackedSpawnContext(tmp_path)
    lock = context.Lock()
    name = lock._semlock.name  # type: ignore[attr-defined]
    assert _recorded(tmp_path) == [name] and _shm(name).exists()
    assert remove_stale_semaphores(tmp_path) == 0  # this process runs: keep them
    assert _shm(name).exists()
    context.forget()
    assert _recorded(tmp_path) == []
    # a bare semaphore (no finalizer of its own) recorded by a process that is gone
    orphan = f"/mp-test-{os.getpid()}"
    sem = SemLock(1, 1, 1, orphan, False)
    stale = tmp_path / f"{2**22 + 7}-1-0.names"  # a pid above Linux's limit: not running
    stale.write_text(orphan + "\n")
    assert _shm(orphan).exists()
    assert remove_stale_semaphores(tmp_path) == 1
    assert not _shm(orphan).exists() and not stale.exists()
    del sem
