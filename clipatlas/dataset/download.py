"""Download stage: every remote candidate's bytes are committed the moment they arrive.

The ingest downloads ahead of its decoders and commits a whole embedded batch at a time, so a
build killed before its first batch (~80 pictures with the default look-ahead) used to fetch
everything again. Here each download is committed on its own, in completion order:

* a body that arrived -> ``media/downloads/<sha256[:2]>/<sha256>`` (content-addressed, written
  atomically) and the candidate's ``dataset_candidates.path`` set to it in one small
  transaction; the ingest then reads the picture from that file and never asks the network;
* a download that failed (``http_error``, ``timeout``, ...) -> a rejected item with its reason,
  exactly the row the ingest would write, so it is not asked again either.

A rerun skips every candidate with a committed file or item, so a kill after N downloads
resumes with 0 repeated fetches (only requests still in flight at the kill are repeated: their
bytes never arrived). ``should_stop`` is polled between downloads; on a stop the downloads
already running finish and are committed before :class:`BuildCancelledError` is raised. The
download files are deleted once the ingest has stored every candidate (the media folder keeps
its own content-addressed original of each stored picture).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from clipatlas.atomic import write_atomic
from clipatlas.errors import BuildCancelledError, FetchError
from clipatlas.images.hashing import sha256_hex
from clipatlas.pipeline.decode import fetch_rejected
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

if TYPE_CHECKING:
    from clipatlas.dataset.state import BuildState, CandidateRow
    from clipatlas.engine import Engine
    from clipatlas.fetch import Fetcher

__all__ = ["DOWNLOADS", "download_candidates", "remove_downloads"]

DOWNLOADS = "downloads"  # under the collection's media folder

_Done = tuple["CandidateRow", Path | FetchError]


def _write(fh: BinaryIO, *, data: bytes) -> None:
    fh.write(data)


def _fetch_one(fetcher: Fetcher, root: Path, row: CandidateRow) -> _Done:
    """One download, on a worker thread: the file it became, or the fetch error."""
    try:
        result = fetcher.get(row.candidate.download_url, expect="any")
    except FetchError as exc:
        return row, exc
    sha = sha256_hex(result.data)
    dest = root / sha[:2] / sha
    if not dest.exists():
        write_atomic(dest, partial(_write, data=result.data))
    return row, dest


def _is_download(path: Path | None, root: Path) -> bool:
    return path is not None and path.is_relative_to(root)


def download_candidates(
    engine: Engine,
    state: BuildState,
    rows: list[CandidateRow],
    progress: ProgressCallback | None,
    should_stop: Callable[[], bool],
) -> list[CandidateRow]:
    """Fetch every remote candidate not yet fetched; returns the rows with their files."""
    root = engine.media_root / DOWNLOADS
    known: dict[str, set[str]] = {}
    todo: list[CandidateRow] = []
    for row in rows:
        c = row.candidate
        if c.path is not None and (not _is_download(c.path, root) or c.path.is_file()):
            continue  # a local file, or bytes already committed
        if c.source not in known:
            keys = engine.store.known_keys(engine.collection, c.source)
            known[c.source] = {k for k, v in keys.items() if v.complete}
        if c.key not in known[c.source]:
            todo.append(row)
    if not todo:
        return rows
    by_position = {r.position: r for r in rows}
    fetcher = engine.fetcher()
    concurrency = max(1, engine.settings.fetch_concurrency)
    pending: set[Future[_Done]] = set()
    queue = iter(todo)
    done = 0
    stopped = False
    emit(progress, ProgressEvent("fetch", 0, len(todo)))
    with ThreadPoolExecutor(concurrency, thread_name_prefix="dataset-fetch") as pool:
        while True:
            while not stopped and len(pending) < concurrency:
                if should_stop():
                    stopped = True
                    break
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending.add(pool.submit(_fetch_one, fetcher, root, nxt))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                row, outcome = future.result()
                if isinstance(outcome, FetchError):
                    item = fetch_rejected(row.candidate, outcome).item
                    engine.store.write_batch(engine.collection, [item])
                else:
                    state.set_path(row.position, outcome)
                    candidate = dataclasses.replace(row.candidate, path=outcome)
                    by_position[row.position] = dataclasses.replace(row, candidate=candidate)
                done += 1
                emit(progress, ProgressEvent("fetch", done, len(todo)))
    if stopped:
        raise BuildCancelledError(state.id, "fetch")
    return [by_position[r.position] for r in rows]


def remove_downloads(engine: Engine, rows: list[CandidateRow]) -> int:
    """Delete the download files of ``rows`` (after the ingest stored them); returns how many."""
    root = engine.media_root / DOWNLOADS
    removed = 0
    for row in rows:
        path = row.candidate.path
        if _is_download(path, root) and path is not None and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
