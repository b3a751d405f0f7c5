"""Soak: many more mutated files through the isolated decoder than CI's 10,000.

    PYTHONPATH=. .venv/bin/python scripts/soak/fuzz.py --files 200000 --seed 1

Prints one JSON line (tests/reliability_fuzz.py FuzzReport) and exits 1 on any crash, hang or
untyped exception; each failure names its index, replayed with ``mutate(seed, index)``.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.reliability_fuzz import MEMORY_LIMIT, run_fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per file")
    parser.add_argument("--memory-mb", type=int, default=MEMORY_LIMIT // 2**20)
    args = parser.parse_args()
    report = run_fuzz(
        args.files,
        args.seed,
        workers=args.workers,
        timeout=args.timeout,
        memory_limit=args.memory_mb * 2**20,
    )
    print(json.dumps({"test": "fuzz", "seed": args.seed, **report.as_dict()}), flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
