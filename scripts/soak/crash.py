"""Soak: kill -9 an ingest many more times than CI's 20, then check the collection.

    PYTHONPATH=. .venv/bin/python scripts/soak/crash.py --items 2000 --kills 100 --seed 1

Kills land at random moments, and every 20 kills one lands mid-thumbnail and two mid-index
write (tests/reliability_crash.py). Prints one JSON line; exits 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.reliability_crash import PictureServer, check_collection, crash_ingest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="clipatlas-soak-") as tmp,
        PictureServer(args.items) as server,
    ):
        home = Path(tmp) / "home"
        urls = server.write_list(Path(tmp) / "urls.txt")
        run = crash_ingest(home, server, urls, args.kills, args.seed)
        check = check_collection(home, "crash")
        expected = server.expected
    failures = []
    if run["landed"] != args.kills:
        failures.append(f"only {run['landed']} of {args.kills} kills hit a running process")
    if check.rows != args.items or check.stored != expected["ok"]:
        failures.append(f"rows {check.rows}/{args.items}, stored {check.stored}/{expected['ok']}")
    if check.duplicate_keys or check.duplicate_sha256:
        failures.append("duplicates")
    if not (check.vectors_match_rows and check.index_matches_table):
        failures.append("index or vectors differ from the table")
    if check.integrity != "ok":
        failures.append(f"integrity_check: {check.integrity}")
    media_temps = [p for p in check.temp_files if not p.startswith("cache/")]
    if media_temps or check.undecodable:
        failures.append(f"temp files {media_temps[:5]}, undecodable {check.undecodable[:5]}")
    result = {
        "test": "crash",
        "items": args.items,
        "kills": args.kills,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "cache_temp_files": len([p for p in check.temp_files if p.startswith("cache/")]),
        "check": check.as_dict() | {"temp_files": len(check.temp_files)},
        "failures": failures,
    }
    print(json.dumps(result, default=str), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
