"""ANN index refresh while a collection grows: catching up an earlier ANN index vs rebuilding.

    .venv/bin/python bench/ann_refresh.py [--n 300000] [--dim 512] [--batch 3000]

A served collection refreshes its index every ``index_staleness`` seconds while an ingest
writes. Above the ANN threshold the index cache used to rebuild the ANN index from scratch on
every refresh; now an ANN index of an earlier state keeps serving (the rows written since are
searched exactly beside it) until more than ``AnnConfig.catch_up_limit`` (5%) of the rows
are not covered, then it is rebuilt.

Set-up (untimed): a SQLite collection of ``--n`` synthetic vectors structured like image
embeddings (``bench/search_scale.py``'s generator). Then, through ``load_index`` exactly as
``Atlas.index()`` calls it (IVF-PQ forced, as the size rule picks from 500k):
1. the first index: flat file + ANN build;
2. ``--batch`` new rows written, refreshed: seconds, whether the ANN index was rebuilt,
   recall@10 against exact search and p50 per query on 200 held-out queries;
3. rows written until more than 5% are new, refreshed: the rebuild's seconds;
4. ``--batch`` more rows, the exact rows alone refreshed (no ANN index): the part of a
   refresh that is not the ANN index's.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_scale import generate
from clipatlas.index.ann import AnnConfig, AnnIndex
from clipatlas.index.cache import load_index
from clipatlas.store.base import NewItem
from clipatlas.store.sql import SqlStore, sqlite_url


def write(store: SqlStore, vectors: np.ndarray, start: int) -> None:
    collection = store.get_collection("c")
    for at in range(0, len(vectors), 5000):
        chunk = vectors[at : at + 5000]
        rows = [
            NewItem(source="synthetic", source_key=f"s{start + at + i}",
                    uri=f"synthetic://{start + at + i}", sha256=f"{start + at + i:064x}")
            for i in range(len(chunk))
        ]  # fmt: skip
        store.write_batch(collection, rows, chunk.astype(np.float32))


def timed(store: SqlStore, cache: Path, config: AnnConfig) -> tuple[AnnIndex, float]:
    started = time.perf_counter()
    index = load_index(store, store.get_collection("c"), cache, config)
    assert isinstance(index, AnnIndex)
    return index, time.perf_counter() - started


def quality(index: AnnIndex, queries: np.ndarray) -> tuple[float, float]:
    """(recall@10 against exact search, p50 ms per query)."""
    _, truth = index.search_exact(queries, 10)
    took, found = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(index.search(q[None], 10)[1][0])
        took.append(time.perf_counter() - started)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    return float(recall), 1000 * statistics.median(took)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=3000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clipatlas-annrefresh-"))
    atexit.register(shutil.rmtree, work, True)  # hundreds of MB: not left in /tmp
    store = SqlStore(sqlite_url(work / "c.db"))
    store.bind_embedder(store.ensure_collection("c"), f"fake:{args.dim}", args.dim)
    pool = generate(args.n + args.n // 10 + 2 * args.batch + 200, args.dim, seed=1)
    queries = pool[-200:].astype(np.float32)
    t0 = time.perf_counter()
    write(store, pool[: args.n], 0)
    setup = time.perf_counter() - t0
    config = AnnConfig(threshold=1, kind="ivf")
    cache = work / "cache"

    first, first_s = timed(store, cache, config)
    write(store, pool[args.n : args.n + args.batch], args.n)
    caught, caught_s = timed(store, cache, config)
    rebuilt_small = caught.recent is None
    recall, p50 = quality(caught, queries)
    fresh_recall, fresh_p50 = quality(first, queries)
    more = args.n // 10 - args.batch + 1
    write(store, pool[args.n + args.batch : args.n + args.batch + more], args.n + args.batch)
    rebuilt, rebuilt_s = timed(store, cache, config)
    start = args.n + args.batch + more  # the exact rows' own share of a refresh: the same
    write(store, pool[start : start + args.batch], start)  # batch, the ANN index left out
    started = time.perf_counter()
    load_index(store, store.get_collection("c"), cache, AnnConfig(threshold=0))
    exact_s = time.perf_counter() - started

    print(f"### ann_refresh ({time.strftime('%Y-%m-%d')})\n")
    print(f"`.venv/bin/python bench/ann_refresh.py --n {args.n} --dim {args.dim} "
          f"--batch {args.batch}`  ")  # fmt: skip
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.n:,} x {args.dim}-d in SQLite "
          f"(set-up {setup:.0f} s, untimed); IVF-PQ\n")  # fmt: skip
    print("| step | seconds | ANN rebuilt | rows searched exactly | recall@10 | p50 ms/query |")
    print("|---|---:|---|---:|---:|---:|")
    print(f"| first index (flat file + ANN build) | {first_s:.1f} | yes | 0 | "
          f"{fresh_recall:.3f} | {fresh_p50:.2f} |")  # fmt: skip
    print(f"| +{args.batch:,} rows, refresh | {caught_s:.1f} | "
          f"{'yes' if rebuilt_small else 'no'} | "
          f"{0 if caught.recent is None else len(caught.recent):,} | {recall:.3f} | "
          f"{p50:.2f} |")  # fmt: skip
    print(f"| +{more:,} more rows (over 5% new), refresh | {rebuilt_s:.1f} | "
          f"{'yes' if rebuilt.recent is None else 'no'} | "
          f"{0 if rebuilt.recent is None else len(rebuilt.recent):,} | | |")  # fmt: skip
    print(f"| +{args.batch:,} rows, refresh of the exact rows alone (no ANN index) | "
          f"{exact_s:.1f} | | | | |")  # fmt: skip
    print(
        "\n(recall@10 and p50 of the first index: on the same held-out queries, before the "
        "new rows)"
    )
    store.close()


if __name__ == "__main__":
    main()
