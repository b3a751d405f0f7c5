"""Open collections shared by the web app's request threads.

Opening an :class:`Atlas` builds an engine and checks the schema, so each collection is opened
once and kept. Searches share it (``shared``: the Atlas guards its lazy embedder and index
itself); other operations that change what an Atlas holds take the per-collection lock
(``exclusive``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from clipatlas.atlas import Atlas, list_collections
from clipatlas.errors import CollectionNotFoundError
from clipatlas.jobs.board import check_collection_name
from clipatlas.settings import Settings

__all__ = ["AtlasPool"]


class AtlasPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._atlases: dict[str, Atlas] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list_collections(self.settings)

    def get(self, name: str) -> Atlas:
        """The open collection ``name`` (CollectionNotFoundError when it does not exist)."""
        check_collection_name(name)
        with self._lock:
            atlas = self._atlases.get(name)
            if atlas is None:
                atlas = Atlas.open(name, settings=self.settings, create=False)
                self._atlases[name] = atlas
                self._locks[name] = threading.Lock()
        try:  # the collection row may have changed (embedder bound by a job in a worker)
            atlas.collection = atlas.store.get_collection(name)
        except CollectionNotFoundError:
            self.drop(name)
            raise
        return atlas

    @contextmanager
    def shared(self, name: str) -> Iterator[Atlas]:
        """The collection for a search, alongside other request threads: an Atlas creates its
        embedder and loads its index under its own locks, so searches need no pool lock (one
        lock here made 50 browsing clients queue behind each other)."""
        yield self.get(name)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[Atlas]:
        """The collection, with its search lock held (embedder and index are lazy)."""
        atlas = self.get(name)
        with self._locks[name]:
            yield atlas

    def drop(self, name: str) -> None:
        with self._lock:
            atlas = self._atlases.pop(name, None)
            self._locks.pop(name, None)
        if atlas is not None:
            atlas.close()

    def close(self) -> None:
        with self._lock:
            atlases = list(self._atlases.values())
            self._atlases.clear()
            self._locks.clear()
        for atlas in atlases:
            atlas.close()
