"""The dataset build: collect -> ingest -> quality -> meaning -> export -> report.

One build is one row in ``dataset_builds`` keyed by (collection, output folder); running the
same request again resumes it: the stored listing is replayed, ingest skips what it already
fetched and embedded, and the cheap stages (quality, meaning, export) run again from the
stored pictures and vectors, with whatever thresholds were given this time. ``should_stop``
is polled between items and batches (a job system's cancel hook); a cancelled or failed build
leaves its output folder untouched and records why in its row.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from clipatlas.dataset.collect import StopHook, collect, ingest_candidates, source_options
from clipatlas.dataset.config import BuildRequest
from clipatlas.dataset.download import download_candidates, remove_downloads
from clipatlas.dataset.export import (
    ExportFile,
    check_output,
    discard,
    dropped_rows,
    finalize,
    staging,
    write_dropped,
    write_files,
)
from clipatlas.dataset.meaning import MeaningResult, meaning_stage, query_vectors
from clipatlas.dataset.quality import quality_stage
from clipatlas.dataset.report import ReportEntry, render_report
from clipatlas.dataset.state import BuildState, CandidateRow, Outcome
from clipatlas.errors import BuildCancelledError, EmptyDatasetError
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.store.base import Item
from clipatlas.store.schema import items as items_table
from clipatlas.store.sql import transaction

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["DatasetBuild", "build_dataset"]


@dataclass
class DatasetBuild:
    """What a build produced: counts per stage and reason, the chosen cluster, the files."""

    build_id: int
    query: str
    out: Path
    candidates: int
    kept: int
    dropped: dict[str, int]  # "stage:reason" -> candidates
    chosen_cluster: int | None
    clusters: list[dict[str, Any]]
    files: list[str]
    ingest: dict[str, Any]
    seconds: float
    resumed: bool
    report: Path | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list, repr=False)
    decided_by: str = ""  # how the cluster was chosen: size | text_tie_break | ...
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dropped_candidates(self) -> list[dict[str, Any]]:
        """One entry per dropped candidate: where it came from, the stage, reason, scores."""
        return dropped_rows(self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "query": self.query,
            "out": str(self.out),
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped": self.dropped,
            "chosen_cluster": self.chosen_cluster,
            "clusters": [{k: v for k, v in c.items() if k != "positions"} for c in self.clusters],
            "ingest": self.ingest,
            "seconds": round(self.seconds, 3),
            "resumed": self.resumed,
            "report": None if self.report is None else str(self.report),
            "decided_by": self.decided_by,
            "warnings": self.warnings,
            "dropped_candidates": self.dropped_candidates,
        }


def _items_for(engine: Engine, rows: Sequence[CandidateRow]) -> dict[tuple[str, str], Item]:
    by_source: dict[str, list[str]] = {}
    for r in rows:
        by_source.setdefault(r.candidate.source, []).append(r.candidate.key)
    ids: list[int] = []
    with transaction(engine.store.engine) as conn:
        for source, keys in by_source.items():
            for start in range(0, len(keys), 500):
                ids += conn.execute(
                    select(items_table.c.id).where(
                        items_table.c.collection_id == engine.collection.id,
                        items_table.c.source == source,
                        items_table.c.source_key.in_(keys[start : start + 500]),
                    )
                ).scalars()
    return {(it.source, it.source_key): it for it in engine.store.get_items(engine.collection, ids)}


def build_dataset(
    engine: Engine,
    request: BuildRequest,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopHook | None = None,
) -> DatasetBuild:
    """Run (or resume) the build of ``request`` in ``engine``'s collection."""
    started = time.perf_counter()
    request.check()
    out = request.out.expanduser().resolve()
    check_output(out, request.export.overwrite)  # before any work: fail fast, write nothing
    stop = should_stop or (lambda: False)
    listing = {
        "query": request.query,
        "source": request.source,
        "wanted": request.candidates_wanted,
        "options": {k: str(v) for k, v in source_options(request).items()},
    }
    state = BuildState.open(engine.store, engine.collection, out, listing, request.params())
    resumed = state.listed
    staged: Path | None = None
    warnings: list[dict[str, Any]] = []
    try:
        rows = collect(engine, state, request, progress, stop, warnings)
        state.update(status="ingesting", stage="fetch")
        rows = download_candidates(engine, state, rows, progress, stop)
        state.update(stage="ingest")
        report = ingest_candidates(engine, state, rows[0].candidate.source, rows, progress, stop)
        remove_downloads(engine, rows)
        if stop():
            raise BuildCancelledError(state.id, "quality")
        state.update(status="filtering", stage="quality")
        result, outcomes, items = _judge(engine, request, rows, progress)
        warnings += result.warnings
        kept = result.kept[: request.limit]
        for s, scores in result.kept[request.limit :]:
            outcomes.append(
                Outcome(
                    s.row.position,
                    s.item.id,
                    "dropped",
                    "export",
                    "over_limit",
                    f"beyond the {request.limit} best pictures",
                    scores,
                )
            )
        state.save_outcomes(outcomes)
        clusters = [c.as_dict() for c in result.clusters]
        state.update(
            status="exporting", stage="export", clusters=clusters, chosen_cluster=result.chosen
        )
        if not kept:
            raise EmptyDatasetError(request.query, Counter(o.reason or "" for o in outcomes))
        staged = staging(out)
        files = [ExportFile(s.row.position, s.item, s.row.candidate.path, sc) for s, sc in kept]

        def tick(done: int) -> None:
            emit(progress, ProgressEvent("export", done, len(files)))
            if stop():
                raise BuildCancelledError(state.id, "export")

        manifest, failed = write_files(
            staged,
            files,
            query=request.query,
            media_root=engine.media_root,
            parquet=request.export.parquet,
            hf_metadata=request.export.hf_metadata,
            tick=tick,
        )
        failed_at = dict(failed)
        names = iter(r["file"] for r in manifest)
        final = [
            Outcome(
                f.position,
                f.item.id,
                "dropped",
                "export",
                "unreadable",
                failed_at[f.position],
                f.scores,
            )
            if f.position in failed_at
            else Outcome(f.position, f.item.id, "kept", "export", None, None, f.scores, next(names))
            for f in files
        ]
        state.save_outcomes(final)
        if not manifest:
            raise EmptyDatasetError(request.query, Counter(o.reason or "" for o in outcomes))
        rows_out = state.outcomes()
        write_dropped(staged, dropped_rows(rows_out))
        if request.export.report:
            (staged / "report.html").write_text(
                _report(request, rows_out, items, engine.media_root, clusters, result, warnings),
                encoding="utf-8",
            )
        dropped = Counter(
            f"{r['stage']}:{r['reason']}" for r in rows_out if r["outcome"] == "dropped"
        )
        summary = {
            "query": request.query,
            "params": request.params(),
            "candidates": len(rows),
            "kept": len(manifest),
            "dropped": dict(sorted(dropped.items())),
            "clusters": clusters,
            "chosen_cluster": result.chosen,
            "decided_by": result.decided_by,
            "warnings": warnings,
        }
        (staged / "build.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        finalize(staged, out, request.export.overwrite)
        staged = None
        counts = {
            "candidates": len(rows),
            "kept": len(manifest),
            "dropped": dict(dropped),
            "ingest": report.as_dict(),
            "warnings": warnings,
        }
        state.update(status="done", stage="done", counts=counts, finished_at=time.time())
    except BuildCancelledError as exc:
        discard(staged)
        state.update(status="cancelled", error=str(exc))
        raise
    except BaseException as exc:
        discard(staged)
        state.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        raise
    return DatasetBuild(
        state.id,
        request.query,
        out,
        len(rows),
        len(manifest),
        dict(sorted(dropped.items())),
        result.chosen,
        clusters,
        [r["file"] for r in manifest],
        report.as_dict(),
        time.perf_counter() - started,
        resumed,
        out / "report.html" if request.export.report else None,
        rows_out,
        result.decided_by,
        warnings,
    )


def _judge(
    engine: Engine,
    request: BuildRequest,
    rows: list[CandidateRow],
    progress: ProgressCallback | None,
) -> tuple[MeaningResult, list[Outcome], dict[tuple[str, str], Item]]:
    """Quality then meaning; returns the meaning result, every drop so far, the items."""
    items = _items_for(engine, rows)
    dup_of = [int(it.meta.get("duplicate_of") or 0) for it in items.values()]
    stored = {
        it.id: it for it in engine.store.get_items(engine.collection, dup_of) if it.status == "ok"
    }
    engine.refresh_collection()
    ids, matrix = engine.store.load_vectors(engine.collection)
    dropped, survivors = quality_stage(rows, items, stored, (ids, matrix), request.quality)
    emit(progress, ProgressEvent("quality", len(rows), len(rows), {"passed": len(survivors)}))
    wanted = {s.item.id for s in survivors}
    vectors = {int(i): v for i, v in zip(ids, matrix, strict=True) if int(i) in wanted}
    query = query_vectors(engine.embedder(), request.query, request.meaning)
    result = meaning_stage(survivors, vectors, query, request.meaning)
    emit(
        progress,
        ProgressEvent("meaning", len(survivors), len(survivors), {"kept": len(result.kept)}),
    )
    return result, dropped + result.dropped, items


def _report(
    request: BuildRequest,
    rows: list[dict[str, Any]],
    items: dict[tuple[str, str], Item],
    media_root: Path,
    clusters: list[dict[str, Any]],
    result: MeaningResult,
    warnings: list[dict[str, Any]],
) -> str:
    by_id = {it.id: it for it in items.values()}
    entries = []
    for r in rows:
        item = by_id.get(r["item_id"]) if r["item_id"] is not None else None
        thumb = media_root / item.thumb_path if item is not None and item.thumb_path else None
        entries.append(
            ReportEntry(
                r["position"],
                r["uri"],
                str((r["meta"] or {}).get("title") or ""),
                thumb,
                r["outcome"],
                r["stage"],
                r["reason"],
                r["detail"],
                r["file"],
                r["scores"] or {},
            )
        )
    return render_report(
        query=request.query,
        entries=entries,
        clusters=clusters,
        params=request.params(),
        note=result.note,
        warnings=warnings,
        decided_by=result.decided_by,
    )
