"""Durable jobs: run with progress and logs, cancel within 2 s, stale -> interrupted -> resume,
and the state fences that keep a job from being run or written twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clipatlas.atlas import Atlas
from clipatlas.errors import ConfigError, JobNotFoundError, JobStateError, UnknownPluginError
from clipatlas.jobs import JobBoard, JobContext, JobKind, Worker, default_kinds
from clipatlas.progress import ProgressEvent
from clipatlas.settings import Settings
from tests.web_helpers import SlowImageServer, wait_for, write_colour_folder


def _slow_kind(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.params.get("n", 400))
    for i in range(n):
        if ctx.should_stop():
            break
        time.sleep(0.01)
        ctx.progress(ProgressEvent("count", i + 1, n))
    ctx.log("counted")
    return {"counted": n}


def _kinds() -> Any:
    kinds = default_kinds()
    kinds.add(JobKind("slow", _slow_kind))
    return kinds


def _start_worker(settings: Settings, **kw: Any) -> tuple[Worker, threading.Thread]:
    worker = Worker(settings, kinds=_kinds(), poll=0.05, heartbeat=0.1, **kw)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def test_an_ingest_job_runs_to_done_with_progress_result_and_log(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=3)
    board = JobBoard(settings, default_kinds())
    job = board.submit("photos", "ingest", {"source": "folder", "options": {"root": str(folder)}})
    assert job.status == "queued" and job.key == "photos/1"
    worker = Worker(settings, poll=0.05, heartbeat=0.1)
    worker.run(max_jobs=1)
    done = board.get("photos", job.id, logs=True)
    assert done.status == "done", done.error
    assert done.result is not None and done.result["stored"] == 15
    assert done.stage == "ingest" and done.done == done.total == 15
    assert done.attempts == 1 and done.finished_at and done.started_at
    messages = [line.message for line in done.logs]
    assert messages[0] == "queued ingest" and messages[-1] == "done"
    assert any(m.startswith("started by worker") for m in messages)
    with Atlas.open("photos", settings=settings, create=False) as atlas:
        assert atlas.stats().stored == 15
    board.close()


def test_bad_parameters_are_refused_at_submit(settings: Settings, tmp_path: Path) -> None:
    board = JobBoard(settings, default_kinds())
    with pytest.raises(ConfigError, match="not a folder"):
        board.submit("photos", "ingest", {"source": "folder", "options": {"root": "/nope/x"}})
    with pytest.raises(ConfigError, match="source must be"):
        board.submit("photos", "ingest", {"source": "ftp"})
    with pytest.raises(ConfigError, match="must be int"):
        board.submit("photos", "cluster", {"k": "three"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        board.submit("photos", "cluster", {"kk": 3})
    with pytest.raises(UnknownPluginError):
        board.submit("photos", "teleport", {})
    with pytest.raises(ConfigError, match="collection name"):
        board.submit("../etc", "cluster", {})
    board.close()


def test_a_failing_job_records_its_error_and_the_worker_goes_on(settings: Settings) -> None:
    board = JobBoard(settings, _kinds())
    failing = board.submit("empty", "cluster", {"k": 3})  # no such collection: a typed error
    ok = board.submit("empty", "slow", {"n": 3})
    worker = Worker(settings, kinds=_kinds(), poll=0.05, heartbeat=0.1)
    worker.run(max_jobs=2)
    failed = board.get("empty", failing.id)
    assert failed.status == "failed" and "no collection named 'empty'" in (failed.error or "")
    assert board.get("empty", ok.id).status == "done"
    assert board.get("empty", failed.id).resumable
    board.close()


def test_cancel_of_a_running_job_lands_within_two_seconds(settings: Settings) -> None:
    board = JobBoard(settings, _kinds())
    job = board.submit("c", "slow", {"n": 5000})
    worker, thread = _start_worker(settings)
    wait_for(lambda: board.get("c", job.id), lambda j: j.status == "running" and j.done > 5)
    asked = time.monotonic()
    board.cancel("c", job.id)
    ended = wait_for(lambda: board.get("c", job.id), lambda j: j.status == "cancelled", 5.0)
    assert time.monotonic() - asked < 2.0
    assert 5 < ended.done < 5000
    worker.stop()
    thread.join(5)
    with pytest.raises(JobStateError, match="cannot cancel job 1: it is cancelled"):
        board.cancel("c", job.id)
    board.close()


def test_a_queued_job_cancels_at_once_and_never_runs(settings: Settings) -> None:
    board = JobBoard(settings, _kinds())
    job = board.submit("c", "slow", {"n": 3})
    assert board.cancel("c", job.id).status == "cancelled"
    worker = Worker(settings, kinds=_kinds(), poll=0.05)
    assert worker.run_once() is False
    assert board.get("c", job.id).attempts == 0
    board.close()


def test_cancelled_ingest_keeps_committed_items_and_resume_finishes_without_duplicates(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"allow_hosts": ["127.0.0.1"], "fetch_concurrency": 1, "fetch_per_host": 1}
    )
    board = JobBoard(settings, _kinds())
    with SlowImageServer(delay=0.04) as server:
        job = board.submit("net", "ingest", {"source": "urls", "urls": server.urls(80)})
        worker, thread = _start_worker(settings)
        wait_for(lambda: board.get("net", job.id), lambda j: j.done >= 8, 30)
        asked = time.monotonic()
        board.cancel("net", job.id)
        cancelled = wait_for(lambda: board.get("net", job.id), lambda j: j.status == "cancelled")
        assert time.monotonic() - asked < 2.0
        with Atlas.open("net", settings=settings, create=False) as atlas:
            partial = atlas.stats().stored
        assert 8 <= partial < 80, cancelled.as_dict()
        hits_before = server.hits
        board.resume("net", job.id)
        done = wait_for(lambda: board.get("net", job.id), lambda j: j.status == "done", 30)
        worker.stop()
        thread.join(5)
        assert done.attempts == 2 and done.result is not None
        assert done.result["skipped"] == partial  # committed items were not fetched again
        assert server.hits - hits_before == 80 - partial
    with Atlas.open("net", settings=settings, create=False) as atlas:
        stats = atlas.stats()
    assert stats.stored == 80 and stats.rejected == 0 and stats.vectors == 80
    board.close()


def test_a_stale_running_job_becomes_interrupted_is_fenced_and_resumes(settings: Settings) -> None:
    board = JobBoard(settings, _kinds())
    job = board.submit("s", "slow", {"n": 4})
    queue = board.queue("s")
    claimed = queue.claim("dead-worker")
    assert claimed is not None and claimed.status == "running"
    assert queue.claim("other") is None  # nothing else queued: no double claim
    time.sleep(0.3)
    assert board.recover_stale(0.2) == ["s/1"]
    interrupted = board.get("s", job.id, logs=True)
    assert interrupted.status == "interrupted" and interrupted.resumable
    assert "interrupted: no heartbeat" in interrupted.logs[-1].message
    # the vanished worker can no longer write to it
    assert queue.beat(job.id, "dead-worker", {"done": 99}) == (False, False)
    assert not queue.finish(job.id, "dead-worker", claimed_status("done"))
    assert board.get("s", job.id).done == 0
    board.resume("s", job.id)
    Worker(settings, kinds=_kinds(), poll=0.05, heartbeat=0.1).run(max_jobs=1)
    resumed = board.get("s", job.id)
    assert resumed.status == "done" and resumed.attempts == 2
    with pytest.raises(JobStateError, match="cannot resume"):
        board.resume("s", job.id)
    board.close()


def claimed_status(value: str) -> Any:
    from clipatlas.jobs.model import JobStatus

    return JobStatus(value)


def test_a_worker_starting_up_interrupts_jobs_left_running_by_a_dead_worker(
    settings: Settings,
) -> None:
    board = JobBoard(settings, _kinds())
    job = board.submit("s", "slow", {"n": 2})
    assert board.queue("s").claim("killed") is not None
    worker = Worker(settings, kinds=_kinds(), poll=0.05, stale_after=0.0)
    worker.run(max_jobs=0)  # one loop: recovery runs first
    assert board.get("s", job.id).status == "interrupted"
    board.close()


def test_logs_are_bounded_and_secrets_redacted(settings: Settings) -> None:
    settings = settings.model_copy(update={"civitai_api_key": "sekrit-key-123"})
    board = JobBoard(settings, _kinds())
    job = board.submit("s", "slow", {"n": 1})
    queue = board.queue("s")
    for i in range(520):
        queue.log(job.id, "info", f"line {i} with sekrit-key-123 " + "x" * 3000)
    logs = board.get("s", job.id, logs=True).logs
    assert len(logs) == 500
    assert logs[-1].message.startswith("line 519 with *** ")
    assert all("sekrit" not in line.message and len(line.message) <= 2000 for line in logs)
    board.close()


def test_clear_removes_finished_jobs_only_and_unknown_jobs_are_typed(settings: Settings) -> None:
    board = JobBoard(settings, _kinds())
    a = board.submit("s", "slow", {"n": 1})
    board.cancel("s", a.id)
    b = board.submit("s", "slow", {"n": 1})
    assert board.clear() == 1
    assert [j.id for j in board.list()] == [b.id]
    with pytest.raises(JobNotFoundError):
        board.get("s", a.id)
    board.close()
