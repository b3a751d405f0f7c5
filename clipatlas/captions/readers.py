"""Readers of captioned datasets: each yields :class:`CaptionRecord` (one picture, its captions).

* a folder in the Flickr8k/Flickr30k layout: pictures plus a captions file, either CSV
  (``image,caption``, one caption per line, ``captions.txt``), the token file
  (``1000268201_693b08cb0e.jpg#0<TAB>A child ...``, ``Flickr8k.token.txt``) or the Flickr30k
  ``results.csv`` (``image_name| comment_number| comment``);
* a JSONL or CSV/TSV file with an image column and a caption column (a JSONL caption may be a
  list of captions); image paths are relative to the file;
* a Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (given by its local path):
  its image column's bytes are written once under the collection's ``imports/`` folder.

Several captions of one picture are grouped, in file order, duplicates dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipatlas.errors import CaptionImportError

__all__ = ["CaptionRecord", "dataset_label", "read_captions"]

IMAGE_COLUMNS = ("image", "image_name", "file_name", "filename", "image_path", "file", "path")
CAPTION_COLUMNS = ("caption", "captions", "comment", "text", "sentences", "sentence", "raw")
CAPTION_FILES = (
    "captions.txt",
    "captions.csv",
    "Flickr8k.token.txt",
    "results.csv",
    "captions.jsonl",
    "metadata.jsonl",
    "metadata.csv",
)
IMAGE_DIRS = ("", "Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k_images")
_TOKEN_LINE = re.compile(r"^(?P<image>[^\t#]+)#\d+\t(?P<caption>.*)$")


@dataclass
class CaptionRecord:
    """One picture of a captioned dataset: a file (or bytes to write) and its captions."""

    key: str  # stable within the dataset: relative path or row index
    path: Path | None
    captions: list[str] = field(default_factory=list)
    data: bytes | None = None  # for datasets holding the pictures inline


def _clean(text: Any) -> str:
    return " ".join(str(text).split())


def _group(pairs: Iterator[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for image, caption in pairs:
        text = _clean(caption)
        group = grouped.setdefault(image.strip(), [])
        if text and text not in group:
            group.append(text)
    return grouped


def _pick(
    columns: list[str], wanted: str | None, choices: tuple[str, ...], what: str, source: str
) -> str:
    if wanted:
        if wanted not in columns:
            raise CaptionImportError(source, f"no {what} column {wanted!r} (have {columns})")
        return wanted
    lowered = {c.lower().strip(): c for c in columns}
    for choice in choices:
        if choice in lowered:
            return lowered[choice]
    raise CaptionImportError(
        source, f"no {what} column: expected one of {list(choices)}, found {columns}"
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptionImportError(str(path), str(exc)) from exc


def _table_pairs(
    path: Path, image_col: str | None, caption_col: str | None
) -> Iterator[tuple[str, str]]:
    text = _read_text(path)
    first = text.splitlines()[0] if text.strip() else ""
    if _TOKEN_LINE.match(first):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            m = _TOKEN_LINE.match(line)
            if m is None:
                raise CaptionImportError(str(path), f"line {n} is not 'image#n<TAB>caption'")
            yield m["image"], m["caption"]
        return
    delimiter = "|" if first.count("|") >= 2 else "\t" if path.suffix == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    image = _pick(columns, image_col, IMAGE_COLUMNS, "image", str(path))
    caption = _pick(columns, caption_col, CAPTION_COLUMNS, "caption", str(path))
    for row in reader:
        if row.get(image):
            yield str(row[image]), str(row.get(caption) or "")


def _jsonl_pairs(
    path: Path, image_col: str | None, caption_col: str | None
) -> Iterator[tuple[str, str]]:
    lines = [(n, ln) for n, ln in enumerate(_read_text(path).splitlines(), 1) if ln.strip()]
    if not lines:
        return
    rows = []
    for n, line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CaptionImportError(str(path), f"line {n}: not JSON ({exc.msg})") from exc
    if not all(isinstance(r, dict) for r in rows):
        raise CaptionImportError(str(path), "every line must be a JSON object")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    image = _pick(columns, image_col, IMAGE_COLUMNS, "image", str(path))
    caption = _pick(columns, caption_col, CAPTION_COLUMNS, "caption", str(path))
    for row in rows:
        value = row.get(caption)
        for text in value if isinstance(value, list) else [value]:
            if row.get(image) and text is not None:
                yield str(row[image]), str(text.get("raw", "") if isinstance(text, dict) else text)


def _find_image(root: Path, name: str, images: Path | None) -> Path:
    bases = [images] if images is not None else [root / d for d in IMAGE_DIRS]
    for base in bases:
        candidate = base / name
        if candidate.is_file():
            return candidate
    return (bases[0]) / name  # missing: reported by the importer with this path


def _file_records(
    path: Path, root: Path, images: Path | None, image_col: str | None, caption_col: str | None
) -> list[CaptionRecord]:
    reader = _jsonl_pairs if path.suffix.lower() in (".jsonl", ".json") else _table_pairs
    grouped = _group(reader(path, image_col, caption_col))
    if not grouped:
        raise CaptionImportError(str(path), "no captions found")
    return [
        CaptionRecord(key=name, path=_find_image(root, name, images), captions=texts)
        for name, texts in grouped.items()
    ]


def _is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def _hf_records(
    path: Path, split: str | None, image_col: str | None, caption_col: str | None
) -> list[CaptionRecord]:
    try:
        import datasets
    except ImportError as exc:
        raise CaptionImportError(
            str(path), "reading a Hugging Face dataset needs `pip install clipatlas[caption]`"
        ) from exc
    try:
        loaded: Any = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise CaptionImportError(str(path), f"not a saved dataset: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        name = split or ("train" if "train" in loaded else next(iter(loaded)))
        if name not in loaded:
            raise CaptionImportError(str(path), f"no split {name!r} (have {list(loaded)})")
        loaded, prefix = loaded[name], f"{name}/"
    else:
        prefix = ""
    columns = list(loaded.column_names)
    image = _pick(columns, image_col, IMAGE_COLUMNS, "image", str(path))
    caption = _pick(columns, caption_col, CAPTION_COLUMNS, "caption", str(path))
    if isinstance(loaded.features[image], datasets.Image):
        loaded = loaded.cast_column(image, datasets.Image(decode=False))
    records: list[CaptionRecord] = []
    for index, row in enumerate(loaded):
        value, pic = row[caption], row[image]
        texts = [_clean(t) for t in (value if isinstance(value, list) else [value]) if t]
        record = CaptionRecord(
            key=f"{prefix}{index}", path=None, captions=list(dict.fromkeys(t for t in texts if t))
        )
        if isinstance(pic, dict) and pic.get("bytes"):
            record.data = bytes(pic["bytes"])
        elif isinstance(pic, dict) and pic.get("path"):
            record.path = Path(pic["path"])
        elif isinstance(pic, str):
            record.path = path / pic
        records.append(record)
    return records


def read_captions(
    path: Path,
    *,
    images: Path | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    split: str | None = None,
) -> list[CaptionRecord]:
    """All records of a captioned dataset (a folder, a JSONL/CSV/TSV/token file, or a saved
    Hugging Face dataset). Pictures are not read here; missing ones are the importer's to
    report, one by one."""
    path = path.expanduser()
    if _is_hf_dataset(path):
        return _hf_records(path, split, image_column, caption_column)
    if path.is_dir():
        for name in CAPTION_FILES:
            if (path / name).is_file():
                return _file_records(path / name, path, images, image_column, caption_column)
        raise CaptionImportError(
            str(path), f"no captions file in the folder (looked for {', '.join(CAPTION_FILES)})"
        )
    if not path.is_file():
        raise CaptionImportError(str(path), "no such file or folder")
    return _file_records(path, path.parent, images, image_column, caption_column)


def dataset_label(path: Path) -> str:
    """A short stable name of a dataset: its folder or file stem plus a hash of the path."""
    resolved = path.expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:6]
    return f"{resolved.name if resolved.is_dir() else resolved.stem}-{digest}"
