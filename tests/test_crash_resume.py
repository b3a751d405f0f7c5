from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from clipatlas import Atlas
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs


def _ingest_proc(home: Path, folder: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLIPATLAS_HOME": str(home),
        "CLIPATLAS_MODEL": "fake:64",
        "CLIPATLAS_WORKERS": "1",
        "CLIPATLAS_BATCH_SIZE": "8",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "clipatlas", "ingest", str(folder), "-c", "crash", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_run_killed_with_sigkill_resumes_to_exactly_the_rows_of_a_clean_run(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    paths = write_good_jpegs(folder, 300, size=(160, 120))
    (folder / "copy-of-first.jpg").write_bytes(paths[0].read_bytes())
    (folder / "junk.jpg").write_bytes(b"{}")
    home = tmp_path / "home"
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = _ingest_proc(home, folder)
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    final = _ingest_proc(home, folder)
    assert final.wait(timeout=300) == 0
    assert kills >= 1, "the runs finished before any kill: make the workload bigger"

    settings = Settings(home=home, model="fake:64", workers=-1)
    with Atlas.open("crash", settings=settings) as atlas:
        stats = atlas.stats()
        items = atlas.store.get_items(atlas.collection, range(1, 100_000))
        index = atlas.index()
        ids, _ = atlas.store.load_vectors(atlas.collection)
        media = atlas.media_root
        db = atlas.directory / "clipatlas.db"
    assert (stats.stored, stats.vectors, stats.rejected) == (300, 300, 2)
    assert dict(stats.reasons) == {"duplicate": 1, "not_an_image": 1}
    assert len({it.source_key for it in items}) == len(items) == 302
    shas = [it.sha256 for it in items if it.status == "ok"]
    assert len(shas) == len(set(shas))
    assert np.array_equal(np.sort(index.ids), np.sort(ids))
    assert sorted(int(i) for i in ids) == sorted(it.id for it in items if it.status == "ok")
    assert not list(media.rglob(".tmp-*"))
    for it in items:
        if it.status == "ok":
            assert it.thumb_path and (media / it.thumb_path).is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_clean_rerun_after_crash_embeds_nothing_twice(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_good_jpegs(folder, 40, size=(64, 48))
    calls: list[int] = []
    with Atlas.open("count", settings=settings) as atlas:
        embedder = atlas.embedder()
        original = embedder.embed_pixels

        def counting(pixels: np.ndarray) -> np.ndarray:
            calls.append(len(pixels))
            if sum(calls) > 16:  # die after two committed batches
                raise KeyboardInterrupt
            return original(pixels)

        embedder.embed_pixels = counting  # type: ignore[method-assign]
        with contextlib.suppress(KeyboardInterrupt):
            atlas.ingest(folder)
        assert atlas.stats().vectors == 16
        embedder.embed_pixels = original  # type: ignore[method-assign]
        calls.clear()
        embedder.embed_pixels = lambda p: calls.append(len(p)) or original(p)  # type: ignore[method-assign]
        report = atlas.ingest(folder)
    assert (report.skipped, report.stored, sum(calls)) == (16, 24, 24)
