"""Figures for docs/reliability.md: the reliability tests ``record`` what they measured.

With ``CLIPATLAS_RELIABILITY_FIGURES=/path/figures.jsonl`` set, each call appends one JSON line
``{"test": ..., **figures}``; without it, nothing is written.
"""

from __future__ import annotations

import json
import os
import threading

__all__ = ["record"]

_LOCK = threading.Lock()


def record(test: str, **figures: object) -> None:
    path = os.environ.get("CLIPATLAS_RELIABILITY_FIGURES")
    if not path:
        return
    line = json.dumps({"test": test, **figures}, default=str, ensure_ascii=False)
    with _LOCK, open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
