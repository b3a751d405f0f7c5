"""Labelled pairs for calibration: ``.csv`` (header ``left,right,same``) or ``.jsonl``.

``left``/``right`` are record ids (``a``/``b`` are accepted too); ``same`` (or ``label``) is
1/0, true/false, yes/no or same/different. A row that cannot be read raises
:class:`~clipatlas.errors.CalibrationError` naming its line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipatlas.errors import CalibrationError

__all__ = ["LabelledPair", "read_pairs"]

_TRUE = {"1", "true", "yes", "same", "match", "y", "t"}
_FALSE = {"0", "false", "no", "different", "nomatch", "n", "f"}


@dataclass(frozen=True)
class LabelledPair:
    left: str
    right: str
    same: bool


def _pick(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


def _pair(row: Mapping[str, Any], source: str, line: int) -> LabelledPair:
    left, right = _pick(row, ("left", "a")), _pick(row, ("right", "b"))
    label = _pick(row, ("same", "label"))
    if left is None or right is None or label is None:
        raise CalibrationError(source, f"line {line}: needs left, right and same")
    text = str(label).strip().lower()
    if isinstance(label, bool):
        same = label
    elif text in _TRUE:
        same = True
    elif text in _FALSE:
        same = False
    else:
        raise CalibrationError(source, f"line {line}: label {label!r} is not 1/0 or true/false")
    return LabelledPair(str(left).strip(), str(right).strip(), same)


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, row
            return
        for line, text in enumerate(fh, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text)
                except ValueError:
                    yield line, None


def read_pairs(path: Path) -> list[LabelledPair]:
    source = str(path)
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise CalibrationError(source, "use a .csv or .jsonl file")
    try:
        rows = list(_rows(path))
    except OSError as exc:
        raise CalibrationError(source, exc.strerror or str(exc)) from None
    out = []
    for line, row in rows:
        if not isinstance(row, dict):
            raise CalibrationError(source, f"line {line}: not a JSON object")
        out.append(_pair(row, source, line))
    return out
