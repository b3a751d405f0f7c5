"""Jobs through the web app: start an ingest from the API, watch it, cancel within 2 s,
resume, stream events, clear the history, and find it all again after a restart."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clipatlas.jobs import JobBoard, JobContext, JobKind, Worker, default_kinds
from clipatlas.progress import ProgressEvent
from clipatlas.settings import Settings
from clipatlas.web.config import WebConfig
from tests.web_helpers import SlowImageServer, client_for, write_colour_folder, write_headers


def _slow(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.params.get("n", 1000))
    for i in range(n):
        time.sleep(0.01)
        ctx.progress(ProgressEvent("count", i + 1, n))
    return {"counted": n}


def _kinds() -> Any:
    kinds = default_kinds()
    kinds.add(JobKind("slow", _slow))
    return kinds


class _Running:
    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings, kinds=_kinds(), poll=0.05, heartbeat=0.1)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(10)


def _wait(c: TestClient, key: str, pred: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = c.get(f"/api/jobs/{key}").json()
        if pred(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.03)


def test_an_ingest_started_from_the_api_runs_and_shows_on_the_pages(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=2)
    with client_for(settings, kinds=_kinds()) as c, _Running(settings):
        res = c.post(
            "/api/jobs",
            headers=write_headers(c),
            json={
                "collection": "fresh",
                "kind": "ingest",
                "params": {"source": "folder", "options": {"root": str(folder)}},
            },
        )
        assert res.status_code == 201, res.text
        key = res.json()["key"]
        job = _wait(c, key, lambda j: j["status"] == "done")
        assert job["result"]["stored"] == 10 and job["fraction"] == 1.0
        assert [line["message"] for line in job["logs"]][-1] == "done"
        assert c.get("/api/collections/fresh").json()["stored"] == 10
        listing = c.get("/jobs", headers={"Accept": "text/html"}).text
        assert f'href="/jobs/{key}"' in listing
        detail = c.get(f"/jobs/{key}", headers={"Accept": "text/html"}).text
        assert "started by worker" in detail and '"stored": 10' in detail


def test_bad_job_requests_are_400_with_the_reason(settings: Settings) -> None:
    with client_for(settings) as c:
        h = write_headers(c)
        res = c.post(
            "/api/jobs",
            headers=h,
            json={"collection": "x", "kind": "ingest", "params": {"source": "folder"}},
        )
        assert res.status_code == 400 and "options.root" in res.json()["detail"]
        res = c.post("/api/jobs", headers=h, json={"collection": "x", "kind": "nope"})
        assert res.status_code == 400 and res.json()["error"] == "unknown_plugin"
        res = c.post("/api/jobs", headers=h, json={"kind": "cluster"})
        assert res.status_code == 422 and res.json()["error"] == "invalid_request"
        assert c.get("/api/jobs/x/42").json()["error"] == "job_not_found"


def test_cancel_from_the_api_lands_within_two_seconds_and_resume_finishes(
    settings: Settings,
) -> None:
    with client_for(settings, kinds=_kinds()) as c, _Running(settings):
        h = write_headers(c)
        res = c.post(
            "/api/jobs", headers=h, json={"collection": "s", "kind": "slow", "params": {"n": 300}}
        )
        assert res.status_code == 201, res.text
        key = res.json()["key"]
        _wait(c, key, lambda j: j["status"] == "running" and j["done"] > 3)
        asked = time.monotonic()
        assert c.post(f"/api/jobs/{key}/cancel", headers=h).json()["cancel_requested"]
        job = _wait(c, key, lambda j: j["status"] == "cancelled", 5)
        assert time.monotonic() - asked < 2.0 and job["done"] < 300
        res = c.post(f"/api/jobs/{key}/cancel", headers=h)
        assert res.status_code == 409 and res.json()["error"] == "job_state"
        c.post("/api/jobs", headers=h, json={"collection": "s", "kind": "slow", "params": {"n": 2}})
        assert c.post(f"/api/jobs/{key}/resume", headers=h).json()["status"] == "queued"
        _wait(c, key, lambda j: j["status"] == "done", 60)


def test_job_progress_streams_as_server_sent_events(settings: Settings) -> None:
    with client_for(settings, kinds=_kinds()) as c, _Running(settings):
        key = c.post(
            "/api/jobs",
            headers=write_headers(c),
            json={"collection": "s", "kind": "slow", "params": {"n": 60}},
        ).json()["key"]
        with c.stream("GET", f"/api/jobs/{key}/events") as res:
            assert res.headers["content-type"].startswith("text/event-stream")
            events = [line for line in res.iter_lines() if line.startswith("data: ")]
        assert len(events) >= 2
        assert '"status": "done"' in events[-1]


def test_history_survives_a_restart_and_stale_jobs_become_interrupted(
    settings: Settings,
) -> None:
    board = JobBoard(settings, _kinds())
    done = board.submit("h", "slow", {"n": 1})
    Worker(settings, kinds=_kinds(), poll=0.05).run(max_jobs=1)
    crashed = board.submit("h", "slow", {"n": 5})
    assert board.queue("h").claim("a-worker-that-was-killed") is not None
    board.close()
    time.sleep(0.2)
    app_config = WebConfig.build(workers=0)
    from clipatlas.web.app import create_app

    app = create_app(settings, app_config, kinds=_kinds(), stale_after=0.1)
    with TestClient(app, base_url="http://127.0.0.1") as c:  # start-up recovers stale jobs
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
        assert jobs[done.id]["status"] == "done"
        assert jobs[crashed.id]["status"] == "interrupted"
        page = c.get("/jobs", headers={"Accept": "text/html"}).text
        assert "interrupted" in page and 'data-action="resume"' in page
        h = write_headers(c)
        assert c.post(f"/api/jobs/h/{crashed.id}/resume", headers=h).json()["status"] == "queued"
        with _Running(settings):
            _wait(c, f"h/{crashed.id}", lambda j: j["status"] == "done")
        assert c.delete("/api/jobs", headers=h).json() == {"removed": 2}
        assert c.get("/api/jobs").json() == []


def test_serve_starts_worker_processes_with_the_app(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=1)
    with client_for(settings, WebConfig.build(workers=1)) as c:
        key = c.post(
            "/api/jobs",
            headers=write_headers(c),
            json={
                "collection": "bg",
                "kind": "ingest",
                "params": {"source": "folder", "options": {"root": str(folder)}},
            },
        ).json()["key"]
        job = _wait(c, key, lambda j: j["status"] in ("done", "failed"), 60)
        assert job["status"] == "done" and job["result"]["stored"] == 5
        assert job["worker_id"].split(":")[1] != str(__import__("os").getpid())  # another process


def test_a_naver_ingest_job_from_the_api_uses_the_safe_fetcher_and_hides_the_secret(
    settings: Settings,
) -> None:
    from tests.fake_naver import FakeNaver

    with FakeNaver(client_secret="fake-client-secret-123") as naver:
        net = settings.model_copy(
            update={
                "naver_base_url": naver.api_url,
                "naver_client_id": "fake-client-id",
                "naver_client_secret": "fake-client-secret-123",
                "allow_hosts": ["127.0.0.1"],
            }
        )
        with client_for(net) as c, _Running(net):
            res = c.post(
                "/api/jobs",
                headers=write_headers(c),
                json={
                    "collection": "cats",
                    "kind": "ingest",
                    "params": {"source": "naver", "options": {"query": "고양이", "limit": 12}},
                },
            )
            assert res.status_code == 201, res.text
            job = _wait(c, res.json()["key"], lambda j: j["status"] in ("done", "failed"), 60)
            assert job["status"] == "done", job["error"]
            assert job["result"]["stored"] == 12
            assert "fake-client-secret-123" not in c.get(f"/api/jobs/{job['key']}").text
            gallery = c.get("/api/collections/cats/items", params={"source": "naver"}).json()
            assert gallery["total"] == 12
            assert all(i["meta"]["query"] == "고양이" for i in gallery["items"])


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_its_job_interrupted_then_resumed(
    settings: Settings, tmp_path: Path
) -> None:
    urls_settings = settings.model_copy(
        update={"allow_hosts": ["127.0.0.1"], "fetch_concurrency": 1, "fetch_per_host": 1}
    )
    from clipatlas.web.app import create_app

    with SlowImageServer(delay=0.05) as server:
        app = create_app(urls_settings, WebConfig.build(workers=1), stale_after=1.0)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            h = write_headers(c)
            res = c.post(
                "/api/jobs",
                headers=h,
                json={
                    "collection": "k",
                    "kind": "ingest",
                    "params": {"source": "urls", "urls": server.urls(60)},
                },
            )
            key = res.json()["key"]
            job = _wait(c, key, lambda j: j["status"] == "running" and j["done"] >= 8, 60)
            pid = int(job["worker_id"].split(":")[1])
            os.kill(pid, signal.SIGKILL)  # kill -9 in the middle of the ingest
            stopped = _wait(c, key, lambda j: j["status"] == "interrupted", 30)
            assert stopped["done"] < 60
            c.post(f"/api/jobs/{key}/resume", headers=h)
            done = _wait(c, key, lambda j: j["status"] == "done", 60)
            assert done["worker_id"].split(":")[1] != str(pid)  # a replacement worker ran it
            assert done["attempts"] == 2
            stats = c.get("/api/collections/k").json()
            assert stats["stored"] == 60 and stats["vectors"] == 60 and stats["rejected"] == 0


@pytest.mark.postgres
def test_the_app_and_its_jobs_work_on_postgresql(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    pg = settings.model_copy(update={"database_url": postgres_url})
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=2)
    with client_for(pg, kinds=_kinds()) as c, _Running(pg):
        h = write_headers(c)
        for name in ("one", "two"):
            res = c.post(
                "/api/jobs",
                headers=h,
                json={
                    "collection": name,
                    "kind": "ingest",
                    "params": {"source": "folder", "options": {"root": str(folder)}},
                },
            )
            assert res.status_code == 201, res.text
        jobs = c.get("/api/jobs").json()
        assert sorted(j["key"] for j in jobs) == ["one/1", "two/2"]  # one id space on a server
        for key in ("one/1", "two/2"):
            assert _wait(c, key, lambda j: j["status"] == "done")["result"]["stored"] == 10
        names = [col["name"] for col in c.get("/api/collections").json()]
        assert names == ["one", "two"]
        hits = c.get("/api/collections/two/search", params={"q": "red", "k": 2}).json()["hits"]
        assert hits[0]["source_key"].startswith("c0-")
        assert c.delete("/api/jobs", headers=h).json() == {"removed": 2}
