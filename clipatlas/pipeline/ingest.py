"""The ingest runner: source -> decode workers -> duplicate check -> embed in batches -> store.

Decoding runs in worker processes (bounded look-ahead, ordered results) while the model embeds
in this process, so the model never waits on JPEG decoding. Each batch of items and its vectors
is committed in one transaction; a killed run resumes by skipping what was committed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult, Pool

import numpy as np

from clipatlas.embedders.base import Embedder
from clipatlas.errors import Reason
from clipatlas.pipeline.decode import DecodeConfig, Decoded, decode_candidate
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.sources.base import Candidate, Source
from clipatlas.store.base import CollectionInfo, NewItem
from clipatlas.store.sql import SqlStore

__all__ = ["IngestReport", "Ingestor", "resolve_workers"]

_CHUNK = 4  # candidates per worker task


def resolve_workers(requested: int) -> int:
    """0 = automatic (one per core but one, at least one); -1 = decode in this process."""
    if requested != 0:
        return max(-1, requested)
    return max(1, min((os.cpu_count() or 2) - 1, 8))


@dataclass
class IngestReport:
    scanned: int = 0
    skipped: int = 0  # already in the collection, unchanged
    stored: int = 0
    embedded: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    outside_root: int = 0
    seconds: float = 0.0

    @property
    def processed(self) -> int:
        return self.stored + self.rejected

    def as_dict(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "skipped": self.skipped,
            "stored": self.stored,
            "embedded": self.embedded,
            "rejected": self.rejected,
            "reasons": dict(sorted(self.reasons.items())),
            "outside_root": self.outside_root,
            "seconds": round(self.seconds, 3),
        }


# -- worker side -------------------------------------------------------------------------------

_worker_config: DecodeConfig | None = None


def _init_worker(config: DecodeConfig) -> None:
    global _worker_config
    _worker_config = config
    with contextlib.suppress(OSError):  # let the model win when both want a core
        os.nice(5)


def _work(chunk: Sequence[Candidate]) -> list[Decoded]:
    assert _worker_config is not None
    return [decode_candidate(c, _worker_config) for c in chunk]


def _chunks(items: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    chunk: list[Candidate] = []
    for it in items:
        chunk.append(it)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _decode_stream(
    candidates: Sequence[Candidate], config: DecodeConfig, workers: int, lookahead: int
) -> Iterator[Decoded]:
    """Decoded candidates in input order, at most ``lookahead`` items in flight."""
    if workers < 1:
        for c in candidates:
            yield decode_candidate(c, config)
        return
    ctx = mp.get_context("spawn")
    pool: Pool = ctx.Pool(workers, initializer=_init_worker, initargs=(config,))
    try:
        pending: deque[AsyncResult[list[Decoded]]] = deque()
        max_chunks = max(2 * workers, lookahead // _CHUNK)
        for chunk in _chunks(candidates, _CHUNK):
            pending.append(pool.apply_async(_work, (chunk,)))
            if len(pending) >= max_chunks:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# -- main side ---------------------------------------------------------------------------------


class Ingestor:
    """Runs one ingest of a source into a collection."""

    def __init__(
        self,
        store: SqlStore,
        collection: CollectionInfo,
        config: DecodeConfig,
        embedder: Embedder | None,
        *,
        batch_size: int = 32,
        workers: int = 0,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.store, self.collection, self.config = store, collection, config
        self.embedder = embedder
        self.batch_size = batch_size
        self.workers = resolve_workers(workers)
        self.progress = progress
        self.report = IngestReport()

    def _pending(self, source: Source) -> list[Candidate]:
        known = self.store.known_keys(self.collection, source.name)
        todo: list[Candidate] = []
        for c in source.iter_candidates():
            self.report.scanned += 1
            k = known.get(c.key)
            if k is not None and k.complete and (k.size_bytes, k.mtime) == (c.size, c.mtime):
                self.report.skipped += 1
            else:
                todo.append(c)
            if self.report.scanned % 1000 == 0:
                emit(self.progress, ProgressEvent("scan", self.report.scanned, None))
        self.report.outside_root = len(getattr(source, "outside_root", ()))
        return todo

    def run(self, source: Source) -> IngestReport:
        start = time.perf_counter()
        todo = self._pending(source)
        total = len(todo)
        emit(self.progress, ProgressEvent("ingest", 0, total, self._counts()))
        batch: list[Decoded] = []
        n_ok = 0
        lookahead = 2 * self.batch_size + 8 * max(1, self.workers)
        for decoded in _decode_stream(todo, self.config, self.workers, lookahead):
            batch.append(decoded)
            n_ok += decoded.item.status == "ok"
            if n_ok >= self.batch_size:
                self._flush(batch, total)
                batch, n_ok = [], 0
        if batch:
            self._flush(batch, total)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def _mark_duplicates(self, batch: list[Decoded]) -> None:
        hashes = [d.item.sha256 for d in batch if d.item.status == "ok" and d.item.sha256]
        existing = self.store.existing_sha256(self.collection, hashes)
        first_key: dict[str, str] = {}
        for d in batch:
            it = d.item
            if it.status != "ok" or not it.sha256:
                continue
            same = existing.get(it.sha256)
            if same is not None and same[1:] != (it.source, it.source_key):
                self._reject(d, Reason.DUPLICATE, {"duplicate_of": same[0]})
            elif it.sha256 in first_key:
                self._reject(d, Reason.DUPLICATE, {"duplicate_of_key": first_key[it.sha256]})
            else:
                first_key[it.sha256] = it.source_key

    @staticmethod
    def _reject(d: Decoded, reason: Reason, meta: dict[str, object]) -> None:
        d.item.status, d.item.reason = "rejected", reason.value
        d.item.meta = {**d.item.meta, **meta}
        d.pixels = None

    def _flush(self, batch: list[Decoded], total: int) -> None:
        self._mark_duplicates(batch)
        stored = [d for d in batch if d.item.status == "ok"]
        vectors = None
        if self.embedder is not None and stored:
            pixels = np.stack([d.pixels for d in stored if d.pixels is not None])
            vectors = self.embedder.embed_pixels(pixels)
        items: list[NewItem] = [d.item for d in batch]
        self.store.write_batch(self.collection, items, vectors)
        for it in items:  # write_batch may turn a concurrent duplicate into a rejection
            if it.status == "ok":
                self.report.stored += 1
            else:
                self.report.rejected += 1
                self.report.reasons[it.reason or "unknown"] += 1
        self.report.embedded += 0 if vectors is None else len(vectors)
        emit(self.progress, ProgressEvent("ingest", self.report.processed, total, self._counts()))

    def _counts(self) -> dict[str, int]:
        return {
            "stored": self.report.stored,
            "rejected": self.report.rejected,
            "skipped": self.report.skipped,
        }
