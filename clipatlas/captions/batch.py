"""Batch captioning: caption many stored items with one backend, resumably.

Items already captioned by the same model and prompt version are skipped (``redo`` captions
them again), so a stopped run resumes where it was. Each item's caption — or its error
(unreachable backend, empty or non-text answer, undecodable picture) — is stored as soon as
its batch returns; one failure never stops the run. New captions are embedded with the text
model at the end, which makes them findable by text search.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipatlas.captions.backends.base import CaptionModel, CaptionRequest
from clipatlas.captions.prompt import DEFAULT_PROMPT_CHARS, PromptTemplate, compose_prompt
from clipatlas.captions.rag import Retriever, load_picture
from clipatlas.errors import CaptionBackendError, ImageError
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

if TYPE_CHECKING:
    from clipatlas.captions.context import CaptionContext

__all__ = ["CaptionRunReport", "caption_items"]


@dataclass
class CaptionRunReport:
    model: str
    prompt_version: str
    total: int = 0
    skipped: int = 0
    captioned: int = 0
    failed: int = 0
    embedded: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    captions: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["reasons"] = dict(sorted(self.reasons.items()))
        out["captions"] = {str(k): v for k, v in self.captions.items()}
        out["seconds"] = round(self.seconds, 3)
        return out


def caption_items(
    captions: CaptionContext,
    model: CaptionModel,
    item_ids: Sequence[int] | None = None,
    *,
    retrieval: bool = True,
    k: int = 5,
    template: PromptTemplate,
    prompt_chars: int = DEFAULT_PROMPT_CHARS,
    redo: bool = False,
    progress: ProgressCallback | None = None,
) -> CaptionRunReport:
    """Caption ``item_ids`` (default: every stored item with a vector) and store the results."""
    start = time.perf_counter()
    engine, cstore = captions.engine, captions.store
    version = template.version(retrieval)
    report = CaptionRunReport(model.id, version)
    retriever = Retriever(engine, cstore, k)
    wanted = list(
        dict.fromkeys(
            int(i) for i in (item_ids if item_ids is not None else retriever.ids.tolist())
        )
    )
    done = set() if redo else cstore.done_items(model.id, version)
    todo = [i for i in wanted if i not in done]
    report.total, report.skipped = len(wanted), len(wanted) - len(todo)
    emit(progress, ProgressEvent("caption", 0, len(todo), _counts(report)))
    prompt_used = bool(getattr(model, "prompt_used", True))
    step = max(1, model.batch_size)
    for first in range(0, len(todo), step):
        chunk = engine.store.get_items(engine.collection, todo[first : first + step])
        requests: list[CaptionRequest] = []
        provenance: list[dict[str, Any]] = []
        for item in chunk:
            vector = retriever.vector_of(item.id)
            near = (
                retriever.neighbours(vector, exclude={item.id})
                if retrieval and vector is not None
                else []
            )
            composed = compose_prompt(template, near, retrieval=retrieval, budget=prompt_chars)
            prompt = composed.text
            record = {
                "prompt": prompt,
                "retrieval": retrieval,
                "k": k,
                # exactly the captions that reached the prompt, not all the neighbours lent
                "neighbours": composed.neighbours(),
                "budget": composed.summary(),
                "prompt_used": prompt_used,
            }
            try:
                picture = load_picture(engine, item)
            except ImageError as exc:
                _store(
                    captions,
                    report,
                    item.id,
                    model.id,
                    version,
                    template.language,
                    record,
                    CaptionBackendError(item.uri, "decode_error", str(exc)),
                )
                continue
            requests.append(CaptionRequest(str(item.id), picture, prompt))
            provenance.append(record)
        results = model.caption(requests) if requests else []
        for request, record, result in zip(requests, provenance, results, strict=True):
            _store(
                captions,
                report,
                int(request.name),
                model.id,
                version,
                template.language,
                record,
                result,
            )
        emit(
            progress,
            ProgressEvent("caption", min(first + step, len(todo)), len(todo), _counts(report)),
        )
    report.embedded = captions.embed_pending(progress)
    report.seconds = time.perf_counter() - start
    return report


def _store(
    captions: CaptionContext,
    report: CaptionRunReport,
    item_id: int,
    model: str,
    version: str,
    language: str,
    record: dict[str, Any],
    result: str | CaptionBackendError,
) -> None:
    if isinstance(result, CaptionBackendError):
        captions.store.add_generated(
            item_id,
            model,
            version,
            language=language,
            reason=result.reason,
            detail=result.detail[:1000],
            provenance=record,
        )
        report.failed += 1
        report.reasons[result.reason] += 1
        report.errors.append(
            {"item_id": item_id, "reason": result.reason, "detail": result.detail[:300]}
        )
    else:
        captions.store.add_generated(
            item_id, model, version, text=result, language=language, provenance=record
        )
        report.captioned += 1
        report.captions[item_id] = result


def _counts(report: CaptionRunReport) -> dict[str, int]:
    return {"captioned": report.captioned, "failed": report.failed, "skipped": report.skipped}
