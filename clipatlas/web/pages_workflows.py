"""Pages of the later workflows: classify, prompt recommendations, caption search (and the
caption job form), record matching, the dataset builder form and a build's report.

Read-only answers (recommendations, caption search) render on the server from a GET form;
uploads (classify, match) and jobs go through the API from ``static/app.js``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from clipatlas.errors import ClipatlasError
from clipatlas.jobs.workflows import BUILD_SOURCES
from clipatlas.web.api_workflows import build_report, builds, caption_hits
from clipatlas.web.deps import PoolDep, StateDep
from clipatlas.web.pages import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _runs(pool: PoolDep, name: str) -> list[dict[str, Any]]:
    return pool.get(name).runs()


@router.get("/c/{name}/classify", response_class=HTMLResponse)
def classify_page(
    request: Request, name: str, pool: PoolDep, run: int | None = None
) -> HTMLResponse:
    runs = _runs(pool, name)
    return render(request, "classify.html", name=name, runs=runs, run=run)


@router.get("/c/{name}/recommend", response_class=HTMLResponse)
def recommend_page(
    request: Request,
    name: str,
    pool: PoolDep,
    prompt: Annotated[str, Query(max_length=1000)] = "",
    run: int | None = None,
    top: Annotated[int, Query(ge=1, le=20)] = 3,
) -> HTMLResponse:
    runs = _runs(pool, name)
    answer: dict[str, Any] | None = None
    error = None
    if prompt.strip() and runs:
        from clipatlas.web.api_atlas import recommend

        try:
            answer = recommend(name, pool, prompt, run, top, 6)
        except ClipatlasError as exc:
            error = str(exc)
    return render(request, "recommend.html", name=name, runs=runs, run=run, prompt=prompt,
                  answer=answer, error=error)  # fmt: skip


@router.get("/c/{name}/captions", response_class=HTMLResponse)
def captions_page(
    request: Request,
    name: str,
    pool: PoolDep,
    state: StateDep,
    q: Annotated[str, Query(max_length=1000)] = "",
    fusion: Annotated[str, Query(pattern="^(rrf|weighted)$")] = "weighted",
) -> HTMLResponse:
    hits: list[dict[str, Any]] | None = None
    error = None
    if q.strip():
        try:
            with pool.exclusive(name) as atlas:
                hits = caption_hits(atlas, q, 24, {}, fusion)
        except ClipatlasError as exc:
            error = str(exc)
    else:
        pool.get(name)
    s = state.settings
    return render(request, "captions.html", name=name, q=q, fusion=fusion, hits=hits,
                  error=error, default_model=s.caption_model, base_url=s.caption_base_url,
                  neighbours=s.caption_neighbours, prompt_chars=s.caption_prompt_chars,
                  language=s.caption_language)  # fmt: skip


@router.get("/c/{name}/match", response_class=HTMLResponse)
def match_page(request: Request, name: str, pool: PoolDep) -> HTMLResponse:
    pool.get(name)
    return render(request, "match.html", name=name)


@router.get("/dataset", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    pool: PoolDep,
    collection: Annotated[str, Query(max_length=100)] = "datasets",
) -> HTMLResponse:
    known = collection in pool.names()
    listed = builds(pool.get(collection)) if known else []
    return render(request, "dataset.html", collection=collection, sources=BUILD_SOURCES,
                  builds=listed)  # fmt: skip


@router.get("/c/{name}/datasets/{build_id}/report", response_class=Response)
def dataset_report(name: str, build_id: int, pool: PoolDep) -> Response:
    """The report, by build id (never a path), sandboxed: no scripts, no network."""
    return build_report(pool.get(name), build_id)
