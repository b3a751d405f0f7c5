"""Web app under load: concurrent clients searching and browsing while an ingest job runs.

    .venv/bin/python bench/web_load.py [--items 100000] [--clients 50] [--duration 60]
        [--think 1.0] [--ingest 3000] [--database-url postgresql+psycopg://...]

Set-up (untimed): a collection of ``--items`` synthetic items (random unit vectors stored
exactly as ingested ones are, one shared thumbnail) bound to the ``fake:<dim>`` embedder, and
folders of ``--ingest`` generated JPEGs. Then ``clipatlas serve`` starts in its own process
(one job worker process) on 127.0.0.1, a small warm-up ingest runs (imports, decode pool), and
three phases run, each with a fresh ingest job of the same number of pictures:

1. and 3. the ingest job alone, before and after the load: its throughput (pictures/s) without
   clients (the mean of the two is the baseline, so a drifting machine load shows as their
   difference instead of biasing the drop);
2. ingest jobs one after another for the whole window, while ``--clients`` clients run for
   ``--duration`` seconds, each in a loop:
   wait a random think time (exponential, mean ``--think`` s), then one request chosen like a
   person browsing: text search (API, 40%), gallery page (25%: a random page by the cursor
   ``after=<id>`` the pager links use), item page (15%), thumbnail (15%), collection summary
   (5%). Each client holds one keep-alive connection through
   ``bench/lean_http.py`` (about 0.5 ms of CPU per request; httpx took about 3 ms, CPU taken
   from the ingest being measured, since real users run on their own machines).

Every timed job ingests the same ``--ingest`` pictures again after touching them (a changed
file is redone: its row replaced, the picture decoded, embedded and written again), so the
jobs do equal work and the ingest can run for the whole window without generating a picture
per second of it.

Reported: per request type count, p50/p95/p99 latency, errors (non-2xx or transport), the
"database is locked" lines in the server's log, the ingest throughput drop, and the CPU the
server process, the simulated clients and (with ``--database-url``) the PostgreSQL server used:
every ``postgres`` process on this machine, the backends that exited counted through their
parent's reaped-children time, so run it with no other PostgreSQL busy. Prints a
Markdown block for bench/RESULTS.md. Targets (issues 6 and 10): p95 < 300 ms, zero errors,
zero "database is locked", ingest throughput drop < 20%.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lean_http import Connection
from clipatlas import Atlas
from clipatlas.settings import Settings
from clipatlas.store.base import NewItem
from tests.corpus import textured_picture

TOKEN = "load-benchmark-token-0123456789"
WORDS = ("red", "green", "blue", "yellow", "white", "black", "cat", "dog", "sky", "car")
MIX = (("search", 0.40), ("gallery", 0.25), ("item", 0.15), ("thumb", 0.15), ("summary", 0.05))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_collection(settings: Settings, name: str, n: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with Atlas.open(name, settings=settings) as atlas:
        atlas.collection = atlas.store.bind_embedder(atlas.collection, f"fake:{dim}", dim)
        thumbs = atlas.media_root / "thumbs"
        thumbs.mkdir(parents=True, exist_ok=True)
        textured_picture(1, (128, 96)).save(thumbs / "shared.jpg", "JPEG", quality=85)
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            vectors = rng.standard_normal((count, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = [
                NewItem(
                    source="synthetic",
                    source_key=f"s{start + i:07d}",
                    uri=f"synthetic://{start + i}",
                    sha256=f"{start + i:064x}",
                    format="JPEG",
                    thumb_path="thumbs/shared.jpg",
                    width=640,
                    height=480,
                    aspect=640 / 480,
                    sharpness=200.0,
                    meta={"tags": [WORDS[(start + i) % 10]]},
                )
                for i in range(count)
            ]
            atlas.store.write_batch(atlas.collection, rows, vectors)
        atlas.index()  # warm the on-disk index cache, as a served collection would have


def make_pictures(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        textured_picture((seed, i), (384, 256)).save(folder / f"p{i:05d}.jpg", "JPEG", quality=85)


class Server:
    def __init__(self, home: Path, port: int, database_url: str | None, dim: int) -> None:
        env = {
            **os.environ,
            "CLIPATLAS_HOME": str(home),
            "CLIPATLAS_MODEL": f"fake:{dim}",
            "CLIPATLAS_WEB_TOKEN": TOKEN,
            "OMP_NUM_THREADS": "1",
        }
        if database_url:
            env["CLIPATLAS_DATABASE_URL"] = database_url
        self.log = open(home / "server.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipatlas", "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/collections", headers=_headers()).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not start: " + self.logs()[-2000:])

    def logs(self) -> str:
        self.log.flush()
        return (Path(self.log.name)).read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """User + system CPU time of every PostgreSQL server process here (live backends, and the
    exited ones through the postmaster's reaped-children time); 0 where there are none."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        if text[text.find("(") + 1 : text.rfind(")")] not in ("postgres", "postmaster"):
            continue
        fields = text.rpartition(")")[2].split()
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _headers() -> dict[str, str]:
    return {"X-Clipatlas-Token": TOKEN}


def submit_ingest(url: str, collection: str, folder: Path) -> tuple[int, float]:
    """Queue an ingest job and wait for it; (pictures stored, seconds from start to done)."""
    import httpx

    body = {"collection": collection, "kind": "ingest",
            "params": {"source": "folder", "options": {"root": str(folder)}}}  # fmt: skip
    job = httpx.post(f"{url}/api/jobs", json=body, headers=_headers(), timeout=30).json()
    path = f"{url}/api/jobs/{collection}/{job['id']}"
    while True:
        state = httpx.get(path, params={"logs": False}, headers=_headers(), timeout=30).json()
        if state["status"] in ("done", "failed", "cancelled", "interrupted"):
            break
        time.sleep(0.25)
    if state["status"] != "done":
        raise RuntimeError(f"ingest job ended {state['status']}: {state.get('error')}")
    seconds = float(state["finished_at"]) - float(state["started_at"])
    return int(state["result"]["stored"]), seconds


def reingest(url: str, collection: str, folder: Path) -> tuple[int, float]:
    """Touch every picture of ``folder`` and ingest it again: changed files are redone (old row
    replaced, decoded, embedded, written), so each job repeats the same full work."""
    now = time.time()
    for path in folder.iterdir():
        os.utime(path, (now, now))
    return submit_ingest(url, collection, folder)


async def client(
    conn: Connection, rng: random.Random, stop_at: float, think: float, n_items: int,
    out: list[Any],
) -> None:  # fmt: skip
    kinds, weights = zip(*MIX, strict=True)
    while time.monotonic() < stop_at:
        await asyncio.sleep(rng.expovariate(1.0 / think) if think > 0 else 0)
        kind = rng.choices(kinds, weights)[0]
        item = rng.randint(1, n_items)
        path = {
            "search": f"/api/collections/load/search?q={rng.choice(WORDS)}+cat&k=20",
            "gallery": f"/c/load?after={rng.randrange(0, n_items)}",
            "item": f"/c/load/items/{item}",
            "thumb": f"/api/collections/load/items/{item}/thumbnail",
            "summary": "/api/collections/load",
        }[kind]
        started = time.perf_counter()
        try:
            status, _ = await conn.get(path)
            ok = 200 <= status < 300
        except Exception as exc:  # transport errors count as errors
            ok, status = False, type(exc).__name__
        out.append((kind, time.perf_counter() - started, ok, status))


async def load(
    url: str, clients: int, duration: float, think: float, n_items: int
) -> tuple[list[Any], int]:
    """(rows, resends): each client holds one keep-alive connection (bench/lean_http.py)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns = [Connection(host, int(port), _headers()) for _ in range(clients)]
    out: list[Any] = []
    stop_at = time.monotonic() + duration
    await asyncio.gather(*(client(conns[i], random.Random(i), stop_at, think, n_items, out)
                           for i in range(clients)))  # fmt: skip
    for conn in conns:
        conn.close()
    return out, sum(c.resent for c in conns)


def summary(rows: list[Any]) -> list[tuple[str, int, float, float, float, int]]:
    table = []
    for kind in [k for k, _ in MIX] + ["all"]:
        mine = [r for r in rows if kind in ("all", r[0])]
        if not mine:
            continue
        ms = np.asarray([r[1] for r in mine]) * 1000
        errors = sum(1 for r in mine if not r[2])
        table.append((kind, len(mine), *(float(np.percentile(ms, p)) for p in (50, 95, 99)),
                      errors))  # fmt: skip
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--think", type=float, default=1.0)
    ap.add_argument("--ingest", type=int, default=3000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="clipatlas-load-"))
    atexit.register(shutil.rmtree, base, True)  # hundreds of MB: not left in /tmp
    home = base / "home"
    settings = Settings(home=home, model=f"fake:{args.dim}", database_url=args.database_url)
    t0 = time.perf_counter()
    make_collection(settings, "load", args.items, args.dim)
    make_pictures(base / "warm-up", 64, seed=0)
    make_pictures(base / "pictures", args.ingest, seed=1)
    setup = time.perf_counter() - t0
    pictures = base / "pictures"

    server = Server(home, free_port(), args.database_url, args.dim)
    try:
        server.wait()
        submit_ingest(server.url, "load", base / "warm-up")
        submit_ingest(server.url, "load", pictures)  # first ingest: every later one re-ingests
        stored_alone, seconds_alone = reingest(server.url, "load", pictures)
        rows: list[Any] = []
        loop_result: dict[str, Any] = {}

        def run_load() -> None:
            cpu = time.thread_time()
            loop_result["rows"], loop_result["resent"] = asyncio.run(
                load(server.url, args.clients, args.duration, args.think, args.items)
            )
            loop_result["client_cpu"] = time.thread_time() - cpu

        import threading

        thread = threading.Thread(target=run_load)
        web_cpu, db_cpu = cpu_seconds(server.proc.pid), postgres_cpu_seconds()
        load_started = time.monotonic()
        thread.start()
        time.sleep(min(5.0, args.duration / 4))  # the clients are running when the job starts
        stored_loaded, seconds_loaded, jobs = 0, 0.0, 0
        while jobs == 0 or time.monotonic() - load_started + seconds_loaded / jobs < args.duration:
            stored, seconds = reingest(server.url, "load", pictures)
            stored_loaded, seconds_loaded, jobs = (
                stored_loaded + stored,
                seconds_loaded + seconds,
                jobs + 1,
            )
        thread.join()
        web_cpu = cpu_seconds(server.proc.pid) - web_cpu
        db_cpu = postgres_cpu_seconds() - db_cpu
        load_seconds = time.monotonic() - load_started
        rows = loop_result["rows"]
        stored_after, seconds_after = reingest(server.url, "load", pictures)
        locked = server.logs().lower().count("database is locked")
    finally:
        server.stop()

    rate_before, rate_after = stored_alone / seconds_alone, stored_after / seconds_after
    rate_alone = (rate_before + rate_after) / 2
    rate_loaded = stored_loaded / seconds_loaded
    drop = 1 - rate_loaded / rate_alone
    backend = "PostgreSQL" if args.database_url else "SQLite"
    table = summary(rows)
    overall = next(t for t in table if t[0] == "all")
    print(f"### web_load ({time.strftime('%Y-%m-%d')}, {backend})\n")
    print(f"`.venv/bin/python bench/web_load.py --items {args.items} --clients {args.clients} "
          f"--duration {args.duration:g} --think {args.think:g} --ingest {args.ingest}"
          + (" --database-url ..." if args.database_url else "") + "`  ")  # fmt: skip
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.items:,} items x {args.dim}-d "
          f"(set-up {setup:.0f} s, untimed); clients with exponential think time, mean "
          f"{args.think:g} s; server: `clipatlas serve`, 1 job worker process\n")  # fmt: skip
    print("| request | count | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, count, p50, p95, p99, errors in table:
        print(f"| {kind} | {count} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {errors} |")
    print()
    print(f"- ingest alone: {stored_alone} pictures in {seconds_alone:.1f} s before the load "
          f"({rate_before:.1f}/s) and {stored_after} in {seconds_after:.1f} s after it "
          f"({rate_after:.1f}/s); under load: {stored_loaded} in {seconds_loaded:.1f} s "
          f"in {jobs} jobs ({rate_loaded:.1f}/s): throughput drop {drop:.0%} against their mean "
          "(target < 20%)")  # fmt: skip
    failed = Counter(f"{r[0]} {r[3]}" for r in rows if not r[2])
    if failed:
        print("- errors (request, status or transport error): "
              + ", ".join(f"{what} x{n}" for what, n in failed.most_common()))  # fmt: skip
    print(f'- "database is locked" in the server log: {locked}')
    print(f"- web server process CPU under load: {web_cpu:.1f} s in {load_seconds:.0f} s "
          f"({web_cpu / load_seconds:.2f} cores; {1000 * web_cpu / max(1, len(rows)):.1f} ms per "
          "request)")  # fmt: skip
    if args.database_url:
        share = db_cpu / load_seconds
        print(f"- PostgreSQL server processes under load (ingest and web together): "
              f"{db_cpu:.1f} s in {load_seconds:.0f} s ({share:.2f} cores)")  # fmt: skip
    client_cpu = loop_result["client_cpu"]
    print(f"- the {args.clients} simulated clients (bench/lean_http.py, same machine): "
          f"{client_cpu:.1f} s CPU ({client_cpu / load_seconds:.2f} cores; "
          f"{1000 * client_cpu / max(1, len(rows)):.2f} ms per request); "
          f"{loop_result['resent']} requests resent after an idle keep-alive close")  # fmt: skip
    verdict = overall[3] < 300 and overall[5] == 0 and locked == 0
    print(f"- p95 {overall[3]:.0f} ms overall, {overall[5]} errors: target p95 < 300 ms, zero "
          f"errors, zero locks: {'met' if verdict else 'NOT met'}")  # fmt: skip
    sys.exit(0)


if __name__ == "__main__":
    main()
