"""Per-item work done in decode worker processes: read -> analyse -> thumbnail -> preprocess.

Nothing here imports torch; the model stays in the main process. Every failure becomes a
rejected :class:`NewItem` with a typed reason, never an exception.
"""

from __future__ import annotations

import copyreg
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from clipatlas.atomic import TEMP_PREFIX, write_atomic
from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.errors import FetchError, ImageError, MediaWriteError, Reason
from clipatlas.images import ImageLimits, analyse_bytes, write_thumbnail
from clipatlas.sources.base import Candidate
from clipatlas.store.base import NewItem

__all__ = [
    "DecodeConfig",
    "Decoded",
    "decode_candidate",
    "fetch_rejected",
    "media_relpath",
    "rejected",
    "remove_stale_temp_files",
]

# A MediaWriteError raised in a decode worker travels back to the ingest pickled; rebuilt from
# its message alone it would fail (its __init__ wants root and detail), the pool would break
# and the run would end with "decode worker processes died" instead of the disk-full error.
copyreg.pickle(MediaWriteError, lambda e: (MediaWriteError, (e.root, e.detail)))

_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class DecodeConfig:
    limits: ImageLimits
    preprocessor: ImagePreprocessor | None  # None: store without embedding
    media_root: Path
    thumbnail_size: int = 256
    copy_media: bool = False
    semaphores: Path | None = None  # where decode pools record their semaphores (semaphores.py)

    @property
    def draft(self) -> tuple[int, int]:
        """JPEG draft size: big enough for the model input, the thumbnail and sharpness."""
        side = max(256, self.thumbnail_size)
        if self.preprocessor is not None:
            pw, ph = self.preprocessor.draft_size
            return (max(side, pw), max(side, ph))
        return (side, side)


@dataclass
class Decoded:
    item: NewItem
    pixels: np.ndarray | None  # uint8 model-input crop of a stored item, when embedding


def media_relpath(kind: str, sha256: str, ext: str) -> str:
    return f"{kind}/{sha256[:2]}/{sha256}.{ext}"


def _read(candidate: Candidate, limit: int) -> bytes:
    if candidate.path is None:
        raise ImageError(candidate.uri, Reason.UNREADABLE, "candidate has no local path")
    try:
        with open(candidate.path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ImageError(candidate.uri, Reason.UNREADABLE, exc.strerror or str(exc)) from exc
    if len(data) > limit:
        raise ImageError(candidate.uri, Reason.TOO_LARGE, f"file exceeds {limit} bytes")
    return data


def _write_bytes(fh: BinaryIO, *, data: bytes) -> None:
    fh.write(data)


def _base_item(candidate: Candidate) -> NewItem:
    return NewItem(
        source=candidate.source,
        source_key=candidate.key,
        uri=candidate.uri,
        size_bytes=candidate.size,
        mtime=candidate.mtime,
        meta=dict(candidate.meta),
    )


def rejected(candidate: Candidate, reason: Reason, detail: str | None = None) -> Decoded:
    """A candidate that failed before decoding (e.g. its download), as a rejected item."""
    item = _base_item(candidate)
    item.status, item.reason, item.detail = "rejected", reason.value, detail or None
    return Decoded(item, None)


def fetch_rejected(candidate: Candidate, error: FetchError) -> Decoded:
    """A candidate whose download failed, as the rejected item the ingest stores."""
    detail = f"HTTP {error.status}: {error.detail}" if error.status else error.detail
    return rejected(candidate, error.reason, detail)


def decode_candidate(
    candidate: Candidate, config: DecodeConfig, data: bytes | None = None
) -> Decoded:
    """Analyse one candidate: its ``data`` when already fetched, else the file at its path."""
    item = _base_item(candidate)
    try:
        if data is None:
            data = _read(candidate, config.limits.max_bytes)
        item.size_bytes = len(data)
        pic = analyse_bytes(data, candidate.uri, config.limits, draft=config.draft)
        thumb = media_relpath("thumbs", pic.sha256, "jpg")
        if not (config.media_root / thumb).exists():
            write_thumbnail(pic.image, config.media_root / thumb, config.thumbnail_size)
        if config.copy_media:
            item.media_path = media_relpath("originals", pic.sha256, _EXT[pic.format])
            dest = config.media_root / item.media_path
            if not dest.exists():
                write_atomic(dest, partial(_write_bytes, data=data))
        pixels = (
            config.preprocessor.resize_crop(pic.image) if config.preprocessor is not None else None
        )
    except ImageError as exc:
        item.status, item.reason, item.detail = "rejected", exc.reason.value, exc.detail or None
        return Decoded(item, None)
    except OSError as exc:  # media folder full or unwritable: not the picture's fault
        raise MediaWriteError(str(config.media_root), exc.strerror or str(exc)) from exc
    item.sha256, item.phash, item.format = pic.sha256, pic.phash, pic.format
    item.thumb_path = thumb
    item.width, item.height = pic.width, pic.height
    item.aspect, item.sharpness = pic.quality.aspect, pic.quality.sharpness
    return Decoded(item, pixels)


def remove_stale_temp_files(media_root: Path) -> int:
    """Delete temp files a killed run left in the media folder; returns how many."""
    removed = 0
    if media_root.is_dir():
        for tmp in media_root.rglob(f"{TEMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
