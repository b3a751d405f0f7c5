"""Kill -9 and resume: a local picture server, the kill loop and the invariants checked after.

* :class:`PictureServer` serves ``n`` distinct small JPEGs at ``/p/<i>.jpg`` on 127.0.0.1,
  plus a few that must be rejected (404s, an HTML page, byte-identical copies);
* :func:`start` / :func:`kill_at_random` / :func:`kill_when_paused` / :func:`finish` drive
  :mod:`tests.reliability_crash_run` processes (own process group: the decode workers die too);
  :func:`crash_ingest` kills an ingest ``kills`` times (random moments, mid-thumbnail and
  mid-index writes) and lets the last run finish;
* :func:`check_collection` checks everything the issue asks of a recovered collection and
  returns the figures for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipatlas import Atlas
from clipatlas.images import decode_image
from clipatlas.images.hashing import sha256_hex
from clipatlas.settings import Settings
from tests.local_server import LoopbackServer

__all__ = [
    "CollectionCheck",
    "PictureServer",
    "check_collection",
    "crash_ingest",
    "finish",
    "index_kills",
    "kill_at_random",
    "kill_main_only",
    "kill_when_paused",
    "processes_in_group",
    "start",
]

ROOT = Path(__file__).resolve().parent.parent


def _picture(i: int) -> bytes:
    rng = np.random.default_rng([7, i])
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((64, 48), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        stem = self.path.rsplit("/", 1)[-1].split(".")[0]
        answer = self.server.answers.get(int(stem)) if stem.isdigit() else None
        with self.server.lock:
            self.server.hits[self.path] += 1
        if self.server.latency:
            time.sleep(self.server.latency)
        status, body, ctype = answer or (404, b"not found", "text/plain")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # a killed ingest hangs up mid-answer
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, answers: dict[int, tuple[int, bytes, str]]) -> None:
        import threading

        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.latency = 0.0
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()


class PictureServer(LoopbackServer):
    """``n`` URLs: every 97th a 404, every 89th an HTML page, every 83rd a copy of the one
    before it (a duplicate by content), the rest distinct JPEGs."""

    def __init__(self, n: int, latency: float = 0.0) -> None:
        """``latency`` seconds before each answer: with few concurrent fetches it keeps an
        ingest slower than the kill schedule however fast the machine (a run that finished
        before its kill made the crash tests flaky on a quiet CI machine)."""
        answers: dict[int, tuple[int, bytes, str]] = {}
        self.expected: Counter[str] = Counter()
        for i in range(n):
            if i % 97 == 96:
                answers[i] = (404, b"gone", "text/plain")
                self.expected["http_error"] += 1
            elif i % 89 == 88:
                answers[i] = (200, b"<!doctype html><p>login</p>", "text/html")
                self.expected["not_an_image"] += 1
            elif i % 83 == 82 and answers[i - 1][2] == "image/jpeg":
                answers[i] = answers[i - 1]
                self.expected["duplicate"] += 1
            else:
                answers[i] = (200, _picture(i), "image/jpeg")
                self.expected["ok"] += 1
        self.n = n
        self._pictures = _Server(answers)
        self._pictures.latency = latency
        super().__init__(self._pictures)

    @property
    def hits(self) -> Counter[str]:
        return self._pictures.hits

    def write_list(self, path: Path) -> Path:
        path.write_text("".join(f"{self.origin}/p/{i}.jpg\n" for i in range(self.n)))
        return path


# -- driving the processes ------------------------------------------------------------------


def start(config: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability_crash_run", json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,  # its own process group: killpg reaches the decode workers
    )


def _line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], timeout)[0]:
        return None
    return proc.stdout.readline() or None


def _kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL the whole process group; True if it was still running."""
    alive = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return alive


def kill_at_random(proc: subprocess.Popen[str], delay: float, ready_timeout: float = 120) -> bool:
    """Kill ``delay`` seconds after the process said ``ready``; True if it was still working."""
    line = _line(proc, ready_timeout)
    if line is None or not line.startswith("ready"):
        _kill(proc)
        raise AssertionError(f"crash runner did not start: {line!r}")
    time.sleep(delay)
    return _kill(proc)


def processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def kill_main_only(proc: subprocess.Popen[str], delay: float, ready_timeout: float = 120) -> int:
    """SIGKILL only the runner's own pid ``delay`` s after ``ready`` (its children live on);
    how many other processes its group had then."""
    line = _line(proc, ready_timeout)
    if line is None or not line.startswith("ready"):
        _kill(proc)
        raise AssertionError(f"crash runner did not start: {line!r}")
    time.sleep(delay)
    # on a busy machine the decode pool may take longer than ``delay`` to start: wait for it
    deadline = time.monotonic() + 60
    others = [pid for pid in processes_in_group(proc.pid) if pid != proc.pid]
    while not others and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        others = [pid for pid in processes_in_group(proc.pid) if pid != proc.pid]
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return len(others)


