"""Exact cosine search over a dense matrix (the default below ~200k vectors).

Small collections are scored with NumPy matrix products over a float32 matrix. Large ones keep
their vectors in float16 inside a FAISS flat index (``flat``) whose codes are memory-mapped from
the cache file; FAISS scans the float16 codes directly (no float32 copy per query), which is
memory-bound and about half the bytes of a float32 scan.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import faiss as _faiss
import numpy as np

__all__ = ["ExactIndex", "faiss_threads_for", "flat_index", "order_hits"]

faiss: Any = _faiss  # its bundled type stubs lag the library
_BLOCK = 65536  # rows scored per step, to bound temporary memory on large collections
_PARALLEL_QUERIES = 8  # query batches from this size use FAISS's own threads
_SPLIT_MIN = 100_000  # rows from which one query's scan is split over the cores
_pool: ThreadPoolExecutor | None = None
_single_lock = threading.Lock()
_single_depth = 0
_saved_threads = 1


@contextmanager
def faiss_threads_for(queries: int) -> Iterator[None]:
    """One OpenMP thread for a handful of queries: FAISS parallelises over queries, and waking
    a thread team for one query costs more than the query on a busy machine (measured: a 1M
    IVF query 1.1 ms with one thread vs 4-10 ms with two, bench/search_scale.py). Batches
    keep every thread."""
    global _single_depth, _saved_threads
    if queries >= _PARALLEL_QUERIES:
        yield
        return
    with _single_lock:  # the thread count is process-wide: restore it after the last user
        if _single_depth == 0:
            _saved_threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        _single_depth += 1
    try:
        yield
    finally:
        with _single_lock:
            _single_depth -= 1
            if _single_depth == 0:
                faiss.omp_set_num_threads(_saved_threads)


def _cores_to_spare(cores: int) -> bool:
    """True when, besides the calling thread, a core is free right now."""
    return cores >= 2 and cores - _busy_cores() >= 1


def _busy_cores() -> float:
    """Tasks running right now, the caller included (Linux: /proc/loadavg's runnable count,
    read in microseconds), else the 1-minute load average; infinite when neither is known."""
    try:
        with open("/proc/loadavg", "rb") as fh:
            return float(fh.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        pass
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # neither (Windows)
        return math.inf


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="clipatlas-scan")
    return _pool


def flat_index(matrix: np.ndarray, dtype: str = "float16") -> Any:
    """A FAISS flat inner-product index (in memory) whose codes are ``matrix``'s rows."""
    dim = matrix.shape[1]
    if dtype not in ("float16", "float32"):
        raise ValueError(f"flat index rows must be float16 or float32, not {dtype}")
    if dtype == "float16":
        flat: Any = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    else:
        flat = faiss.IndexFlatIP(dim)
    for start in range(0, len(matrix), _BLOCK):  # the codes are the rows, rounded by NumPy
        rows = np.ascontiguousarray(matrix[start : start + _BLOCK], dtype=dtype)
        flat.add_sa_codes(rows.view(np.uint8).reshape(len(rows), -1))
    return flat


def order_hits(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each query's hits best first, ties broken by row (item id order): deterministic."""
    order = np.lexsort((rows, -scores), axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


class ExactIndex:
    """Exact top-k by cosine. ``matrix`` rows are L2-normalised vectors aligned with ``ids``.

    ``flat`` (optional) is a FAISS inner-product index holding the same rows in the same order;
    when given, it does the scoring.
    """

    def __init__(self, ids: np.ndarray, matrix: np.ndarray, flat: Any | None = None) -> None:
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids for {len(matrix)} vectors")
        if flat is not None and flat.ntotal != len(ids):
            raise ValueError(f"{flat.ntotal} vectors in the flat index for {len(ids)} ids")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.matrix = matrix
        self.flat = flat

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_exact(queries, k)

    def search_exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, dim) queries -> (scores, item ids), best first; always exact."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = len(self.ids)
        k = max(0, min(k, n))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        if self.flat is not None:
            scores, rows = self._flat_search(queries, k)
            scores, rows = order_hits(scores, rows)
            return scores[:, :k], self.ids[rows[:, :k]]
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, n, _BLOCK):
            block = np.asarray(self.matrix[start : start + _BLOCK], dtype=np.float32)
            scores = queries @ block.T
            take = min(k, scores.shape[1])
            part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            cand_scores = np.take_along_axis(scores, part, axis=1)
            best_scores = np.concatenate([best_scores, cand_scores], axis=1)
            best_rows = np.concatenate([best_rows, part + start], axis=1)
            if best_scores.shape[1] > k:
                keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, keep, axis=1)
                best_rows = np.take_along_axis(best_rows, keep, axis=1)
        best_scores, best_rows = order_hits(best_scores, best_rows)
        return best_scores, self.ids[best_rows]

    def _flat_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS scan; a few queries over many rows are split into row ranges scanned on all
        cores at once (FAISS itself puts one query on one core), when cores are idle.

        A split scan costs more CPU in all (each range's scan walks every row to skip the
        others: 100k rows, one query: 6.8-9.4 ms of CPU split over 2 threads vs 5.0 ms on one)
        for a shorter wait (3.7 vs 5.0 ms). On a busy machine (a web app serving many clients
        while an ingest runs) that CPU comes out of everything else, so the split is only
        taken when :func:`_cores_to_spare` finds a core free.
        """
        flat, n, parts = self.flat, len(self.ids), os.cpu_count() or 1
        assert flat is not None
        if len(queries) >= _PARALLEL_QUERIES or n < _SPLIT_MIN or not _cores_to_spare(parts):
            scores, rows = flat.search(queries, k)
            return scores, rows.astype(np.int64)
        bounds = np.linspace(0, n, parts + 1).astype(np.int64)
        params = [
            faiss.SearchParameters(sel=faiss.IDSelectorRange(int(a), int(b)))
            for a, b in itertools.pairwise(bounds)
        ]
        with faiss_threads_for(len(queries)):
            found = list(_threads().map(lambda p: flat.search(queries, k, params=p), params))
        scores = np.concatenate([f[0] for f in found], axis=1)
        rows = np.concatenate([f[1] for f in found], axis=1).astype(np.int64)
        scores[rows < 0] = -np.inf  # a range holding fewer than k rows
        rows[rows < 0] = np.iinfo(np.int64).max
        return scores, rows
