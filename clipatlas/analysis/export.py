"""Export every item's metadata to CSV or Parquet, streamed page by page.

Columns: the item fields (:data:`BASE_COLUMNS`), ``meta`` as a JSON string, and one
``meta.<key>`` column per scalar key found in any item's meta (nested values stay in ``meta``
only). Two passes over the store, one page in memory at a time: the first finds the meta
columns (and, for Parquet, their types), the second writes rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipatlas.errors import ConfigError
from clipatlas.store.base import CollectionInfo, Item
from clipatlas.store.sql import SqlStore

__all__ = ["BASE_COLUMNS", "ExportReport", "export_items"]

BASE_COLUMNS = (
    "id",
    "source",
    "source_key",
    "uri",
    "status",
    "reason",
    "detail",
    "sha256",
    "phash",
    "format",
    "width",
    "height",
    "aspect",
    "sharpness",
    "size_bytes",
    "media_path",
    "thumb_path",
    "has_vector",
    "meta",
)
_STATUSES = ("ok", "rejected")
_SCALARS = (bool, int, float, str)

Pages = Callable[[], Iterator[list[Item]]]
Rowify = Callable[[Item], dict[str, Any]]


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    rows: int
    columns: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "rows": self.rows,
            "columns": list(self.columns),
        }


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(f"cannot export to {path.name!r}: use a .csv or .parquet file name")


def _meta_columns(pages: Pages) -> dict[str, set[type]]:
    """``meta.<key>`` -> the Python types of its scalar values, over every item."""
    found: dict[str, set[type]] = {}
    for page in pages():
        for item in page:
            for key, value in item.meta.items():
                if isinstance(value, _SCALARS) or value is None:
                    types = found.setdefault(f"meta.{key}", set())
                    if value is not None:
                        types.add(type(value))
    return dict(sorted(found.items()))


def _row(item: Item, media_root: Path, meta_columns: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        **item.scalars(),
        "media_path": str(media_root / item.media_path) if item.media_path else None,
        "thumb_path": str(media_root / item.thumb_path) if item.thumb_path else None,
        "meta": json.dumps(dict(item.meta), ensure_ascii=False, sort_keys=True, default=str),
    }
    for column in meta_columns:
        value = item.meta.get(column[5:])
        row[column] = value if isinstance(value, _SCALARS) else None
    return row


def _write_csv(path: Path, pages: Pages, columns: list[str], rowify: Rowify) -> int:
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for page in pages():
            writer.writerows(rowify(item) for item in page)
            rows += len(page)
    return rows


def _arrow_type(types: set[type]) -> Any:
    import pyarrow as pa

    if types == {bool}:
        return pa.bool_()
    if types == {int}:
        return pa.int64()
    if types and types <= {int, float}:
        return pa.float64()
    return pa.string()


def _write_parquet(
    path: Path, pages: Pages, meta_types: dict[str, set[type]], rowify: Rowify
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ints = {"id", "width", "height", "size_bytes"}
    floats = {"aspect", "sharpness"}
    fields = [
        pa.field(
            name,
            pa.int64()
            if name in ints
            else pa.float64()
            if name in floats
            else pa.bool_()
            if name == "has_vector"
            else pa.string(),
        )
        for name in BASE_COLUMNS
    ]
    fields += [pa.field(name, _arrow_type(types)) for name, types in meta_types.items()]
    schema = pa.schema(fields)
    string_meta = [n for n, t in meta_types.items() if _arrow_type(t) == pa.string()]
    rows = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for page in pages():
            records = [rowify(item) for item in page]
            for record in records:
                for name in string_meta:
                    if record[name] is not None:
                        record[name] = str(record[name])
            writer.write_batch(pa.RecordBatch.from_pylist(records, schema=schema))
            rows += len(page)
    return rows


def export_items(
    store: SqlStore,
    collection: CollectionInfo,
    path: Path,
    media_root: Path,
    *,
    status: str | None = None,
    page_size: int = 1000,
) -> ExportReport:
    """Write the items of ``collection`` (of ``status``, or all) to ``path`` (.csv/.parquet).

    The file is written beside its final name and renamed into
    place at the end, so a failed export leaves no half file.
    """
    fmt = _format_of(path)
    if status is not None and status not in _STATUSES:
        raise ConfigError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")

    def pages() -> Iterator[list[Item]]:
        return store.iter_items(collection, status=status, page_size=page_size)

    meta_types = _meta_columns(pages)
    columns = [*BASE_COLUMNS, *meta_types]
    meta_names = list(meta_types)

    def rowify(item: Item) -> dict[str, Any]:
        return _row(item, media_root, meta_names)

    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            rows = _write_csv(partial, pages, columns, rowify)
        else:
            rows = _write_parquet(partial, pages, meta_types, rowify)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportReport(path, fmt, rows, tuple(columns))
