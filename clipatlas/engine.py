"""``Engine``: what a feature of one collection gets to work with.

The features (captions/, dataset/, matching/, the clustering runs in analysis/runs.py, probe
and style in analysis/) each take one ``Engine`` and use only what it offers:

* the collection: ``name``, ``settings``, ``store``, ``registry``, ``collection`` (its current
  row: ``refresh_collection``), ``directory``, ``media_root``, ``cache_dir``;
* the model: ``model_id``, ``embedder()`` (loaded once, shared by threads), ``bind`` (tie the
  collection to an embedder);
* search: ``index()``, the exact or ANN index of the current vectors (cached by fingerprint);
* the outside world: ``fetcher()`` (safe HTTP), ``source(kind, ...)`` (registered sources),
  ``ingest(source)`` (decode, store, embed; progress through a callback per call).

:class:`clipatlas.Atlas` builds one engine per collection and composes the features on it;
this module imports no feature and not the Atlas.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.errors import (
    CollectionNotFoundError,
    ConfigError,
    EmbedderError,
    EmbedderMismatchError,
)
from clipatlas.images import ImageLimits
from clipatlas.index.cache import load_exact_index
from clipatlas.index.exact import ExactIndex
from clipatlas.pipeline.decode import DecodeConfig, remove_stale_temp_files
from clipatlas.pipeline.ingest import Ingestor, IngestReport
from clipatlas.progress import ProgressCallback
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from clipatlas.sources.base import Source, SourceContext
from clipatlas.store.base import CollectionInfo
from clipatlas.store.sql import SqlStore, sqlite_url

if TYPE_CHECKING:
    from clipatlas.embedders.base import Embedder
    from clipatlas.fetch import Fetcher

__all__ = ["ArrivalHook", "Engine", "list_collections", "open_store"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

ArrivalHook = Callable[[], dict[str, Any] | None]
"""Places newly embedded items on the collection's newest clustering run after an ingest and
says what it did (None: there is no run). Set by whoever composes the runs feature (the Atlas)."""


def open_store(name: str, settings: Settings, *, create: bool = True) -> SqlStore:
    """The database of collection ``name``: ConfigError for a bad name; with ``create=False``
    CollectionNotFoundError for a missing collection, and nothing is written."""
    if not _NAME.match(name):
        raise ConfigError(f"collection name {name!r}: use letters, digits, '.', '_' or '-'")
    db_file = settings.collection_dir(name) / "clipatlas.db"
    if not create and not settings.database_url and not db_file.exists():
        raise CollectionNotFoundError(name)
    store = SqlStore(
        settings.database_url or sqlite_url(db_file), vector_dtype=settings.vector_dtype
    )
    if not create:
        try:
            store.get_collection(name)
        except CollectionNotFoundError:
            store.close()
            raise
    return store


def list_collections(settings: Settings) -> list[str]:
    """Names of every collection under ``settings`` (server database or SQLite files)."""
    if settings.database_url:
        store = SqlStore(settings.database_url)
        try:
            return [c.name for c in store.list_collections()]
        finally:
            store.close()
    root = settings.home / "collections"
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/clipatlas.db"))


@dataclass(eq=False, repr=False)
class Engine:
    """One open collection and the shared, lazily built parts every feature uses."""

    name: str
    settings: Settings
    store: SqlStore
    registry: Registry
    model: str | None = None  # the embedder asked for; None: the bound one, else the default

    def __post_init__(self) -> None:
        self.collection: CollectionInfo = self.store.ensure_collection(self.name)
        self.directory = self.settings.collection_dir(self.name)
        self.media_root = self.directory / "media"
        self.cache_dir = self.directory / "cache"
        self.place_arrivals: ArrivalHook | None = None
        self._embedder: Embedder | None = None
        self._index: ExactIndex | None = None
        self._index_token: str | None = None
        self._index_version = -1  # the collection version the index was loaded at
        self._index_built = 0.0  # time.monotonic() of that load
        self._index_confirmed = 0.0  # time.monotonic() the version last matched
        self._index_lock = threading.Lock()
        self._lazy_lock = threading.Lock()  # creates the embedder and the fetcher once
        self._fetcher: Fetcher | None = None

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.store.close()

    def refresh_collection(self) -> CollectionInfo:
        """Re-read the collection's row (another process may have bound an embedder)."""
        self.collection = self.store.get_collection(self.name)
        return self.collection

    # -- the outside world -------------------------------------------------------------------

    def fetcher(self) -> Fetcher:
        """The safe HTTP fetcher of this collection's network sources (created on first use)."""
        if self._fetcher is None:
            from clipatlas.fetch import Fetcher

            with self._lazy_lock:
                if self._fetcher is None:
                    self._fetcher = Fetcher(
                        self.settings.fetch_policy(), secrets=self.settings.secrets()
                    )
        return self._fetcher

    def source(self, /, kind: str, **options: Any) -> Source:
        """Build a registered source, e.g. ``source("civitai", types=["LORA"], limit=300)``."""
        return self.registry.create_source(
            kind, SourceContext(self.settings, self.fetcher), **options
        )

    # -- models ------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The embedder this collection uses (bound) or will use (requested/default)."""
        return self.collection.embedder_id or self.model or self.settings.model

    def embedder(self) -> Embedder:
        """The collection's embedder, loaded on first use."""
        if self._embedder is None:
            with self._lazy_lock:  # request threads of the web app share one Atlas
                if self._embedder is None:
                    requested = self.model
                    bound = self.collection.embedder_id
                    if bound and requested and requested != bound:
                        raise EmbedderMismatchError(self.name, bound, requested)
                    self._embedder = self.registry.create_embedder(self.model_id, self.settings)
        return self._embedder

    def text_dim(self, model: str) -> int | None:
        """The dimension of ``model``'s text vectors (what cluster naming and text search
        compare with), or None when the model cannot be loaded here (unknown kind, no weights)."""
        try:
            embedder = (
                self.embedder()
                if model == self.model_id
                else self.registry.create_embedder(model, self.settings)
            )
            if "text" in embedder.modalities:
                return int(np.asarray(embedder.embed_texts(["probe"])).shape[-1])
            return int(embedder.dim)
        except (ConfigError, EmbedderError):
            return None

    def bind(self, embedder_id: str, dim: int) -> None:
        """Tie the collection to an embedder (EmbedderMismatchError if bound to another)."""
        self.collection = self.store.bind_embedder(self.collection, embedder_id, dim)

    # -- ingestion ---------------------------------------------------------------------------

    def ingest(
        self,
        source: str | os.PathLike[str] | Source,
        *,
        embed: bool = True,
        assign: bool = True,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> IngestReport:
        """Ingest a folder (a path) or any :class:`Source`; returns counts per outcome.

        With ``assign``, new vectors are placed on the newest clustering run at once (see
        :meth:`~clipatlas.Atlas.assign_new`; ``report.arrivals`` holds the result and the
        re-cluster advice; the Atlas sets :attr:`place_arrivals`, an engine alone has none).
        ``should_stop`` is asked between items; when it says so the ingest raises
        :class:`~clipatlas.errors.OperationCancelled` with every finished batch committed.
        """
        if not isinstance(source, Source):
            source = self.source("folder", root=source)
        embedder = None
        if embed:
            embedder = self.embedder()
            self.bind(embedder.id, embedder.dim)
        limits = ImageLimits(
            max_pixels=self.settings.max_pixels,
            min_side=self.settings.min_side,
            max_bytes=self.settings.max_file_bytes,
        )
        config = DecodeConfig(
            limits=limits,
            preprocessor=embedder.image_preprocessor() if embedder else None,
            media_root=self.media_root,
            thumbnail_size=self.settings.thumbnail_size,
            copy_media=self.settings.copy_media or source.name != "folder",
            semaphores=self.cache_dir / "semaphores",
        )
        remove_stale_temp_files(self.media_root)
        ingestor = Ingestor(
            self.store,
            self.collection,
            config,
            embedder,
            batch_size=self.settings.batch_size,
            workers=self.settings.workers,
            progress=progress,
            fetcher=self.fetcher,
            fetch_concurrency=self.settings.fetch_concurrency,
            should_stop=should_stop,
        )
        report = ingestor.run(source)
        if report.stored or report.rejected:
            self.store.analyze()
        if assign and report.embedded and self.place_arrivals is not None:
            report.arrivals = self.place_arrivals()
        return report

    # -- search ------------------------------------------------------------------------------

    def index(self, *, max_staleness: float | None = None) -> ExactIndex:
        """The search index over the current vectors (cached on disk by fingerprint): exact, or
        from ``settings.ann_threshold`` vectors an ANN index (an ExactIndex subclass whose
        ``search`` is approximate, ``report`` its measured recall@10).

        ``max_staleness`` (seconds; default ``settings.index_staleness``, 0 = always current):
        while another process writes (an ingest job adds a batch every few seconds), keep
        answering from an index at most this old and rebuild it in a background thread, rather
        than rebuilding on every batch while the caller waits. The web app serves this way.
        """
        staleness = self.settings.index_staleness if max_staleness is None else max_staleness
        if self._index is not None and staleness > 0:
            known = max(self._index_built, self._index_confirmed)  # when it was last current
            if time.monotonic() - known < staleness:
                return self._index  # it may lag writes by that much: no need to read the version
        version = self.store.version(self.collection)
        if self._index is not None and version == self._index_version:
            self._index_confirmed = time.monotonic()
            return self._index
        if self._index is not None and staleness > 0:
            if time.monotonic() - self._index_built >= staleness:
                self._refresh_index_in_background()
            return self._index
        with self._index_lock:
            self._load_index()
        assert self._index is not None
        return self._index

    def _load_index(self) -> None:
        """Load (or rebuild) the index for the collection's current state; caller holds the lock."""
        from clipatlas.index.ann import AnnConfig

        version = self.store.version(self.collection)
        token = self.store.fingerprint(self.collection).token()
        if self._index is None or token != self._index_token:
            s = self.settings
            ann = AnnConfig(
                threshold=s.ann_threshold,
                kind=s.ann_kind,
                hnsw_max=s.ann_hnsw_max,
                target_recall=s.ann_target_recall,
                sample=s.ann_recall_sample,
            )
            index = load_exact_index(
                self.store, self.collection, self.cache_dir, ann, flat_min=s.index_flat_min
            )
            self._index, self._index_token = index, token
        self._index_version, self._index_built = version, time.monotonic()

    def _refresh_index_in_background(self) -> None:
        if not self._index_lock.acquire(blocking=False):
            return  # a refresh is already running

        def refresh() -> None:
            try:
                self._load_index()
            finally:
                self._index_lock.release()

        threading.Thread(target=refresh, name="clipatlas-index", daemon=True).start()