def kill_when_paused(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """Kill the process once it paused before a rename; the destination it was writing."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = _line(proc, end - time.monotonic())
        if line is None:
            break
        if line.startswith("paused "):
            _kill(proc)
            return line.split(" ", 1)[1].strip()
    _kill(proc)
    raise AssertionError("the runner never reached the rename it was to pause at")


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    """Wait for a run to complete; its ``done`` result."""
    end = time.monotonic() + timeout
    result: dict[str, Any] | None = None
    last = ""
    while time.monotonic() < end:
        line = _line(proc, end - time.monotonic())
        if line is None:
            break
        last = line.strip()
        if line.startswith("done "):
            result = json.loads(line[5:])
            break
    code = proc.wait(timeout=max(1.0, end - time.monotonic()))
    if proc.stdout is not None:
        proc.stdout.close()
    if result is None or code != 0:
        raise AssertionError(f"the resumed run failed (exit {code}): {last[:500]}")
    return result


def index_kills(kills: int) -> set[int]:
    """Kill numbers that land while the vector index is written: the 10th and 16th of 20."""
    return {k for k in range(kills) if k % 20 in (9, 15)}


def media_kills(kills: int) -> set[int]:
    """Kill numbers that land while a thumbnail is written: the 6th of every 20."""
    return {k for k in range(kills) if k % 20 == 5}


def crash_ingest(
    home: Path, server: PictureServer, urls: Path, kills: int, seed: int
) -> dict[str, Any]:
    """Kill an ingest ``kills`` times, then let it finish; what happened at each kill."""
    rng = random.Random(seed)
    on_index, on_media = index_kills(kills), media_kills(kills)
    base = {"home": str(home), "collection": "crash", "urls": str(urls), "workers": 1,
            "settings": {"fetch_concurrency": 2}}  # fmt: skip
    landed, paused = 0, []
    for kill in range(kills):
        if kill in on_index:
            config = {**base, "mode": "index", "rounds": 50, "pause_on": "/cache/"}
            paused.append(kill_when_paused(start({**config, "pause_at": rng.randint(1, 2)})))
            landed += 1
        elif kill in on_media:
            config = {**base, "mode": "ingest", "workers": -1, "pause_on": "/media/thumbs/"}
            paused.append(kill_when_paused(start({**config, "pause_at": rng.randint(5, 40)})))
            landed += 1
        else:
            landed += kill_at_random(start({**base, "mode": "ingest"}), rng.uniform(0.3, 2.5))
    hits_before_final = sum(server.hits.values())
    result = finish(start({**base, "mode": "ingest"}))
    return {
        "landed": landed,
        "paused": paused,
        "final": result,
        "fetches": sum(server.hits.values()),
        "fetches_before_final": hits_before_final,
    }


# -- what a recovered collection must look like ----------------------------------------------


@dataclass
class CollectionCheck:
    rows: int = 0
    stored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    duplicate_keys: int = 0
    duplicate_sha256: int = 0
    index_matches_table: bool = False
    vectors_match_rows: bool = False
    integrity: str = ""
    temp_files: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reasons": dict(self.reasons)}


def temp_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob(".tmp-*"))


def check_collection(home: Path, name: str, registry: Any = None) -> CollectionCheck:
    """Everything that must hold after kills and a final resume (read-only apart from the
    index, which is derived and rebuilt when stale)."""
    settings = Settings(home=home, model="fake:64", workers=-1, database_url=None)
    check = CollectionCheck()
    with Atlas.open(name, settings=settings, registry=registry, create=False) as atlas:
        items = [it for page in atlas.store.iter_items(atlas.collection) for it in page]
        index = atlas.index()
        ids, _ = atlas.store.load_vectors(atlas.collection)
        media, directory = atlas.media_root, atlas.directory
    check.rows = len(items)
    ok = [it for it in items if it.status == "ok"]
    check.stored = len(ok)
    check.reasons = Counter(it.reason or "" for it in items if it.status != "ok")
    keys = Counter((it.source, it.source_key) for it in items)
    check.duplicate_keys = sum(n - 1 for n in keys.values())
    shas = Counter(it.sha256 for it in ok)
    check.duplicate_sha256 = sum(n - 1 for n in shas.values())
    ok_ids = sorted(it.id for it in ok)
    check.vectors_match_rows = sorted(int(i) for i in ids) == ok_ids
    check.index_matches_table = sorted(int(i) for i in index.ids) == ok_ids
    with sqlite3.connect(directory / "clipatlas.db") as conn:
        check.integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    check.temp_files = temp_files(directory)
    for it in ok:
        for rel in (it.thumb_path, it.media_path):
            if not rel:
                continue
            try:
                data = (media / rel).read_bytes()
                decode_image(data, rel)
            except Exception as exc:
                check.undecodable.append(f"{rel}: {exc}")
                continue
            if rel == it.media_path and sha256_hex(data) != it.sha256:
                check.undecodable.append(f"{rel}: sha256 differs from its row")
    return check
