"""``folder``: every file under a directory, recursively.

Symlinks are followed only while they stay inside the root: a link (to a file or a folder)
that resolves outside it is skipped and reported, and directory cycles are walked once.
Every regular file is a candidate whatever its name; the bytes decide what it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clipatlas.errors import PathOutsideRootError, SourceError
from clipatlas.sources.base import Candidate, SourceContext

if TYPE_CHECKING:
    from clipatlas.registry import Registry

__all__ = ["FolderSource", "register"]

_SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


class FolderSource:
    name = "folder"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a directory")
        self.real_root = self.root.resolve()
        self.outside_root: list[PathOutsideRootError] = []

    def _inside(self, path: Path) -> bool:
        return path == self.real_root or self.real_root in path.parents

    def iter_candidates(self) -> Iterator[Candidate]:
        self.outside_root.clear()
        seen_dirs: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            here = Path(dirpath)
            real_here = here.resolve()
            if not self._inside(real_here):
                self.outside_root.append(PathOutsideRootError(str(here), str(self.root)))
                dirnames[:] = []
                continue
            if real_here in seen_dirs:
                dirnames[:] = []
                continue
            seen_dirs.add(real_here)
            dirnames.sort()
            for filename in sorted(filenames):
                if filename in _SKIP_NAMES:
                    continue
                path = here / filename
                try:
                    real = path.resolve(strict=True)
                    st = real.stat()
                except (OSError, RuntimeError):
                    continue  # dangling or looping link: nothing to read
                if not self._inside(real):
                    self.outside_root.append(PathOutsideRootError(str(path), str(self.root)))
                    continue
                if not real.is_file():
                    continue
                key = path.relative_to(self.root).as_posix()
                yield Candidate(
                    source=self.name,
                    key=key,
                    uri=str(real),
                    path=real,
                    size=st.st_size,
                    mtime=st.st_mtime,
                )


def _factory(context: SourceContext, *, root: str | os.PathLike[str]) -> FolderSource:
    return FolderSource(root)


def register(registry: Registry) -> None:
    registry.add_source("folder", _factory)
