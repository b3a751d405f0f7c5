"""The ingest runner: source -> decode workers -> duplicate check -> embed in batches -> store.

Decoding runs in worker processes (bounded look-ahead, ordered results) while the model embeds
in this process, so the model never waits on JPEG decoding. Each batch of items and its vectors
is committed in one transaction; a killed run resumes by skipping what was committed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING

import numpy as np

from clipatlas.embedders.base import Embedder
from clipatlas.embedders.batching import embedder_batch_size
from clipatlas.errors import ClipatlasError, FetchError, OperationCancelled, Reason
from clipatlas.pipeline.decode import DecodeConfig, Decoded, decode_candidate, fetch_rejected
from clipatlas.pipeline.semaphores import TrackedSpawnContext, remove_stale_semaphores
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.sources.base import Candidate, Source
from clipatlas.store.base import CollectionInfo, NewItem
from clipatlas.store.model_links import add_links, links_of, merge_links
from clipatlas.store.sql import SqlStore

if TYPE_CHECKING:  # httpx is imported only by runs that fetch, never by decode workers
    from clipatlas.fetch import Fetcher

__all__ = ["IngestReport", "Ingestor", "resolve_workers"]

_CHUNK = 4  # candidates per worker task


def resolve_workers(requested: int) -> int:
    """0 = automatic (one per core, up to 8); -1 = decode in this process.

    Workers run at the lowest priority, so on a CPU-only machine they take the cores only when
    the model leaves them idle (between batches); with a GPU they have the CPU to themselves.
    """
    if requested != 0:
        return max(-1, requested)
    return max(1, min(os.cpu_count() or 1, 8))


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
    # the newest clustering run's view of the new items (clipatlas.analysis.style.ArrivalReport
    # as a dict), when the collection has runs
    arrivals: dict[str, object] | None = None

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
            "arrivals": self.arrivals,
        }


# -- worker side -------------------------------------------------------------------------------

_worker_config: DecodeConfig | None = None


def _init_worker(config: DecodeConfig) -> None:
    global _worker_config
    _worker_config = config
    with contextlib.suppress(OSError):  # let the model win when both want a core
        os.nice(19)
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()


def _exit_with_parent(parent: int) -> None:
    """A decode worker whose ingest was killed (kill -9 of its pid alone) is re-parented; it
    notices within half a second and exits instead of lingering with its memory."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


Job = tuple[Candidate, bytes | None] | Decoded  # to decode (with fetched bytes), or decided


def _run_job(job: Job, config: DecodeConfig) -> Decoded:
    if isinstance(job, Decoded):
        return job
    candidate, data = job
    return decode_candidate(candidate, config, data)


def _work(chunk: Sequence[Job]) -> list[Decoded]:
    assert _worker_config is not None
    return [_run_job(job, _worker_config) for job in chunk]


def _chunks(items: Iterable[Job], size: int) -> Iterator[list[Job]]:
    chunk: list[Job] = []
    for it in items:
        chunk.append(it)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _warm() -> None:
    """A no-op task: makes the pool start its workers while the source is being scanned."""


