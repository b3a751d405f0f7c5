"""kill -9 at random moments (and mid-write), resume, and nothing is lost or duplicated.

The module fixture ingests 2,000 URLs from a local server and kills the run 20 times: 17 at
random moments, one while a thumbnail's temp file is written but not renamed, two while the
on-disk vector index is being written. The tests then check the recovered collection, and
kill clustering runs, a dataset build and a run that fills its disk.
scripts/soak.sh runs the same with more items and kills; figures in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clipatlas.images import decode_image
from tests.dataset_planted import PlantedNaver, planted_catalogue, planted_registry
from tests.reliability_crash import (
    PictureServer,
    check_collection,
    crash_ingest,
    finish,
    index_kills,
    kill_at_random,
    kill_main_only,
    kill_when_paused,
    processes_in_group,
    start,
    temp_files,
)
from tests.reliability_figures import record

ITEMS = 2_000
KILLS = 20
SEED = 11


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("crash")
    with PictureServer(ITEMS, latency=0.04) as server:
        urls = server.write_list(tmp / "urls.txt")
        run = crash_ingest(tmp / "home", server, urls, KILLS, SEED)
        yield {**run, "home": tmp / "home", "expected": server.expected, "urls": urls}


def test_2000_items_killed_20_times_resume_to_every_item_once_with_index_equal_to_table(
    crashed: dict[str, Any],
) -> None:
    check = check_collection(crashed["home"], "crash")
    expected = crashed["expected"]
    record("crash-ingest", items=ITEMS, kills=KILLS, landed=crashed["landed"],
           final=crashed["final"], fetches=crashed["fetches"], check=check.as_dict())  # fmt: skip
    assert crashed["landed"] == KILLS, "every kill must hit a running process"
    assert check.rows == ITEMS  # rows == unique (source, key) items
    assert check.stored == expected["ok"]
    assert check.reasons == {k: v for k, v in expected.items() if k != "ok"}
    assert check.duplicate_keys == check.duplicate_sha256 == 0
    assert check.vectors_match_rows and check.index_matches_table
    assert check.integrity == "ok"
    media_temps = [p for p in check.temp_files if not p.startswith("cache/")]
    assert media_temps == []
    assert check.undecodable == []
    # the mid-write kills really left a temp file written and not renamed
    assert any("/media/thumbs/" in p for p in crashed["paused"])
    assert sum("/cache/" in p for p in crashed["paused"]) == len(index_kills(KILLS))
    # committed work is not redone: the final run fetched only what was not yet stored
    assert crashed["final"]["skipped"] > 0


def test_a_kill_while_the_index_is_written_leaves_no_temp_file_after_recovery(
    crashed: dict[str, Any],
) -> None:
    cache = crashed["home"] / "collections" / "crash" / "cache"
    assert temp_files(cache) == []


def _runs(db: Path) -> list[tuple[int, int, int, int, int]]:
    """(id, n_items, n_clusters, label bytes, cluster rows) of every stored clustering run."""
    with sqlite3.connect(db) as conn:
        return [
            (int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in conn.execute(
                "SELECT r.id, r.n_items, r.n_clusters, length(r.labels), "
                "(SELECT count(*) FROM clusters c WHERE c.run_id = r.id) FROM cluster_runs r"
            )
        ]


def test_clustering_runs_killed_at_random_are_stored_whole_or_not_at_all(
    crashed: dict[str, Any],
) -> None:
    home = crashed["home"]
    db = home / "collections" / "crash" / "clipatlas.db"
    base = {"home": str(home), "collection": "crash", "mode": "cluster", "k": 8, "rounds": 40}
    rng = random.Random(SEED + 1)
    for _ in range(4):
        assert kill_at_random(start(base), rng.uniform(1.0, 4.0))
    done = finish(start({**base, "rounds": 1}))
    runs = _runs(db)
    record("crash-cluster", kills=4, runs=len(runs))
    assert done["runs"][0] in [r[0] for r in runs]
    for _run_id, n_items, n_clusters, label_bytes, cluster_rows in runs:
        assert n_items == crashed["expected"]["ok"]
        assert label_bytes == 4 * n_items  # int32 label per item
        assert cluster_rows == n_clusters == 8
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_dataset_build_killed_at_random_and_before_its_final_rename_resumes_to_50_pictures(
    tmp_path: Path,
) -> None:
    """Two kills at random while it lists, fetches and embeds; one with the export staged in
    its temp folder, just before the rename onto the output folder; then the resume."""
    catalogue = planted_catalogue(100)
    rng = random.Random(SEED + 2)
    out = tmp_path / "out"
    # a slow image host (200 ms a picture, 8 at a time: ~2.5 s of fetching), so the random
    # kills land while the build runs, not after it has finished
    with PlantedNaver(catalogue, "고양이", picture_delay=0.2) as naver:
        config = {
            "home": str(tmp_path / "home"),
            "collection": "cats",
            "mode": "dataset",
            "registry": "planted",
            "model": "planted:64",
            "workers": -1,
            "query": "고양이",
            "out": str(out),
            "limit": 50,
            "settings": {
                "naver_base_url": naver.api_url,
                "naver_client_id": naver.state.client_id,
                "naver_client_secret": naver.state.client_secret,
            },
        }
        landed = sum(kill_at_random(start(config), rng.uniform(0.5, 2.0)) for _ in range(2))
        paused = kill_when_paused(start({**config, "pause_on": str(out), "pause_at": 1}))
        staged = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-out-")]
        result = finish(start(config))
    record("crash-dataset", kills=landed + 1, result=result)
    assert landed == 2 and paused == str(out)
    assert len(staged) == 1, "the paused build had its export staged"
    assert (
        result["resumed"] and result["kept"] == 50
    )  # as a build never killed (test_dataset_build)
    assert len(list(out.glob("img_*.jpg"))) == 50
    for path in out.glob("img_*.jpg"):
        decode_image(path.read_bytes(), path.name)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    check = check_collection(tmp_path / "home", "cats", registry=planted_registry())
    assert check.duplicate_keys == check.duplicate_sha256 == 0
    assert check.rows == 100 and check.integrity == "ok" and check.index_matches_table
    assert [p for p in check.temp_files if not p.startswith("cache/")] == []


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[bool]:
    """A ``size`` tmpfs mounted at ``path`` (True), or nothing (False) where mounting is not
    allowed; then the runner simulates ENOSPC instead."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    mounted = bool(mount) and (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.mark.parametrize(("size", "target"), [("1m", "/media/"), ("300k", "/clipatlas.db")])
