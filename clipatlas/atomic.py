"""Atomic file writes: a file appears complete under its name, or not at all.

Used for thumbnails, copied originals and derived caches. The temp file lives beside the
destination and is named ``.tmp-*`` so a run killed mid-write leaves something recognisable
that :func:`clipatlas.pipeline.decode.remove_stale_temp_files` cleans up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "write_atomic"]

TEMP_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(dest: Path, write: Callable[[BinaryIO], None], *, durable: bool = True) -> None:
    """Create ``dest`` (and its parents) with what ``write`` puts in the open file.

    The rename makes the file appear whole or not at all, whatever happens to the process; on
    any error the temp file is removed and the error propagates. ``durable`` also flushes the
    data and the directory to disk so the file survives a power loss; derived files that can
    be rebuilt (thumbnails) skip it: two fsyncs per picture cost more than making it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f"{TEMP_PREFIX}{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; give it the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(dest.parent)