class _DecodePool:
    """Decode workers, started as soon as the ingest starts; ordered, bounded results.

    Workers are spawned (never forked: the parent holds torch threads). A pool whose workers
    die (e.g. a script that starts an ingest at import time without a ``__main__`` guard)
    raises :class:`ClipatlasError` instead of hanging. ``workers < 1`` decodes in-process.
    """

    def __init__(self, config: DecodeConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.context: TrackedSpawnContext | None = None
        if workers >= 1:
            context: BaseContext = mp.get_context("spawn")
            if config.semaphores is not None:  # record the pool's semaphores (kill -9 cleanup)
                remove_stale_semaphores(config.semaphores)
                context = self.context = TrackedSpawnContext(config.semaphores)
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(config,),
            )
            for _ in range(workers):
                self.pool.submit(_warm)

    def __enter__(self) -> _DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.context is not None:
            self.context.forget()

    def decode(self, jobs: Iterable[Job], lookahead: int) -> Iterator[Decoded]:
        """Decoded jobs in input order, at most ``lookahead`` items in flight."""
        if self.pool is None:
            for job in jobs:
                yield _run_job(job, self.config)
            return
        pending: deque[Future[list[Decoded]]] = deque()
        max_chunks = max(2 * self.workers, lookahead // _CHUNK)
        try:
            for chunk in _chunks(jobs, _CHUNK):
                pending.append(self.pool.submit(_work, chunk))
                if len(pending) >= max_chunks:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool as exc:
            raise ClipatlasError(
                "decode worker processes died; if you call ingest from a script, guard it with "
                "`if __name__ == '__main__':` (or set CLIPATLAS_WORKERS=-1)"
            ) from exc


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
        batch_size: int = 0,
        workers: int = 0,
        progress: ProgressCallback | None = None,
        fetcher: Callable[[], Fetcher] | None = None,
        fetch_concurrency: int = 16,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.store, self.collection, self.config = store, collection, config
        # checked between items; a job's progress callback offers one (clipatlas.jobs)
        self.should_stop = should_stop or getattr(progress, "should_stop", None)
        self.embedder = embedder
        self.fetcher, self.fetch_concurrency = fetcher, fetch_concurrency
        self.requested_batch_size = batch_size  # 0 = the embedder's own (automatic) size
        self.workers = resolve_workers(workers)
        self.progress = progress
        self.report = IngestReport()

    @property
    def batch_size(self) -> int:
        """Pictures embedded (and committed) together: the explicit size, else the embedder's.

        Read again after every batch, so the groups follow an automatic size that was measured
        or backed off (:mod:`clipatlas.embedders.batching`) and match the model's batches.
        """
        return embedder_batch_size(self.embedder, self.requested_batch_size)

    def _pending(self, source: Source) -> list[Candidate]:
        known = self.store.known_keys(self.collection, source.name)
        todo: list[Candidate] = []
        links: dict[tuple[str, str], list[dict[str, object]]] = {}
        for c in source.iter_candidates():
            self._check_stop()
            self.report.scanned += 1
            k = known.get(c.key)
            # local files are redone when their size or mtime changed; remote ones (no size
            # or mtime known before download) are done once
            remote = c.size is None and c.mtime is None
            unchanged = remote or (k is not None and (k.size_bytes, k.mtime) == (c.size, c.mtime))
            if k is not None and k.complete and unchanged:
                self.report.skipped += 1
                if c.meta.get("models"):  # stored for one model, offered now for another
                    links[(c.source, c.key)] = links_of(c.meta)
            else:
                todo.append(c)
            if self.report.scanned % 1000 == 0:
                emit(self.progress, ProgressEvent("scan", self.report.scanned, None))
        self.report.outside_root = len(getattr(source, "outside_root", ()))
        if links:
            add_links(self.store.engine, self.collection, by_key=links)
        return todo

    def run(self, source: Source) -> IngestReport:
        start = time.perf_counter()
        with _DecodePool(self.config, self.workers) as decoder:
            todo = self._pending(source)
            total = len(todo)
            emit(self.progress, ProgressEvent("ingest", 0, total, self._counts()))
            batch: list[Decoded] = []
            n_ok = 0
            batch_size = self.batch_size
            lookahead = 2 * batch_size + 8 * max(1, self.workers)
            for decoded in decoder.decode(self._jobs(todo), lookahead):
                self._check_stop()
                batch.append(decoded)
                n_ok += decoded.item.status == "ok"
                if n_ok >= batch_size:
                    self._flush(batch, total)
                    batch, n_ok, batch_size = [], 0, self.batch_size
            if batch:
                self._flush(batch, total)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def _check_stop(self) -> None:
        """Stop between items when asked; committed batches stay, a rerun does the rest."""
        if self.should_stop is not None and self.should_stop():
            raise OperationCancelled("ingest")

    def _jobs(self, todo: Sequence[Candidate]) -> Iterator[Job]:
        """Local files go to the decoders as they are; remote ones are downloaded first, many
        at a time on threads (the network waits, not the CPU), in order."""
        if all(c.path is not None for c in todo):
            yield from ((c, None) for c in todo)
            return
        if self.fetcher is None:
            raise ClipatlasError("this source offers remote pictures but no fetcher was given")
        fetched = self.fetcher().fetch_many(
            (c.download_url for c in todo), concurrency=self.fetch_concurrency, expect="any"
        )
        for c, (_, outcome) in zip(todo, fetched, strict=True):
            if isinstance(outcome, FetchError):
                yield fetch_rejected(c, outcome)
            else:
                yield (c, outcome.data)

    def _mark_duplicates(self, batch: list[Decoded]) -> None:
        hashes = [d.item.sha256 for d in batch if d.item.status == "ok" and d.item.sha256]
        existing = self.store.existing_sha256(self.collection, hashes)
        first: dict[str, Decoded] = {}
        stored_links: dict[int, list[dict[str, object]]] = {}
        for d in batch:
            it = d.item
            if it.status != "ok" or not it.sha256:
                continue
            same = existing.get(it.sha256)
            if same is not None and same[1:] != (it.source, it.source_key):
                # the same picture for another model: the stored item gets this one's links
                stored_links.setdefault(same[0], []).extend(links_of(it.meta))
                self._reject(d, Reason.DUPLICATE, {"duplicate_of": same[0]})
            elif it.sha256 in first:
                kept = first[it.sha256].item
                kept.meta = merge_links(kept.meta, links_of(it.meta))
                self._reject(d, Reason.DUPLICATE, {"duplicate_of_key": kept.source_key})
            else:
                first[it.sha256] = d
        if any(stored_links.values()):
            add_links(self.store.engine, self.collection, by_id=stored_links)

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
