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
from collections.abc import Mapping
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
from clipatlas.analysis.runs import Runs
from clipatlas.analysis.search import SearchHit, search_vectors
from clipatlas.delegation import Forwarded, delegate
from clipatlas.engine import Engine, list_collections, open_store
from clipatlas.errors import ConfigError, Reason
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.registry import Registry, default_registry
from clipatlas.settings import Settings, load_settings
from clipatlas.store.base import CollectionInfo
from clipatlas.store.importing import (
    Match,
    check_dimension,
    known_ids,
    read_vector_file,
    validate_vectors,
)
from clipatlas.store.sql import SqlStore

if TYPE_CHECKING:
    from clipatlas.fetch import Fetcher
    from clipatlas.index.exact import ExactIndex

__all__ = ["Atlas", "CollectionStats", "ImportReport", "list_collections"]

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


class Atlas:
    """One collection: ingest, embed, store, search, cluster, caption, build datasets, match
    records. A facade over the collection's :class:`~clipatlas.engine.Engine` and the features
    composed on it by delegation: clustering runs (:mod:`clipatlas.analysis.runs`), captions,
    record matching, the dataset builder; each takes the engine, never the Atlas."""

    # the engine's: the current collection row, and what tests swap (a fetcher with fake DNS,
    # the in-memory index dropped to act as a new process)
    collection: Forwarded[CollectionInfo] = Forwarded("engine")
    _fetcher: Forwarded[Fetcher | None] = Forwarded("engine")
    _index: Forwarded[ExactIndex | None] = Forwarded("engine")

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: SqlStore,
        registry: Registry,
        model: str | None = None,
    ) -> None:
        self.engine = engine = Engine(name, settings, store, registry, model)
        self.name, self.settings, self.store, self.registry = name, settings, store, registry
        self.directory, self.media_root = engine.directory, engine.media_root
        self.cache_dir = engine.cache_dir
        self._runs = Runs(engine)
        engine.place_arrivals = self._runs.place_arrivals

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
        settings = settings or load_settings()
        store = open_store(name, settings, create=create)
        return cls(name, settings, store, registry or default_registry(), model)

    def close(self) -> None:
        self.engine.close()

    fetcher = delegate(Engine.fetcher, "engine")
    source = delegate(Engine.source, "engine")

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    # -- models ------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The embedder this collection uses (bound) or will use (requested/default)."""
        return self.engine.model_id

    embedder = delegate(Engine.embedder, "engine")

    def _bind(self, embedder_id: str, dim: int) -> None:
        self.engine.bind(embedder_id, dim)

    # -- ingestion ---------------------------------------------------------------------------

    ingest = delegate(Engine.ingest, "engine")

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
        bound = bool(self.collection.embedder_id)
        dim = self.collection.dim if bound else self.engine.text_dim(model)
        check_dimension(str(vectors), vf, dim, self.collection.embedder_id or model, bound=bound)
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
            str(vectors), vf, known_ids(vf.ids, match, lookup, stored), match
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

    index = delegate(Engine.index, "engine")

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

        return self._search(self.embedder().embed_images([picture_from(self.engine, image)])[0], k)

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

    # -- clustering runs, names, classify, recommend, arrivals (clipatlas.analysis.runs) ------

    cluster = delegate(Runs.cluster, "_runs")
    runs = delegate(Runs.runs, "_runs")
    run = delegate(Runs.run, "_runs")
    map = delegate(Runs.map, "_runs")
    eval_clusters = delegate(Runs.eval_clusters, "_runs")
    name_clusters = delegate(Runs.name_clusters, "_runs")
    rename_cluster = delegate(Runs.rename_cluster, "_runs")
    classify = delegate(Runs.classify, "_runs")
    recommend = delegate(Runs.recommend, "_runs")
    assign_new = delegate(Runs.assign_new, "_runs")

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
        return build_dataset(self.engine, request, progress=progress, should_stop=should_stop)

    # -- captions (thin delegates to clipatlas.captions) -------------------------------------
    if TYPE_CHECKING:
        from clipatlas.captions import CaptionHit, CaptionImportReport, CaptionRunReport, Captions

    def captions(self) -> Captions:
        """Retrieval-augmented captioning of this collection (:mod:`clipatlas.captions`)."""
        from clipatlas.captions import Captions

        if getattr(self, "_captions", None) is None:
            self._captions: Captions | None = Captions(self.engine)
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
            self._matcher: RecordMatcher | None = RecordMatcher(self.engine)
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

    def stats(self, max_age: float | None = None, *, reread: bool = True) -> CollectionStats:
        """Counts of the collection; ``max_age`` as in :meth:`summary_lag` (its default).
        ``reread=False`` trusts the collection row already held (just read by the caller)."""
        if reread:
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
