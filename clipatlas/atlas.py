"""``Atlas``: the library API every edge (CLI, web app) calls.

    from clipatlas import Atlas
    with Atlas.open("photos") as atlas:
        report = atlas.ingest("~/Pictures")
        hits = atlas.search_text("a dog on a beach", k=5)

One Atlas is one collection: its database (SQLite under ``CLIPATLAS_HOME`` or the server at
``CLIPATLAS_DATABASE_URL``), its media folder and its derived caches.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from clipatlas.analysis.duplicates import (
    DEFAULT_COSINE,
    DEFAULT_PHASH_DISTANCE,
    DuplicateReport,
    find_duplicate_groups,
)
from clipatlas.analysis.export import ExportReport, export_items
from clipatlas.analysis.search import SearchHit, search_vectors
from clipatlas.atlas_runs import RunsMixin
from clipatlas.embedders.base import Embedder
from clipatlas.errors import (
    CollectionNotFoundError,
    ConfigError,
    EmbedderMismatchError,
    Reason,
)
from clipatlas.images import ImageLimits
from clipatlas.index.cache import load_exact_index
from clipatlas.index.exact import ExactIndex
from clipatlas.pipeline.decode import DecodeConfig, remove_stale_temp_files
from clipatlas.pipeline.ingest import Ingestor, IngestReport
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.registry import Registry, default_registry
from clipatlas.settings import Settings, load_settings
from clipatlas.sources.base import Source, SourceContext
from clipatlas.store.base import CollectionInfo
from clipatlas.store.importing import Match, known_ids, read_vector_file, validate_vectors
from clipatlas.store.sql import SqlStore, sqlite_url

if TYPE_CHECKING:
    from clipatlas.fetch import Fetcher

__all__ = ["Atlas", "CollectionStats", "ImportReport", "list_collections"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUMMARY_LAG = 5.0  # seconds; see Atlas.summary_lag


@dataclass(frozen=True)
class CollectionStats:
    name: str
    database: str
    embedder_id: str | None
    dim: int | None
    stored: int
    rejected: int
    vectors: int
    reasons: Mapping[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "embedder": self.embedder_id,
            "dim": self.dim,
            "stored": self.stored,
            "rejected": self.rejected,
            "vectors": self.vectors,
            "reasons": dict(self.reasons),
        }


@dataclass(frozen=True)
class ImportReport:
    imported: int
    dim: int
    embedder_id: str


class Atlas(RunsMixin):
    """One collection: ingest, embed, store, search, cluster (:class:`RunsMixin`)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: SqlStore,
        registry: Registry,
        model: str | None = None,
    ) -> None:
        self.name, self.settings, self.store, self.registry = name, settings, store, registry
        self.collection: CollectionInfo = store.ensure_collection(name)
        self.directory = settings.collection_dir(name)
        self.media_root = self.directory / "media"
        self.cache_dir = self.directory / "cache"
        self._model = model
        self._embedder: Embedder | None = None
        self._index: ExactIndex | None = None
        self._index_token: str | None = None
        self._index_version = -1  # the collection version the index was loaded at
        self._index_built = 0.0  # time.monotonic() of that load
        self._index_lock = threading.Lock()
        self._lazy_lock = threading.Lock()  # creates the embedder and the fetcher once
        self._fetcher: Fetcher | None = None

    @classmethod
    def open(
        cls,
        name: str = "default",
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        model: str | None = None,
        create: bool = True,
    ) -> Atlas:
        """Open the collection ``name``, creating it unless ``create`` is False.

        ``model`` names the embedder for a new collection; a collection already bound to an
        embedder refuses another one at the first ingest or import. With ``create=False`` a
        missing collection raises :class:`CollectionNotFoundError` and nothing is written.
        """
        if not _NAME.match(name):
            raise ConfigError(f"collection name {name!r}: use letters, digits, '.', '_' or '-'")
        settings = settings or load_settings()
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
        return cls(name, settings, store, registry or default_registry(), model)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.store.close()

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

    def source(self, kind: str, **options: Any) -> Source:
        """Build a registered source, e.g. ``source("civitai", types=["LORA"], limit=300)``."""
        return self.registry.create_source(
            kind, SourceContext(self.settings, self.fetcher), **options
        )

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    # -- models ------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The embedder this collection uses (bound) or will use (requested/default)."""
        return self.collection.embedder_id or self._model or self.settings.model

    def embedder(self) -> Embedder:
        """The collection's embedder, loaded on first use."""
        if self._embedder is None:
            with self._lazy_lock:  # request threads of the web app share one Atlas
                if self._embedder is None:
                    requested = self._model
                    bound = self.collection.embedder_id
                    if bound and requested and requested != bound:
                        raise EmbedderMismatchError(self.name, bound, requested)
                    self._embedder = self.registry.create_embedder(self.model_id, self.settings)
        return self._embedder

    def _bind(self, embedder_id: str, dim: int) -> None:
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
        :meth:`assign_new`; ``report.arrivals`` holds the result and the re-cluster advice).
        ``should_stop`` is asked between items; when it says so the ingest raises
        :class:`~clipatlas.errors.OperationCancelled` with every finished batch committed.
        """
        if not isinstance(source, Source):
            source = self.source("folder", root=source)
        embedder = None
        if embed:
            embedder = self.embedder()
            self._bind(embedder.id, embedder.dim)
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
        if assign and report.embedded and self.runs():
            report.arrivals = self.assign_new().as_dict()
        return report

    def import_embeddings(
        self,
        vectors: str | os.PathLike[str],
        ids: str | os.PathLike[str] | None = None,
        *,
        embedder_id: str | None = None,
        match: Match = "key",
        id_column: str = "id",
        vector_column: str = "vector",
        progress: ProgressCallback | None = None,
    ) -> ImportReport:
        """Attach vectors computed elsewhere to stored items (validated, L2-normalised)."""
        vf = read_vector_file(
            Path(vectors),
            Path(ids) if ids else None,
            id_column=id_column,
            vector_column=vector_column,
        )
        model = embedder_id or self.model_id
        dim = self.collection.dim if self.collection.embedder_id else vf.matrix.shape[1]
        lookup = (
            self.store.find_items(self.collection, source_keys=vf.ids) if match == "key" else {}
        )
        stored = (
            self.store.stored_item_ids(
                self.collection, [int(k) for k in vf.ids if k.lstrip("-").isdigit()]
            )
            if match == "id"
            else set()
        )
        item_ids = validate_vectors(
            str(vectors), vf, int(dim or 0), known_ids(vf.ids, match, lookup, stored), match
        )
        self._bind(model, vf.matrix.shape[1])
        norms = np.linalg.norm(vf.matrix, axis=1, keepdims=True)
        step = 10_000
        for start in range(0, len(item_ids), step):
            self.store.put_vectors(
                self.collection,
                item_ids[start : start + step],
                vf.matrix[start : start + step] / norms[start : start + step],
            )
            emit(progress, ProgressEvent("import", min(start + step, len(item_ids)), len(item_ids)))
        return ImportReport(len(item_ids), vf.matrix.shape[1], model)

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
        version = self.store.version(self.collection)
        if self._index is not None and version == self._index_version:
            return self._index
        staleness = self.settings.index_staleness if max_staleness is None else max_staleness
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

    def _search(
        self, query: np.ndarray, k: int, exclude: set[int] | None = None
    ) -> list[SearchHit]:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        return search_vectors(
            self.index(), self.store, self.collection, query, k, self.media_root, exclude=exclude
        )

    def search_text(self, text: str, k: int = 10) -> list[SearchHit]:
        """Items whose pictures best match ``text`` (CLIP text->image), best first."""
        if not text.strip():
            raise ConfigError("search text is empty")
        return self._search(self.embedder().embed_texts([text])[0], k)

    def search_image(
        self, image: str | os.PathLike[str] | bytes | Image.Image, k: int = 10
    ) -> list[SearchHit]:
        """Items most similar to a picture (a path, raw bytes or a PIL image), best first."""
        from clipatlas.analysis.probe import picture_from

        return self._search(self.embedder().embed_images([picture_from(self, image)])[0], k)

    def search_item(self, item_id: int, k: int = 10) -> list[SearchHit]:
        """Items most similar to a stored item (the item itself excluded)."""
        index = self.index()
        rows = np.flatnonzero(index.ids == item_id)
        if not len(rows):
            raise ConfigError(f"item {item_id} has no vector in collection {self.name!r}")
        query = np.asarray(index.matrix[rows[0]], dtype=np.float32)
        return self._search(query, k, exclude={item_id})

    # -- cleaning ----------------------------------------------------------------------------

    def find_duplicates(
        self,
        *,
        phash_distance: int | None = DEFAULT_PHASH_DISTANCE,
        cosine: float | None = DEFAULT_COSINE,
    ) -> DuplicateReport:
        """Groups of near-duplicate stored items; changes nothing.

        Two items are near-duplicates when their pHashes differ in at most ``phash_distance``
        bits or their vectors have cosine >= ``cosine`` (None switches a test off). Each group
        keeps the item with the largest pixel area, then the sharpest, then the lowest id.
        """
        items = [it for page in self.store.iter_items(self.collection, status="ok") for it in page]
        ids, vectors = self.store.load_vectors(self.collection)
        report = find_duplicate_groups(
            items, ids, vectors, phash_distance=phash_distance, cosine=cosine
        )
        involved = [g.kept for g in report.groups] + [m.id for g in report.groups for m in g.others]
        by_id = {it.id: it for it in items}
        return replace(report, details={i: by_id[i] for i in involved})

    def mark_duplicates(
        self,
        *,
        phash_distance: int | None = DEFAULT_PHASH_DISTANCE,
        cosine: float | None = DEFAULT_COSINE,
    ) -> DuplicateReport:
        """Find near-duplicates and reject all but the kept item of each group.

        The others become ``status="rejected"``, ``reason="duplicate"`` with
        ``meta.duplicate_of`` (the kept id) and ``meta.near_duplicate`` (their pHash distance
        and cosine to it), all in one transaction; search no longer returns them.
        """
        report = self.find_duplicates(phash_distance=phash_distance, cosine=cosine)
        rejections = [
            (
                m.id,
                Reason.DUPLICATE.value,
                {
                    "duplicate_of": g.kept,
                    "near_duplicate": {"phash_distance": m.phash_distance, "cosine": m.cosine},
                },
            )
            for g in report.groups
            for m in g.others
        ]
        marked = self.store.reject_items(self.collection, rejections)
        return replace(report, marked=marked, applied=True)

    def export_metadata(
        self, path: str | os.PathLike[str], *, status: str | None = None
    ) -> ExportReport:
        """Write every item (or those of ``status``: "ok"/"rejected") to a .csv/.parquet file."""
        return export_items(
            self.store, self.collection, Path(path).expanduser(), self.media_root, status=status
        )

    # -- dataset builder (thin delegates to clipatlas.dataset) --------------------------------
    if TYPE_CHECKING:
        from clipatlas.dataset import DatasetBuild, StopHook

    def build_dataset(
        self,
        query: str,
        out: str | os.PathLike[str],
        *,
        source: str = "naver",
        limit: int = 100,
        source_options: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        should_stop: StopHook | None = None,
        **stages: Any,
    ) -> DatasetBuild:
        """Build (or resume) a clean dataset of ``query`` in ``out``: see
        :mod:`clipatlas.dataset`. ``stages``: ``quality``/``meaning``/``export`` configs,
        ``oversample``."""
        from clipatlas.dataset import BuildRequest, build_dataset

        request = BuildRequest(query, Path(out), source, limit, dict(source_options or {}),
                               **stages)  # fmt: skip
        return build_dataset(self, request, progress=progress, should_stop=should_stop)

    # -- captions (thin delegates to clipatlas.captions) -------------------------------------
    if TYPE_CHECKING:
        from clipatlas.captions import CaptionHit, CaptionImportReport, CaptionRunReport, Captions

    def captions(self) -> Captions:
        """Retrieval-augmented captioning of this collection (:mod:`clipatlas.captions`)."""
        from clipatlas.captions import Captions

        if getattr(self, "_captions", None) is None:
            self._captions: Captions | None = Captions(self)
        assert self._captions is not None
        return self._captions

    def import_captions(self, path: str | os.PathLike[str], **options: Any) -> CaptionImportReport:
        """Import a captioned dataset (Flickr8k folder, JSONL/CSV, saved HF dataset)."""
        return self.captions().import_captions(path, **options)

    def caption(self, item_ids: list[int] | None = None, **options: Any) -> CaptionRunReport:
        """Caption stored items (default: all) with the retrieval-augmented prompt; resumable."""
        return self.captions().caption(item_ids, **options)

    def search_captions(self, text: str, k: int = 10, **options: Any) -> list[CaptionHit]:
        """Text search fusing CLIP, caption-embedding and keyword ranks (RRF by default)."""
        return self.captions().search(text, k, **options)

    def caption_eval(self, **options: Any) -> dict[str, Any]:
        """Caption held-out pictures with and without retrieval; JSON + HTML report."""
        return self.captions().evaluate(**options)

    # -- record matching (thin delegates to clipatlas.matching) ------------------------------
    if TYPE_CHECKING:
        from clipatlas.matching import (
            Calibration,
            RecordImportReport,
            RecordMatch,
            RecordMatcher,
            RecordSpec,
        )

    def records(self) -> RecordMatcher:
        """Record import, matching and calibration of this collection (clipatlas.matching)."""
        from clipatlas.matching import RecordMatcher

        if getattr(self, "_matcher", None) is None:
            self._matcher: RecordMatcher | None = RecordMatcher(self)
        assert self._matcher is not None
        return self._matcher

    def import_records(
        self, path: str | os.PathLike[str], spec: RecordSpec | None = None, *,
        replace: bool = False, progress: ProgressCallback | None = None,
    ) -> RecordImportReport:  # fmt: skip
        """Import records (.jsonl/.csv): one typed error per bad record, the rest stored."""
        return self.records().import_records(path, spec, replace=replace, progress=progress)

    def match(self, record: str | Mapping[str, Any], **options: Any) -> list[RecordMatch]:
        """Stored records matching ``record`` above the threshold, with explanations."""
        return self.records().match(record, **options)

    def match_batch(self, **options: Any) -> dict[str, list[RecordMatch]]:
        """Match the records of the latest import (or given keys) against the others."""
        return self.records().match_batch(**options)

    def calibrate_match(self, pairs: Any, **options: Any) -> Calibration:
        """Fit fusion weights and threshold on labelled pairs; saved with the collection."""
        return self.records().calibrate(pairs, **options)

    # -- information -------------------------------------------------------------------------

    def summary_lag(self) -> float:
        """Seconds counts shown on pages may lag behind writes: none unless searches may use
        a stale index (``index_staleness``, as under ``clipatlas serve``), then at most
        :data:`SUMMARY_LAG`, so a page viewed during an ingest does not recount the
        collection after every batch."""
        return min(self.settings.index_staleness, SUMMARY_LAG)

    def stats(self, max_age: float | None = None) -> CollectionStats:
        """Counts of the collection; ``max_age`` as in :meth:`summary_lag` (its default)."""
        self.collection = self.store.get_collection(self.name)
        lag = self.summary_lag() if max_age is None else max_age
        counts = self.store.counts(self.collection, lag)
        return CollectionStats(
            name=self.name,
            database=self.store.engine.url.render_as_string(hide_password=True),
            embedder_id=self.collection.embedder_id,
            dim=self.collection.dim,
            stored=counts["ok"],
            rejected=counts["rejected"],
            vectors=counts["vectors"],
            reasons=self.store.reason_counts(self.collection, lag),
        )


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
