"""Import records: validate, store photos through the ingest pipeline, embed text, write.

Photos are ingested as ordinary items of the collection (source ``records``, key
``<record id>\\t<photo path or URL>``) by :meth:`clipatlas.Atlas.ingest`: the same safe fetch,
bounded decode, content-hash deduplication, thumbnails and CLIP image vectors as any picture,
searchable like the rest. The record links its photo item by id. A photo that fails (missing
file, HTTP error, not an image, ...) becomes a :class:`~clipatlas.errors.RecordPhotoError` in
the report and the record is kept without a photo; nothing else is lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipatlas.errors import DuplicateRecordError, MatchConfigError, RecordError, RecordPhotoError
from clipatlas.matching.records import Record
from clipatlas.matching.repository import FieldVectors, PhotoLink, RecordRepository, signature
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.embedders.base import Embedder
    from clipatlas.engine import Engine

__all__ = ["PHOTO_SOURCE", "RecordImportReport", "import_records"]

PHOTO_SOURCE = "records"
_CHUNK = 256


@dataclass
class RecordImportReport:
    import_id: int
    imported: int = 0
    already_present: int = 0  # the same records, stored by an earlier import: left as they are
    with_photo: int = 0
    errors: list[RecordError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Records not imported (photo failures are imported without their photo)."""
        return sum(not isinstance(e, RecordPhotoError) for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for e in self.errors:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        return {
            "import_id": self.import_id,
            "imported": self.imported,
            "already_present": self.already_present,
            "with_photo": self.with_photo,
            "failed": self.failed,
            "reasons": dict(sorted(reasons.items())),
            "errors": [e.as_dict() for e in self.errors],
            "seconds": round(self.seconds, 3),
        }


class _PhotoSource:
    """The photos of a batch of records, as candidates for the ingest pipeline."""

    name = PHOTO_SOURCE

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates

    def iter_candidates(self) -> Iterator[Candidate]:
        yield from self.candidates


def photo_key(record: Record) -> str:
    return f"{record.key}\t{record.photo}"


def _candidate(record: Record) -> Candidate:
    assert record.photo is not None
    if record.photo_is_url:
        return Candidate(PHOTO_SOURCE, photo_key(record), record.photo, meta={"record": record.key})
    path = Path(record.photo)
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = -1, -1.0  # unreadable now: the decoder records why
    return Candidate(
        PHOTO_SOURCE,
        photo_key(record),
        str(path),
        path=path,
        size=size,
        mtime=mtime,
        meta={"record": record.key},
    )


def _ingest_photos(
    engine: Engine,
    repo: RecordRepository,
    batch: Sequence[Record],
    progress: ProgressCallback | None,
) -> tuple[dict[str, PhotoLink], list[RecordError]]:
    with_photo = [r for r in batch if r.photo is not None]
    local = [_candidate(r) for r in with_photo if not r.photo_is_url]
    remote = [_candidate(r) for r in with_photo if r.photo_is_url]
    for group in (local, remote):
        if group:
            engine.ingest(_PhotoSource(group), progress=progress)
    found = repo.photo_items(PHOTO_SOURCE, [photo_key(r) for r in with_photo])
    links: dict[str, PhotoLink] = {}
    errors: list[RecordError] = []
    for r in with_photo:
        row = found.get(photo_key(r))
        meta = dict(row.meta or {}) if row is not None else {}
        item_id: int | None = None
        if row is not None and row.status == "ok":
            item_id = int(row.id)
        elif row is not None and row.reason == "duplicate":  # the same picture is stored already
            if "duplicate_of" in meta:
                item_id = int(meta["duplicate_of"])
            else:
                twin = repo.photo_items(PHOTO_SOURCE, [str(meta.get("duplicate_of_key"))])
                item_id = next((int(t.id) for t in twin.values() if t.status == "ok"), None)
        if item_id is not None:
            links[r.key] = PhotoLink(item_id)
            continue
        reason = row.reason if row is not None else "missing"
        detail = (row.detail or "") if row is not None else "the ingest left no item"
        links[r.key] = PhotoLink(None, reason, detail)
        errors.append(RecordPhotoError(r.key, r.photo or "", str(reason), detail))
    return links, errors


def _check_models(repo: RecordRepository, text_model: Embedder, clip: Embedder) -> None:
    stored = repo.field_models()
    for fld, model in (("text", text_model.id), ("place", text_model.id), ("clip_text", clip.id)):
        if stored.get(fld, model) != model:
            raise MatchConfigError(
                "text model",
                f"stored {fld!r} vectors come from {stored[fld]!r}, not {model!r}; "
                f"use the same model (CLIPATLAS_MATCH_TEXT_MODEL) or a new collection",
            )


def _embed(model: Embedder, texts: list[tuple[int, str]]) -> FieldVectors | None:
    """Vectors of the texts (each distinct text embedded once: places repeat a lot)."""
    if not texts:
        return None
    unique = list(dict.fromkeys(t for _, t in texts))
    row = {t: i for i, t in enumerate(unique)}
    matrix = model.embed_texts(unique)
    return FieldVectors(model.id, [i for i, _ in texts], matrix[[row[t] for _, t in texts]])


def import_records(
    engine: Engine,
    records: Sequence[Record],
    errors: Sequence[RecordError],
    text_model: Embedder,
    *,
    replace: bool = False,
    progress: ProgressCallback | None = None,
) -> RecordImportReport:
    """Store validated records (and the errors found reading them) in the engine's collection."""
    start = time.perf_counter()
    clip = engine.embedder()
    engine.bind(clip.id, clip.dim)
    repo = RecordRepository(engine.store.engine, engine.collection, engine.settings.vector_dtype)
    _check_models(repo, text_model, clip)
    report = RecordImportReport(repo.next_import_id(), errors=list(errors))
    stored = repo.stored_signatures([r.key for r in records])
    todo: list[Record] = []
    for r in records:
        if r.key in stored and not replace:
            if stored[r.key] == signature(r):  # a rerun: the same record is there already
                report.already_present += 1
            else:
                report.errors.append(
                    DuplicateRecordError(
                        r.key, "stored already with other content (use replace)", r.line
                    )
                )
        else:
            todo.append(r)
    links, photo_errors = _ingest_photos(engine, repo, todo, progress)
    report.errors.extend(photo_errors)
    for begin in range(0, len(todo), _CHUNK):
        chunk = todo[begin : begin + _CHUNK]
        texts = [(i, r.text) for i, r in enumerate(chunk) if r.text]
        places = [(i, r.place) for i, r in enumerate(chunk) if r.place]
        vectors = {
            name: fv
            for name, fv in (
                ("text", _embed(text_model, texts)),
                ("clip_text", _embed(clip, texts)),
                ("place", _embed(text_model, places)),
            )
            if fv is not None
        }
        repo.write(chunk, links, vectors, report.import_id)
        report.imported += len(chunk)
        report.with_photo += sum(
            links.get(r.key, PhotoLink(None)).item_id is not None for r in chunk
        )
        emit(
            progress,
            ProgressEvent("records", report.imported, len(todo), {"errors": len(report.errors)}),
        )
    report.errors.sort(key=lambda e: (e.line is None, e.line or 0))
    report.seconds = time.perf_counter() - start
    return report
