"""A collection's search index on disk, keyed by the store's fingerprint.

Reading every vector back from the database on each search would dominate a CLI search; the
vectors are written once per collection state (atomically) and memory-mapped afterwards, so
even a 1M collection opens in about a second. A stale cache (fingerprint differs) is rebuilt
and older files are removed. Files in ``cache_dir`` (``<token>`` = the fingerprint):

* ``ids-<token>.npy``: item ids, one per row.
* ``vectors-<token>.npy``: float32 rows, for small collections (NumPy scoring); or
  ``vectors-<token>.faiss``: a FAISS flat index holding the rows in the store's dtype
  (float16 by default), for collections of at least ``flat_min`` vectors; its codes are the
  rows, and ``ExactIndex.matrix`` is a memory-mapped view of them (no second copy).
* ``ann-<token>.faiss`` + ``ann-<token>.json`` + ``ann-<token>.ids.npy``: the ANN index above
  the size threshold, its build report (kind, parameters, chosen search effort, measured
  recall@10) and the item of each of its entries. It outlives later exact states: while
  few rows changed since, it serves them with the changed rows searched exactly, and is
  rebuilt once more than ``AnnConfig.catch_up_limit`` of them did.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from clipatlas.atomic import write_atomic
from clipatlas.index.ann import (
    AnnConfig,
    AnnIndex,
    build_ann,
    catch_up_ann,
    choose_kind,
    load_ann,
    read_ann,
    read_report,
    save_ann,
    tune_faiss,
)
from clipatlas.index.exact import ExactIndex, flat_index
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.store.base import CollectionInfo
from clipatlas.store.sql import SqlStore

# faiss's bundled type stubs lag the library (no SearchParametersHNSW, PyCallbackIOWriter)
faiss: Any = _faiss

__all__ = ["FLAT_MIN", "load_exact_index", "load_index", "open_flat", "write_flat"]

FLAT_MIN = 50_000  # from this many vectors the exact rows live in a FAISS flat file
_PREFIXES = ("ids-", "vectors-", "ann-")


def write_flat(path: Path, matrix: np.ndarray, dtype: str = "float16") -> None:
    """Write ``matrix`` as a FAISS flat inner-product index whose codes are its rows."""
    flat = flat_index(matrix, dtype)
    write_atomic(path, lambda fh: faiss.write_index(flat, faiss.PyCallbackIOWriter(fh.write)))


def open_flat(path: Path, count: int) -> ExactIndex | None:
    """Memory-map a file written by :func:`write_flat`; None if it does not hold ``count`` rows.

    FAISS maps the file itself (``IO_FLAG_MMAP_IFC``) and its codes are the rows, so
    ``ExactIndex.matrix`` is a read-only NumPy view of FAISS's mapping (:func:`_codes_view`):
    one mapping of the file, not two (a second ``np.memmap`` of the same file counted every
    page twice in the process's resident memory, 2.5 GB for a 1 GB file at 1M vectors). The
    view is checked against FAISS's own decoding of the first and last rows before it is
    trusted.
    """
    flat = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    if flat.ntotal != count or count == 0:
        return None
    dtype = np.float16 if isinstance(flat, faiss.IndexScalarQuantizer) else np.float32
    if flat.code_size != flat.d * np.dtype(dtype).itemsize:
        return None
    matrix = _codes_view(flat, dtype)
    for row in (0, count - 1):
        if not np.array_equal(matrix[row].astype(np.float32), flat.reconstruct(row)):
            return None
    return ExactIndex(np.zeros(count, np.int64), matrix, flat)


def _codes_view(flat: Any, dtype: type[np.floating[Any]]) -> np.ndarray:
    """The flat index's codes as a read-only (ntotal, d) array that keeps ``flat`` (and so its
    memory) alive for as long as the array or any slice of it lives."""
    nbytes = flat.ntotal * flat.code_size
    buffer = (ctypes.c_uint8 * nbytes).from_address(int(flat.codes.data()))
    buffer.owner = flat
    view = np.frombuffer(buffer, dtype=dtype).reshape(flat.ntotal, flat.d)
    view.flags.writeable = False
    return view


@contextlib.contextmanager
def _rebuild_lock(cache_dir: Path) -> Iterator[None]:
    """One writer of a cache folder at a time (across processes); whoever holds the lock may
    remove ``.tmp-`` files, since they can only be left by a writer that died mid-write."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock, leftovers are kept
        yield
        return
    with open(cache_dir / ".rebuild.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for left in cache_dir.glob(".tmp-*"):
                left.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale(cache_dir: Path, token: str, prefixes: tuple[str, ...] = _PREFIXES) -> None:
    for old in cache_dir.iterdir():
        if old.name.startswith(prefixes) and f"-{token}." not in old.name:
            old.unlink(missing_ok=True)


def _exact(
    store: SqlStore,
    collection: CollectionInfo,
    cache_dir: Path,
    token: str,
    count: int,
    flat_min: int,
    progress: ProgressCallback | None,
) -> ExactIndex:
    ids_path = cache_dir / f"ids-{token}.npy"
    npy_path, flat_path = cache_dir / f"vectors-{token}.npy", cache_dir / f"vectors-{token}.faiss"
    if ids_path.exists():
        ids = np.load(ids_path)
        if len(ids) == count and flat_path.exists():
            opened = open_flat(flat_path, count)
            if opened is not None:
                return ExactIndex(ids, opened.matrix, opened.flat)
        if len(ids) == count and npy_path.exists():
            matrix = np.load(npy_path, mmap_mode="r")
            if len(matrix) == count:
                return ExactIndex(ids, matrix)
    with _rebuild_lock(cache_dir):
        caught_up = _catch_up(store, collection, cache_dir, token)
        if caught_up is not None:
            return _write(cache_dir, ids_path, npy_path, flat_path, *caught_up, flat_min,
                          store.vector_dtype.name)  # fmt: skip
        return _rebuild(store, collection, cache_dir, ids_path, npy_path, flat_path, count,
                        flat_min, progress)  # fmt: skip


def _catch_up(
    store: SqlStore, collection: CollectionInfo, cache_dir: Path, token: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, rows) of the collection now, from the cached state of an earlier version
    of it plus the rows written since (:meth:`SqlStore.vector_changes`), or None when only a
    full read will do (no earlier state, another embedder, most rows changed, or a row that
    should be unchanged missing from the earlier state).

    While an ingest job writes a batch every few seconds, the web app refreshes its index
    every ``index_staleness`` seconds: reading only the new rows instead of every vector takes
    the refresh at 100k items from over a second of GIL-holding row decoding to a fraction.
    """
    parsed = _parse_token(token)
    earlier = None if parsed is None else _earlier_state(cache_dir, parsed[0], parsed[2])
    if earlier is None:
        return None
    old_ids, old_rows, old_version = earlier
    ids, changed, changed_rows = store.vector_changes(collection, old_version)
    if len(ids) == 0 or len(changed) * 2 > len(ids):
        return None
    fresh = np.isin(ids, changed)
    kept = ids[~fresh]
    at = np.searchsorted(old_ids, kept)
    if len(kept) and (at[-1] >= len(old_ids) or not np.array_equal(old_ids[at], kept)):
        return None  # an unchanged row the earlier state lacks: not ours to guess
    # rows stay in the earlier state's dtype (float16 in a flat file): a copy, no conversions
    matrix = np.empty((len(ids), old_rows.shape[1]), dtype=old_rows.dtype)
    if not fresh[: len(kept)].any():  # appends only (the usual ingest): one gather into place
        np.take(old_rows, at, axis=0, out=matrix[: len(kept)])
    else:
        matrix[~fresh] = old_rows[at]
    matrix[fresh] = changed_rows[np.searchsorted(changed, ids[fresh])]
    return ids, matrix


def _parse_token(token: str) -> tuple[str, int, int] | None:
    """(model, count, version) of a :meth:`Fingerprint.token`, or None if it is not one."""
    parts = token.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return None


def _newest_state(
    cache_dir: Path, prefix: str, suffix: str, model: str, version: int
) -> tuple[int, str] | None:
    """(version, token) of the newest ``<prefix><token><suffix>`` file in ``cache_dir`` of the
    same embedder and not newer than ``version``, or None."""
    found = []
    for path in cache_dir.glob(f"{prefix}*{suffix}"):
        token = path.name[len(prefix) : -len(suffix)]
        parsed = _parse_token(token)
        if parsed is not None and parsed[0] == model and parsed[2] <= version:
            found.append((parsed[2], token))
    return max(found) if found else None


def _earlier_state(
    cache_dir: Path, model: str, version: int
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The newest cached (ids, rows, version) of the same embedder not newer than ``version``.

    A state may hold rows newer than its name says (it is named by the fingerprint taken
    before the rows were read, and an ingest may commit in between) but never older, so
    catching up from the version in its name is safe; its row count is checked against its
    own files, not the count in the name.
    """
    newest = _newest_state(cache_dir, "ids-", ".npy", model, version)
    if newest is None:
        return None
    old_version, old_token = newest
    ids = np.load(cache_dir / f"ids-{old_token}.npy")
    count = len(ids)
    if count == 0:
        return None
    flat_path = cache_dir / f"vectors-{old_token}.faiss"
    npy_path = cache_dir / f"vectors-{old_token}.npy"
    if flat_path.exists():
        opened = open_flat(flat_path, count)
        return None if opened is None else (ids, opened.matrix, old_version)
    if npy_path.exists():
        rows = np.load(npy_path, mmap_mode="r")
        return (ids, rows, old_version) if len(rows) == count else None
    return None


def _rebuild(
    store: SqlStore,
    collection: CollectionInfo,
    cache_dir: Path,
    ids_path: Path,
    npy_path: Path,
    flat_path: Path,
    count: int,
    flat_min: int,
    progress: ProgressCallback | None,
) -> ExactIndex:
    emit(progress, ProgressEvent("index", 0, count, message="reading vectors"))
    ids, matrix = store.load_vectors(collection)
    return _write(cache_dir, ids_path, npy_path, flat_path, ids, matrix, flat_min,
                  store.vector_dtype.name)  # fmt: skip


def _write(
    cache_dir: Path,
    ids_path: Path,
    npy_path: Path,
    flat_path: Path,
    ids: np.ndarray,
    matrix: np.ndarray,
    flat_min: int,
    dtype: str,
) -> ExactIndex:
    """Write one state's files (the ids last: they mark it complete) and open them."""
    # the exact files of every other state go; the ANN files stay until an ANN index is built
    # for a newer state (an earlier one can serve a newer state, see _ann_catch_up)
    _remove_stale(cache_dir, "\0", ("ids-", "vectors-"))
    if len(ids) >= flat_min:
        write_flat(flat_path, matrix, dtype)
        del matrix
        write_atomic(ids_path, lambda fh: np.save(fh, ids))
        opened = open_flat(flat_path, len(ids))
        if opened is None:
            raise OSError(f"the flat index just written to {flat_path} does not read back")
        return ExactIndex(ids, opened.matrix, opened.flat)
    write_atomic(npy_path, lambda fh: np.save(fh, matrix))
    write_atomic(ids_path, lambda fh: np.save(fh, ids))
    return ExactIndex(ids, matrix)


def load_index(
    store: SqlStore,
    collection: CollectionInfo,
    cache_dir: Path,
    ann: AnnConfig | None = None,
    *,
    flat_min: int = FLAT_MIN,
    progress: ProgressCallback | None = None,
) -> ExactIndex:
    """The collection's index: exact, or an :class:`~clipatlas.index.ann.AnnIndex` (which is
    an ExactIndex with ANN search) once the collection reaches ``ann.threshold`` vectors."""
    tune_faiss()
    fp = store.fingerprint(collection)
    token = fp.token()
    cache_dir.mkdir(parents=True, exist_ok=True)
    exact = _exact(store, collection, cache_dir, token, fp.count, flat_min, progress)
    config = ann or AnnConfig(threshold=0)
    kind = choose_kind(len(exact), config)
    if kind is None:
        return exact
    index_path, report_path = cache_dir / f"ann-{token}.faiss", cache_dir / f"ann-{token}.json"
    loaded = load_ann(exact, index_path, report_path, token)
    if loaded is not None and loaded.report.kind == kind:
        return loaded
    caught_up = _ann_catch_up(store, collection, cache_dir, exact, kind, token, config)
    if caught_up is not None:
        return caught_up
    with _rebuild_lock(cache_dir):
        built = build_ann(exact, kind, token, config, progress)
        save_ann(built, index_path, report_path)
        write_atomic(cache_dir / f"ann-{token}.ids.npy", lambda fh: np.save(fh, built.ids))
        _remove_stale(cache_dir, token)
    return built


def _ann_catch_up(
    store: SqlStore,
    collection: CollectionInfo,
    cache_dir: Path,
    exact: ExactIndex,
    kind: str,
    token: str,
    config: AnnConfig,
) -> AnnIndex | None:
    """The newest stored ANN index of an earlier state, serving the collection as it is now
    (:func:`~clipatlas.index.ann.catch_up_ann`), or None when a rebuild is due.

    Building one takes minutes at 1M vectors (IVF-PQ 33-90 s here, HNSW longer), and a served
    collection refreshes its index every ``index_staleness`` seconds while an ingest writes:
    without this, every refresh rebuilt it from scratch. The items written since the build
    are found by version (like the exact index's catch-up), which is safe even when the build
    read rows newer than its name."""
    parsed = _parse_token(token)
    if parsed is None:
        return None
    newest = _newest_state(cache_dir, "ann-", ".json", parsed[0], parsed[2])
    if newest is None:
        return None
    old_version, old_token = newest
    report = read_report(cache_dir / f"ann-{old_token}.json")
    if report is None or report.kind != kind:
        return None
    try:  # another process may be replacing these files (it removes them under its lock)
        ann = read_ann(cache_dir / f"ann-{old_token}.faiss", report)
        ann_ids = np.load(cache_dir / f"ann-{old_token}.ids.npy")
    except (OSError, RuntimeError, ValueError):  # FAISS raises RuntimeError for I/O errors
        return None
    if ann is None:
        return None
    changed = store.changed_ids(collection, old_version)
    return catch_up_ann(exact, ann, report, ann_ids, changed, config.catch_up_limit)


def load_exact_index(
    store: SqlStore,
    collection: CollectionInfo,
    cache_dir: Path,
    ann: AnnConfig | None = None,
    *,
    flat_min: int = FLAT_MIN,
    progress: ProgressCallback | None = None,
) -> ExactIndex:
    """The exact index, cached on disk by fingerprint; with ``ann``, an ANN-backed index once
    the collection is large enough (see :func:`load_index`)."""
    return load_index(store, collection, cache_dir, ann, flat_min=flat_min, progress=progress)