def test_a_full_disk_gives_a_typed_error_and_the_run_resumes_once_there_is_room(
    tmp_path: Path, size: str, target: str
) -> None:
    """A 1 MB disk fills up mid-run (media or database, whichever is first); a 300 KB disk
    cannot even hold the new database's tables."""
    home = tmp_path / "home"
    with PictureServer(100) as server, small_disk(home, size) as mounted:
        urls = server.write_list(tmp_path / "urls.txt")
        config: dict[str, Any] = {"home": str(home), "collection": "full", "urls": str(urls)}
        config["mode"] = "ingest"
        if not mounted:  # no tmpfs here: the runner's audit hook fails writes with ENOSPC
            config["enospc"] = target
        proc = start(config)
        lines = [line.strip() for line in proc.communicate(timeout=300)[0].splitlines()]
        assert proc.returncode == 3, lines  # 3: a typed error (4 would be an untyped one)
        assert lines[-1].startswith(("error MediaWriteError ", "error StoreError ")), lines
        assert "No space left on device" in lines[-1] or "disk is full" in lines[-1]
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(home)], check=True)
        else:
            config.pop("enospc")
        result = finish(start(config))
        check = check_collection(home, "full")
        record("disk-full", size=size, tmpfs=mounted, error=lines[-1][:160], resumed=result)
    assert result["stored"] > 0
    assert check.rows == 100 and check.stored == server.expected["ok"]
    assert check.duplicate_keys == check.duplicate_sha256 == 0
    assert check.integrity == "ok" and check.index_matches_table and check.undecodable == []
    assert [p for p in check.temp_files if not p.startswith("cache/")] == []


def test_decode_workers_exit_when_the_ingest_process_alone_is_killed(tmp_path: Path) -> None:
    with PictureServer(300, latency=0.04) as server:
        urls = server.write_list(tmp_path / "urls.txt")
        config = {"home": str(tmp_path / "home"), "collection": "orphans", "urls": str(urls),
                  "settings": {"fetch_concurrency": 2}}  # fmt: skip
        proc = start({**config, "mode": "ingest", "workers": 1})
        try:
            assert kill_main_only(proc, delay=2.0) > 0, "no decode worker was running"
            time.sleep(5.0)  # far longer than a worker needs to notice
            left = processes_in_group(proc.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert left == []


def test_a_media_write_error_survives_the_trip_back_from_a_decode_worker() -> None:
    import clipatlas.pipeline.decode  # noqa: F401 - registers the reduction
    from clipatlas.errors import MediaWriteError

    again = pickle.loads(pickle.dumps(MediaWriteError("/media", "No space left on device")))
    assert isinstance(again, MediaWriteError)
    assert (again.root, again.detail) == ("/media", "No space left on device")
