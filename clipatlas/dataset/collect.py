"""Collect stage: list candidates once (stored with the build), then ingest them.

The listing is saved in ``dataset_candidates`` when the source finishes it, so a resumed build
replays it (:class:`ListedSource`) instead of asking the search API again; ingest skips every
candidate it already stored or rejected, so nothing is fetched or embedded twice. Cancellation
takes effect between ingest batches (everything committed stays).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from clipatlas.errors import BuildCancelledError, ConfigError, NaverQuotaError, NoCandidatesError
from clipatlas.pipeline.ingest import IngestReport
from clipatlas.progress import ProgressCallback, ProgressEvent, emit
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.dataset.config import BuildRequest
    from clipatlas.dataset.state import BuildState, CandidateRow
    from clipatlas.engine import Engine

__all__ = ["ListedSource", "StopHook", "collect", "ingest_candidates", "source_options"]


class StopHook(Protocol):
    """A cancel hook: returns True when the build should stop (polled between items)."""

    def __call__(self) -> bool: ...


def _search_options(request: BuildRequest) -> dict[str, Any]:
    return {"query": request.query, "limit": request.candidates_wanted}


# sources that search by words get the query and the number of candidates wanted; the others
# (folder, urls) list what their path holds and the build takes the first ones
_LISTING_DEFAULTS: dict[str, Callable[[BuildRequest], dict[str, Any]]] = {
    "naver": _search_options,
    "civitai": _search_options,
}


def source_options(request: BuildRequest) -> dict[str, Any]:
    defaults = _LISTING_DEFAULTS.get(request.source)
    return {**(defaults(request) if defaults else {}), **request.source_options}


class ListedSource:
    """A stored listing replayed as a :class:`~clipatlas.sources.base.Source`."""

    def __init__(self, name: str, rows: list[CandidateRow]) -> None:
        self.name, self.rows = name, rows

    def iter_candidates(self) -> Iterator[Candidate]:
        return (r.candidate for r in self.rows)


def collect(
    engine: Engine,
    state: BuildState,
    request: BuildRequest,
    progress: ProgressCallback | None,
    should_stop: StopHook,
    warnings: list[dict[str, Any]],
) -> list[CandidateRow]:
    """The build's candidates: the stored listing, or a new one from the source.

    A daily quota met after some candidates were listed ends the listing there (a
    ``partial_listing`` warning is appended to ``warnings``); met before any, it is raised.
    """
    from clipatlas.dataset.state import CandidateRow

    if state.listed:
        rows = state.candidates()
        emit(progress, ProgressEvent("collect", len(rows), len(rows), message="resumed"))
        return rows
    try:
        source = engine.source(request.source, **source_options(request))
    except TypeError as exc:  # an option this source does not take
        raise ConfigError(f"source {request.source!r}: {exc}") from None
    wanted = request.candidates_wanted
    rows = []
    try:
        for candidate in source.iter_candidates():
            if should_stop():
                raise BuildCancelledError(state.id, "collect")
            rows.append(CandidateRow(len(rows), candidate))
            if len(rows) % 50 == 0:
                emit(progress, ProgressEvent("collect", len(rows), wanted))
            if len(rows) >= wanted:
                break
    except NaverQuotaError as exc:
        if exc.scope != "daily" or not rows:
            raise
        warnings.append(
            {
                "code": "partial_listing",
                "message": (
                    f"the Naver daily quota (errorCode {exc.code}) ran out after {len(rows)} of "
                    f"{wanted} candidates: the dataset is built from those. Run again after the "
                    "reset (midnight KST, with --overwrite) to list the rest; pictures already "
                    "downloaded are not fetched again"
                ),
                "listed": len(rows),
                "wanted": wanted,
            }
        )
    emit(progress, ProgressEvent("collect", len(rows), len(rows)))
    if not rows:
        raise NoCandidatesError(request.query, request.source)
    state.clear_candidates()
    state.add_candidates(rows)
    if not warnings:  # a partial listing is listed again next time
        state.mark_listed()
    return rows


def ingest_candidates(
    engine: Engine,
    state: BuildState,
    name: str,
    rows: list[CandidateRow],
    progress: ProgressCallback | None,
    should_stop: StopHook,
) -> IngestReport:
    """Fetch, decode, hash and embed the candidates (idempotent: done ones are skipped)."""

    def relay(event: ProgressEvent) -> None:
        emit(progress, event)
        if event.stage == "ingest" and event.done and should_stop():
            raise BuildCancelledError(state.id, "ingest")  # after a committed batch

    if should_stop():
        raise BuildCancelledError(state.id, "ingest")
    return engine.ingest(ListedSource(name, rows), progress=relay)
