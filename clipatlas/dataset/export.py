"""Export stage: pictures and manifests written to a temp folder, renamed into place at the end.

``DIR/img_0001.jpg ...`` (the original bytes when the picture is a JPEG, else re-encoded as
JPEG quality 95), ``manifest.jsonl`` (one JSON object per picture), ``manifest.parquet`` (the
same rows), optionally ``metadata.jsonl`` for Hugging Face ``datasets`` (``imagefolder``:
``load_dataset("imagefolder", data_dir=DIR)``), and ``report.html``. Nothing appears under
``DIR`` until everything is written: the temp folder (``.tmp-<name>-*`` beside it) is renamed
over it, and an existing folder is only replaced with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipatlas.atomic import TEMP_PREFIX
from clipatlas.dataset.naming import image_name, safe_name
from clipatlas.errors import DatasetExistsError, DatasetOutputError, ImageError
from clipatlas.images import decode_image
from clipatlas.store.base import Item

__all__ = [
    "MANIFEST_FIELDS",
    "ExportFile",
    "check_output",
    "dropped_rows",
    "finalize",
    "staging",
    "write_dropped",
    "write_files",
]

MANIFEST_FIELDS = (
    "query",
    "file",
    "source",
    "url",
    "sha256",
    "width",
    "height",
    "sharpness",
    "cluster",
    "query_similarity",
    "relevance",
    "title",
    "rank",
    "item_id",
    "format",
)


@dataclass
class ExportFile:
    position: int
    item: Item
    local_path: Path | None  # the original on disk (folder sources without a media copy)
    scores: dict[str, Any]


def dropped_rows(outcomes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``dropped.jsonl`` rows: each dropped candidate, its origin, stage, reason, scores."""
    return [
        {
            "position": r["position"],
            "rank": (r["meta"] or {}).get("rank"),
            "source": r["source"],
            "url": r["uri"],
            "title": (r["meta"] or {}).get("title"),
            "item_id": r["item_id"],
            "stage": r["stage"],
            "reason": r["reason"],
            "detail": r["detail"],
            "scores": r["scores"] or {},
        }
        for r in outcomes
        if r["outcome"] == "dropped"
    ]


def write_dropped(folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``dropped.jsonl`` beside ``manifest.jsonl``: one JSON object per dropped candidate."""
    lines = (json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    (folder / "dropped.jsonl").write_text("".join(lines), encoding="utf-8")


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse early (before any work) an output that exists or cannot be written."""
    if out.exists() and not out.is_dir():
        raise DatasetOutputError(str(out), "a file of that name exists")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DatasetExistsError(str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=out.parent, prefix=f"{TEMP_PREFIX}{out.name}-probe-")
        os.rmdir(probe)
    except OSError as exc:
        raise DatasetOutputError(str(out), exc.strerror or str(exc)) from None


def staging(out: Path) -> Path:
    """A fresh temp folder beside ``out``; :func:`finalize` renames it over ``out``.

    Staging folders that a killed build of the same ``out`` left behind (``mkdtemp`` names:
    the prefix and 8 characters) are removed first; a resumed build starts its export over.
    """
    stale = re.compile(re.escape(f"{TEMP_PREFIX}{out.name}-") + r"[a-z0-9_]{8}")
    with contextlib.suppress(OSError):
        for old in out.parent.iterdir():
            if stale.fullmatch(old.name) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    try:
        return Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{TEMP_PREFIX}{out.name}-"))
    except OSError as exc:
        raise DatasetOutputError(str(out), exc.strerror or str(exc)) from None


def _picture_bytes(f: ExportFile, media_root: Path) -> bytes:
    if f.item.media_path:
        return (media_root / f.item.media_path).read_bytes()
    return (f.local_path or Path(f.item.uri)).read_bytes()


def _as_jpeg(data: bytes, f: ExportFile) -> bytes:
    if f.item.format == "JPEG":
        return data
    picture = decode_image(data, f.item.uri).image
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _manifest_row(query: str, name: str, f: ExportFile) -> dict[str, Any]:
    meta = f.item.meta
    return {
        "query": query,
        "file": name,
        "source": f.item.source,
        "url": f.item.uri,
        "sha256": f.item.sha256,
        "width": f.item.width,
        "height": f.item.height,
        "sharpness": f.scores.get("sharpness"),
        "cluster": f.scores.get("cluster"),
        "query_similarity": f.scores.get("query_similarity"),
        "relevance": f.scores.get("relevance"),
        "title": meta.get("title"),
        "rank": meta.get("rank"),
        "item_id": f.item.id,
        "format": f.item.format,
    }


def write_files(
    staged: Path,
    files: Sequence[ExportFile],
    *,
    query: str,
    media_root: Path,
    parquet: bool,
    hf_metadata: bool,
    tick: Callable[[int], None],
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Pictures + manifests into ``staged``; returns the manifest rows and the pictures that
    could not be read back (position, why), which are left out."""
    rows: list[dict[str, Any]] = []
    failed: list[tuple[int, str]] = []
    for f in files:
        name = image_name(len(rows) + 1, len(files), "jpg")
        try:
            data = _as_jpeg(_picture_bytes(f, media_root), f)
        except (OSError, ImageError) as exc:
            failed.append((f.position, f"cannot read the stored picture: {exc}"))
            continue
        (staged / name).write_bytes(data)
        rows.append(_manifest_row(query, name, f))
        tick(len(rows))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (staged / "manifest.jsonl").write_text(lines, encoding="utf-8")
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows) if rows else pa.table({k: [] for k in MANIFEST_FIELDS})
        pq.write_table(table, staged / "manifest.parquet")
    if hf_metadata:
        hf = "".join(
            json.dumps(
                {"file_name": r["file"], **{k: v for k, v in r.items() if k != "file"}},
                ensure_ascii=False,
            )
            + "\n"
            for r in rows
        )
        (staged / "metadata.jsonl").write_text(hf, encoding="utf-8")
    return rows, failed


def finalize(staged: Path, out: Path, overwrite: bool) -> None:
    """Rename ``staged`` to ``out``; an existing ``out`` goes only with ``overwrite``."""
    trash: Path | None = None
    try:
        if out.exists():
            if any(out.iterdir()) and not overwrite:
                raise DatasetExistsError(str(out))
            trash = out.parent / f"{TEMP_PREFIX}{safe_name(out.name)}-old-{os.getpid()}"
            os.replace(out, trash)
        os.replace(staged, out)
    except OSError as exc:
        if trash is not None and not out.exists():
            with contextlib.suppress(OSError):
                os.replace(trash, out)
        raise DatasetOutputError(str(out), exc.strerror or str(exc)) from None
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def discard(staged: Path | None) -> None:
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)
