"""A dataset build interrupted while downloading resumes without fetching any picture twice.

The pictures come from the planted fake Naver server, which counts every request and every
picture it actually sent, per URL. Two interruptions: a cooperative stop (``should_stop``)
after N downloads, and a real ``kill -9`` of the ``clipatlas build-dataset`` process.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.errors import BuildCancelledError
from clipatlas.progress import ProgressEvent
from tests import dataset_planted as planted

QUERY = "고양이"
CATALOGUE = functools.cache(lambda: planted.planted_catalogue(100))


def test_a_build_stopped_after_n_downloads_resumes_with_no_repeated_fetch(
    tmp_path: Path,
) -> None:
    catalogue = CATALOGUE()
    out = tmp_path / "out"
    fetched = {"n": 0}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "fetch":
            fetched["n"] = event.done

    with planted.PlantedNaver(catalogue, QUERY) as naver:
        settings = planted.planted_settings(tmp_path / "home", naver, fetch_concurrency=4)
        with (
            Atlas.open("cats", settings=settings, registry=planted.planted_registry()) as atlas,
            pytest.raises(BuildCancelledError, match="fetch"),
        ):
            atlas.build_dataset(QUERY, out, limit=50, progress=progress,
                                should_stop=lambda: fetched["n"] >= 23)  # fmt: skip
        first = dict(naver.state.image_hits)
        assert 23 <= len(first) < 100, "stopped mid-download, in-flight ones finished"
        planted.PlantedEmbedder.embedded = 0
        with Atlas.open("cats", settings=settings, registry=planted.planted_registry()) as atlas:
            result = atlas.build_dataset(QUERY, out, limit=50)
        hits = naver.state.image_hits
    assert result.resumed and result.kept == 50
    assert sum(hits.values()) == len(hits) == 100, "each picture URL was requested once"
    assert all(hits[path] == 1 for path in first)
    assert not list((tmp_path / "home").rglob("downloads/*/*")), "download files are cleaned"


def _committed(db: Path) -> int:
    """Downloads the killed build had committed: files recorded, plus failed fetches."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            files = conn.execute(
                "SELECT count(*) FROM dataset_candidates WHERE path IS NOT NULL"
            ).fetchone()[0]
            failed = conn.execute("SELECT count(*) FROM items WHERE reason = 'http_error'")
            return int(files) + int(failed.fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_a_killed_build_resumes_without_fetching_a_delivered_picture_again(
    tmp_path: Path,
) -> None:
    catalogue = CATALOGUE()
    n = 25
    with planted.PlantedNaver(catalogue, QUERY, hold_after=n) as naver:
        env = {
            **os.environ, "CLIPATLAS_HOME": str(tmp_path / "home"), "CLIPATLAS_MODEL": "fake:64",
            "CLIPATLAS_WORKERS": "-1", "CLIPATLAS_FETCH_CONCURRENCY": "4",
            "CLIPATLAS_NAVER_BASE_URL": naver.api_url,
            "CLIPATLAS_NAVER_CLIENT_ID": naver.state.client_id,
            "CLIPATLAS_NAVER_CLIENT_SECRET": naver.state.client_secret,
        }  # fmt: skip
        args = [sys.executable, "-m", "clipatlas", "build-dataset", QUERY, "--limit", "40",
                "--out", str(tmp_path / "out"), "--allow-host", "127.0.0.1", "--json"]  # fmt: skip
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        db = None
        while time.monotonic() < deadline and proc.poll() is None:
            db = next((tmp_path / "home").rglob("clipatlas.db"), None)
            if db is not None and _committed(db) >= n:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        assert db is not None and _committed(db) == n, "the first N downloads were committed"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        delivered = dict(naver.served)
        held = sum(naver.state.image_hits.values()) - sum(delivered.values())
        assert sum(delivered.values()) == n and 1 <= held <= 4, "N sent, the rest in flight"
        naver.hold_after = None
        naver.release.set()
        rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        served = naver.served
    result = json.loads(rerun.stdout)
    assert result["resumed"] and result["candidates"] == 80
    assert all(served[path] == 1 for path in delivered), "no delivered picture was fetched again"
    assert max(served.values()) == 1 and sum(served.values()) == 80
