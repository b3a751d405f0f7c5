"""No job runs twice: concurrent claimers on SQLite (BEGIN IMMEDIATE) and PostgreSQL
(FOR UPDATE SKIP LOCKED), and two real worker processes sharing a collection's queue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from clipatlas.jobs import JobBoard, JobQueue, JobStatus, WorkerProcesses, default_kinds
from clipatlas.settings import Settings
from clipatlas.store.sql import SqlStore, sqlite_url
from tests.web_helpers import wait_for, write_colour_folder


def _claim_concurrently(url: str, n_jobs: int, n_claimers: int) -> Counter[int]:
    setup = JobQueue(SqlStore(url))
    for i in range(n_jobs):  # one collection each: a collection runs one job at a time
        setup.submit(f"c{i}", "slow", {"n": 1})
    claimed: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(n_claimers)

    def claimer(i: int) -> None:
        queue = JobQueue(SqlStore(url))  # its own engine, like a separate process
        start.wait()
        while True:
            job = queue.claim(f"w{i}")
            if job is None:
                break
            with lock:
                claimed[job.id] += 1
        queue.store.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(n_claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert setup.list(statuses=["queued"]) == []
    setup.store.close()
    return claimed


def test_a_collection_runs_one_job_at_a_time(tmp_path: Path) -> None:
    queue = JobQueue(SqlStore(sqlite_url(tmp_path / "q.db")))
    first, second = queue.submit("c", "slow", {}), queue.submit("c", "slow", {})
    other = queue.submit("d", "slow", {})
    assert [queue.claim("w1").id, queue.claim("w2").id] == [first.id, other.id]  # type: ignore[union-attr]
    assert queue.claim("w3") is None
    queue.finish(first.id, "w1", JobStatus.DONE)
    assert queue.claim("w3").id == second.id  # type: ignore[union-attr]
    queue.store.close()


def test_concurrent_sqlite_claimers_take_each_job_exactly_once(tmp_path: Path) -> None:
    claimed = _claim_concurrently(sqlite_url(tmp_path / "q.db"), 60, 6)
    assert sorted(claimed) == list(range(1, 61))
    assert set(claimed.values()) == {1}


@pytest.mark.postgres
def test_concurrent_postgres_claimers_take_each_job_exactly_once(postgres_url: str) -> None:
    claimed = _claim_concurrently(postgres_url, 60, 6)
    assert sorted(claimed) == list(range(1, 61))
    assert set(claimed.values()) == {1}


def _two_processes_run_ingests(settings: Settings, tmp_path: Path, collections: list[str]) -> None:
    board = JobBoard(settings, default_kinds())
    jobs = []
    for i, name in enumerate(collections):
        folder = tmp_path / f"f{i}"
        write_colour_folder(folder, per_colour=2, seed=i)
        jobs.append(
            board.submit(name, "ingest", {"source": "folder", "options": {"root": str(folder)}})
        )
    procs = WorkerProcesses(settings, 2)
    procs.start()
    try:
        finished = [
            wait_for(
                lambda j=j: board.get(j.collection, j.id, logs=True),
                lambda x: x.status not in ("queued", "running"),
                90,
            )
            for j in jobs
        ]
    finally:
        procs.stop()
    for job in finished:
        assert job.status == "done", job.error
        assert job.attempts == 1
        assert sum(m.message.startswith("started by") for m in job.logs) == 1
    assert len({j.worker_id for j in finished}) >= 1
    board.close()


@pytest.mark.slow
def test_two_worker_processes_share_sqlite_queues_without_running_a_job_twice(
    settings: Settings, tmp_path: Path
) -> None:
    _two_processes_run_ingests(settings, tmp_path, ["a", "b", "a", "b", "a", "b"])


@pytest.mark.slow
@pytest.mark.postgres
def test_two_worker_processes_share_the_postgres_queue(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    pg = settings.model_copy(update={"database_url": postgres_url})
    _two_processes_run_ingests(pg, tmp_path, ["a", "b", "c", "d"])


def test_the_worker_module_runs_standalone_and_stops_on_sigterm(settings: Settings) -> None:
    board = JobBoard(settings, default_kinds())
    job = board.submit("nothing-here", "cluster", {"k": 2})
    env = {**os.environ, "CLIPATLAS_WORKER_SETTINGS": settings.model_dump_json()}
    proc = subprocess.Popen([sys.executable, "-m", "clipatlas.jobs"], env=env)
    try:
        ran = wait_for(
            lambda: board.get("nothing-here", job.id), lambda j: j.status == "failed", 60
        )
        assert "no collection named" in (ran.error or "")
        assert proc.poll() is None  # still waiting for work
    finally:
        proc.terminate()
        code = proc.wait(15)
        board.close()
    assert code == 0
