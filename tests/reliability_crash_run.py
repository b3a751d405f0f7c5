"""A process the crash tests kill: ``python -m tests.reliability_crash_run '<json config>'``.

It opens a collection, prints ``ready``, then runs one operation through the library, exactly
as the CLI would: ``ingest`` (a URL list), ``index`` (rebuild the on-disk vector index
``rounds`` times), ``cluster`` (KMeans runs stored one after another) or ``dataset`` (a
dataset build against the planted fake Naver of tests/dataset_planted.py), and prints
``done <json>``.

``pause_on``/``pause_at`` make a kill land at an exact moment: an audit hook (it only
watches, it changes nothing) sees every ``os.replace`` of a ``.tmp-`` file whose destination
contains ``pause_on``; at the ``pause_at``-th one it prints ``paused <destination>`` and
sleeps, so the parent kills it with the temp file written and not yet renamed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def _pause_hook(pause_on: str, pause_at: int) -> None:
    seen = {"n": 0}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "os.rename" or not args:
            return
        src, dst = str(args[0]), str(args[1])
        if ".tmp-" in Path(src).name and pause_on in dst:
            seen["n"] += 1
            if seen["n"] == pause_at:
                print(f"paused {dst}", flush=True)
                time.sleep(3600)

    sys.addaudithook(hook)


def _enospc_hook(marker: str) -> None:
    """Fail writes to paths containing ``marker`` the way a full disk does (for machines
    where no small tmpfs can be mounted)."""
    import errno
    import os
    import sqlite3

    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "sqlite3.connect" and args and marker in str(args[0]):
            raise sqlite3.OperationalError("database or disk is full")
        if event != "open" or not args or marker not in str(args[0]):
            return
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & writing
        ):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))

    sys.addaudithook(hook)


def _settings(config: dict[str, Any]) -> Any:
    from clipatlas.settings import Settings

    values: dict[str, Any] = {
        "home": config["home"],
        "model": config.get("model", "fake:64"),
        "workers": config.get("workers", 1),
        "batch_size": config.get("batch_size", 16),
        "allow_hosts": ["127.0.0.1"],
        "fetch_retries": 1,
        "database_url": None,
        **config.get("settings", {}),
    }
    return Settings(**values)


def main(config: dict[str, Any]) -> dict[str, Any]:
    from clipatlas import Atlas

    registry = None
    if config.get("registry") == "planted":
        from tests.dataset_planted import planted_registry

        registry = planted_registry()
    if config.get("enospc"):
        _enospc_hook(config["enospc"])
        config["workers"] = -1  # audit hooks do not reach spawned decode workers
    if config.get("pause_on"):
        _pause_hook(config["pause_on"], int(config.get("pause_at", 1)))
    mode = config["mode"]
    with Atlas.open(config["collection"], settings=_settings(config), registry=registry) as atlas:
        print("ready", flush=True)
        if mode == "ingest":
            source = atlas.source("urls", path=config["urls"])
            return atlas.ingest(source).as_dict()
        if mode == "index":
            for _ in range(int(config.get("rounds", 1))):
                for old in atlas.cache_dir.glob("*.npy"):
                    old.unlink()
                atlas._index = None
                atlas.index()
            return {"ids": len(atlas.index().ids)}
        if mode == "cluster":
            runs = [atlas.cluster(k=int(config.get("k", 8)), name=False).id]
            for _ in range(int(config.get("rounds", 1)) - 1):
                runs.append(atlas.cluster(k=int(config.get("k", 8)), name=False).id)
            return {"runs": runs}
        if mode == "dataset":
            built = atlas.build_dataset(config["query"], config["out"], limit=config["limit"])
            return {"kept": built.kept, "resumed": built.resumed}
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    from clipatlas.errors import ClipatlasError

    try:
        result = main(json.loads(sys.argv[1]))
    except ClipatlasError as exc:  # a typed error: what the CLI shows as one line
        print(f"error {type(exc).__name__} {' '.join(str(exc).split())}"[:2000], flush=True)
        sys.exit(3)
    except Exception as exc:
        print(f"untyped {type(exc).__name__} {' '.join(str(exc).split())}"[:2000], flush=True)
        sys.exit(4)
    print("done " + json.dumps(result, default=str), flush=True)
