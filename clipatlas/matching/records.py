"""Records: read JSON Lines or CSV, validate each row into a :class:`Record`.

A record has an id, one or more text fields (which ones is configurable), and optionally a
category, a kind (e.g. ``lost``/``found``), a place name, coordinates, a time and a photo (a
local path, relative to the records file, or an http(s) URL). Which column holds what is a
:class:`RecordSpec`. Every other column is kept as ``meta``.

Validation never stops at the first bad row: :func:`read_records` returns the good records and
one typed error per bad row (missing id, neither text nor photo, an unparseable time or
coordinate, a duplicate id).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipatlas.errors import DuplicateRecordError, RecordError, RecordFieldError, SourceError

__all__ = ["Record", "RecordSpec", "parse_record", "read_records"]


@dataclass(frozen=True)
class RecordSpec:
    """Which column holds what (``None`` switches an optional field off)."""

    id_field: str = "id"
    text_fields: tuple[str, ...] = ("description",)
    category_field: str | None = "category"
    kind_field: str | None = "kind"
    place_field: str | None = "place"
    lat_field: str | None = "lat"
    lon_field: str | None = "lon"
    time_field: str | None = "time"
    photo_field: str | None = "photo"

    def used(self) -> set[str]:
        names = [
            self.id_field,
            *self.text_fields,
            self.category_field,
            self.kind_field,
            self.place_field,
            self.lat_field,
            self.lon_field,
            self.time_field,
            self.photo_field,
        ]
        return {n for n in names if n}


@dataclass
class Record:
    """One validated record (``photo``: a URL or an absolute path, or None)."""

    key: str
    fields: dict[str, str]
    text: str
    category: str | None = None
    kind: str | None = None
    place: str | None = None
    lat: float | None = None
    lon: float | None = None
    time: float | None = None
    photo: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    @property
    def photo_is_url(self) -> bool:
        return self.photo is not None and urlsplit(self.photo).scheme.lower() in ("http", "https")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def _parse_time(value: str, key: str, line: int | None) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordFieldError(
            key, "invalid_field", f"time {value!r} is not ISO 8601 or epoch seconds", line
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_coordinate(value: str, name: str, bound: float, key: str, line: int | None) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or abs(number) > bound:
        raise RecordFieldError(
            key,
            "invalid_field",
            f"{name} {value!r} is not a number in [-{bound:g}, {bound:g}]",
            line,
        )
    return number


def parse_record(
    row: Mapping[str, Any], spec: RecordSpec, *, base: Path | None = None, line: int | None = None
) -> Record:
    """Validate one row; raises :class:`RecordFieldError` naming the record and the field."""
    key = _text(row.get(spec.id_field))
    if key is None:
        raise RecordFieldError(
            f"line {line}" if line else "?", "missing_field", f"no {spec.id_field!r}", line
        )
    if len(key) > 500:
        raise RecordFieldError(key[:40] + "...", "invalid_field", "id longer than 500", line)
    fields = {name: t for name in spec.text_fields if (t := _text(row.get(name))) is not None}
    photo = _text(row.get(spec.photo_field)) if spec.photo_field else None
    if not fields and photo is None:
        wanted = " or ".join(repr(n) for n in (*spec.text_fields, spec.photo_field) if n)
        raise RecordFieldError(key, "missing_field", f"needs {wanted}", line)
    if photo is not None and urlsplit(photo).scheme.lower() not in ("http", "https"):
        if urlsplit(photo).scheme.lower() not in ("", "file") and len(urlsplit(photo).scheme) > 1:
            raise RecordFieldError(
                key, "invalid_field", f"photo {photo!r}: only http(s) URLs or local paths", line
            )
        path = Path(photo.removeprefix("file://")).expanduser()
        photo = str((base / path) if base is not None and not path.is_absolute() else path)

    def opt(name: str | None) -> str | None:
        return _text(row.get(name)) if name else None

    lat_text, lon_text = opt(spec.lat_field), opt(spec.lon_field)
    if (lat_text is None) != (lon_text is None):
        raise RecordFieldError(key, "invalid_field", "give both lat and lon, or neither", line)
    lat = _parse_coordinate(lat_text, "lat", 90, key, line) if lat_text is not None else None
    lon = _parse_coordinate(lon_text, "lon", 180, key, line) if lon_text is not None else None
    time_text = opt(spec.time_field)
    category = opt(spec.category_field)
    return Record(
        key=key,
        fields=fields,
        text=". ".join(fields.values()),
        category=category.lower() if category else None,
        kind=opt(spec.kind_field),
        place=opt(spec.place_field),
        lat=lat,
        lon=lon,
        time=_parse_time(time_text, key, line) if time_text is not None else None,
        photo=photo,
        meta={k: v for k, v in row.items() if k not in spec.used() and k is not None},
        line=line,
    )


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | None, str]]:
    suffix = path.suffix.lower()
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SourceError(f"cannot read records {path}: {exc.strerror or exc}") from None
    with fh:
        if suffix == ".csv":
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, row, ""
        elif suffix in (".jsonl", ".ndjson"):
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    yield line, None, f"not JSON: {exc}"
                    continue
                yield line, (obj if isinstance(obj, dict) else None), "not a JSON object"
        else:
            raise SourceError(f"records {path}: unknown extension {suffix!r} (use .jsonl or .csv)")


def read_records(
    path: str | Path, spec: RecordSpec | None = None
) -> tuple[list[Record], list[RecordError]]:
    """Every valid record of a ``.jsonl``/``.csv`` file, and one error per bad row."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"records file {path} does not exist or is not a file")
    spec = spec or RecordSpec()
    good: list[Record] = []
    errors: list[RecordError] = []
    seen: dict[str, int] = {}
    for line, row, problem in _rows(path):
        if row is None:
            errors.append(RecordFieldError(f"line {line}", "invalid_field", problem, line))
            continue
        try:
            record = parse_record(row, spec, base=path.parent, line=line)
        except RecordError as exc:
            errors.append(exc)
            continue
        if record.key in seen:
            errors.append(
                DuplicateRecordError(record.key, f"first seen on line {seen[record.key]}", line)
            )
            continue
        seen[record.key] = line
        good.append(record)
    return good, errors
