"""A cache of a collection's vectors on disk, keyed by the store's fingerprint.

Reading every vector back from the database on each search would dominate a CLI search; the
matrix is written once per collection state (atomically) and memory-mapped afterwards. A stale
cache (fingerprint differs) is rebuilt and older files are removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipatlas.atomic import write_atomic
from clipatlas.index.exact import ExactIndex
from clipatlas.store.base import CollectionInfo, Fingerprint
from clipatlas.store.sql import SqlStore

__all__ = ["load_exact_index"]


def load_exact_index(store: SqlStore, collection: CollectionInfo, cache_dir: Path) -> ExactIndex:
    fp: Fingerprint = store.fingerprint(collection)
    cache_dir.mkdir(parents=True, exist_ok=True)
    token = fp.token()
    ids_path, vec_path = cache_dir / f"ids-{token}.npy", cache_dir / f"vectors-{token}.npy"
    if ids_path.exists() and vec_path.exists():
        ids = np.load(ids_path)
        matrix = np.load(vec_path, mmap_mode="r")
        if len(ids) == len(matrix) == fp.count:
            return ExactIndex(ids, matrix)
    ids, matrix = store.load_vectors(collection)
    for old in cache_dir.glob("*.npy"):
        old.unlink(missing_ok=True)
    write_atomic(vec_path, lambda fh: np.save(fh, matrix))
    write_atomic(ids_path, lambda fh: np.save(fh, ids))
    return ExactIndex(ids, matrix)
