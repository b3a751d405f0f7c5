"""Gallery paging at depth: a page deep in a 100k collection by cursor vs. the first page.

    .venv/bin/python bench/gallery_paging.py [--items 100000] [--repeats 200] [--postgres]

Set-up (untimed): a collection of ``--items`` synthetic items (as bench/web_load.py makes it:
stored rows with vectors, one shared thumbnail). Then, for SQLite and (with ``--postgres``) a
private PostgreSQL 15 cluster started like the tests' (``tests/pg_server.LocalPostgres``), the
item list the gallery and ``GET /api/collections/{name}/items`` use (``browse.list_items``,
60 items a page, the collection's counts cached as under ``clipatlas serve``) is timed at five
depths: the first page, pages 10%, 50% and 99% deep reached by the pager's cursor
(``after=<id>``), and the same deep pages by ``offset=`` (what the gallery did before keyset
paging). Each position is asked ``--repeats`` times in a shuffled order; the median and p95 of
the wall time are reported, and the ratio of each to the first page.

Target (issue 20): a page deep in a 100k gallery as fast as the first.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.web_load import make_collection
from clipatlas import Atlas
from clipatlas.settings import Settings
from clipatlas.web import browse

PAGE = 60
DEPTHS = (0.10, 0.50, 0.99)


def measure(settings: Settings, repeats: int, seed: int = 0) -> list[tuple[str, float, float]]:
    """(position, median ms, p95 ms) for the first page and each depth by cursor and offset."""
    with Atlas.open("load", settings=settings, create=False) as atlas:
        total = browse.list_items(atlas, limit=PAGE).total
        positions: dict[str, dict[str, int]] = {"first page": {}}
        for depth in DEPTHS:
            offset = int(total * depth) // PAGE * PAGE
            # the cursor that reaches the page at ``offset``: the id just before it
            after = browse.list_items(atlas, offset=offset - 1, limit=1).items[0].id
            positions[f"{depth:.0%} deep by cursor (after=)"] = {"after": after}
            positions[f"{depth:.0%} deep by offset="] = {"offset": offset}
        for depth in DEPTHS:  # a cursor reaches the very page the offset does
            by_cursor = positions[f"{depth:.0%} deep by cursor (after=)"]
            by_offset = positions[f"{depth:.0%} deep by offset="]
            same = [
                [it.id for it in browse.list_items(atlas, limit=PAGE, **a).items]
                for a in (by_cursor, by_offset)
            ]
            assert same[0] == same[1] and len(same[0]) == PAGE, depth
        order = [name for name in positions for _ in range(repeats)]
        random.Random(seed).shuffle(order)
        times: dict[str, list[float]] = {name: [] for name in positions}
        for name in order:
            started = time.perf_counter()
            got = browse.list_items(atlas, limit=PAGE, **positions[name])
            times[name].append(time.perf_counter() - started)
            assert len(got.items) == PAGE
    return [
        (name, 1000 * statistics.median(ts), 1000 * sorted(ts)[int(0.95 * (len(ts) - 1))])
        for name, ts in times.items()
    ]


def report(backend: str, rows: list[tuple[str, float, float]]) -> None:
    first = rows[0][1]
    print(f"\n{backend}\n")
    print("| page | median ms | p95 ms | median vs. first page |")
    print("|---|---:|---:|---:|")
    for name, median, p95 in rows:
        print(f"| {name} | {median:.2f} | {p95:.2f} | {median / first:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="clipatlas-paging-"))
    print(f"### gallery_paging ({time.strftime('%Y-%m-%d')})\n")
    print(f"`.venv/bin/python bench/gallery_paging.py --items {args.items} --repeats "
          f"{args.repeats}{' --postgres' if args.postgres else ''}`  ")  # fmt: skip
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.items:,} items; {PAGE} items a "
          f"page; {args.repeats} requests per position, shuffled")  # fmt: skip
    try:
        backends: list[tuple[str, str | None]] = [("SQLite", None)]
        pg = None
        if args.postgres:
            from tests.pg_server import LocalPostgres

            (base / "pg").mkdir()
            pg = LocalPostgres(base / "pg")
            backends.append(("PostgreSQL 15 (same machine, fsync off)", pg.url))
        try:
            for name, url in backends:
                home = base / name.split()[0].lower()
                settings = Settings(
                    home=home, model="fake:512", database_url=url, index_staleness=30.0
                )
                make_collection(settings, "load", args.items, 512)
                report(name, measure(settings, args.repeats))
        finally:
            if pg is not None:
                pg.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
