"""Server-rendered pages (Jinja2, autoescaped): collections, gallery, item, search, atlas, jobs.

Pages read through the same library calls as the API; their scripts (``static/app.js``) call
the API for everything that changes state, sending the write token from the page's meta tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from clipatlas.errors import ClipatlasError
from clipatlas.jobs.builtin import INGEST_SOURCES
from clipatlas.tagging import tag_counts
from clipatlas.web import browse
from clipatlas.web.api import hit_dict
from clipatlas.web.config import TOKEN_COOKIE
from clipatlas.web.deps import BoardDep, PoolDep, State, StateDep
from clipatlas.web.i18n import LANGUAGES, pick_language, translate
from clipatlas.web.selection import inject_select_script

__all__ = ["error_page", "router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # everything from upstream (URLs, EXIF, captions, names) is escaped
    )
)
_LANG_COOKIE = "clipatlas_lang"
_MAP_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; frame-ancestors 'self'; sandbox allow-scripts"
)


def _lang(request: Request) -> str:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(_LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    state: State = request.app.state.clipatlas
    other = "ko" if lang == "en" else "en"
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    switch = request.url.path + "?" + urlencode({**query, "lang": other})
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": lambda key: translate(lang, key),
            "lang": lang,
            "switch_url": switch,
            "write_token": state.config.write_token,
            **context,
        },
        status_code=status,
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(_LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return response


def error_page(request: Request, status: int, error: str, detail: str) -> Response:
    return render(request, "error.html", status, error=error, detail=detail)


# -- sign-in (only when a token is configured) -------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", bad=False)


@router.post("/login", response_model=None)
def login(request: Request, state: StateDep, token: Annotated[str, Form()]) -> Response:
    import hmac

    expected = state.config.token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return render(request, "login.html", 401, bad=True)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


# -- collections -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def index(request: Request, pool: PoolDep) -> HTMLResponse:
    overviews = [browse.overview(pool.get(name)) for name in pool.names()]
    return render(request, "index.html", collections=overviews, sources=INGEST_SOURCES)


@router.get("/c/{name}", response_class=HTMLResponse)
def collection(
    request: Request,
    name: str,
    pool: PoolDep,
    status: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    run: Annotated[str | None, Query(max_length=20, pattern=r"^-?\d*$")] = None,
    cluster: Annotated[str | None, Query(max_length=20, pattern=r"^-?\d*$")] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    after: Annotated[int | None, Query(ge=0, le=browse.MAX_ID)] = None,
    before: Annotated[int | None, Query(ge=0, le=browse.MAX_ID)] = None,
) -> HTMLResponse:
    cursor = _Cursor(offset, after, before)
    return _gallery(
        request, name, pool, status, reason, source, _int(run), _int(cluster), tag, cursor
    )


@dataclass(frozen=True)
class _Cursor:
    """Where a gallery page starts: after or before an item id (the pager's links), or an
    offset (older links)."""

    offset: int
    after: int | None
    before: int | None


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "", "-") else None  # a form's empty choice: none


def _gallery(
    request: Request,
    name: str,
    pool: PoolDep,
    status: str | None,
    reason: str | None,
    source: str | None,
    run: int | None,
    cluster: int | None,
    tag: str | None,
    cursor: _Cursor,
) -> HTMLResponse:
    atlas = pool.get(name)
    info = browse.overview(atlas)
    runs = atlas.runs()
    if cluster is not None and run is None and runs:
        run = int(runs[0]["id"])  # a cluster of the newest run
    page = browse.list_items(
        atlas,
        status=status or None,
        reason=reason or None,
        source=source or None,
        run_id=run,
        cluster=cluster,
        tag=tag or None,
        offset=cursor.offset,
        after=cursor.after,
        before=cursor.before,
        limit=60,
    )
    given = {"status": status, "reason": reason, "source": source, "run": run, "cluster": cluster,
             "tag": tag}  # fmt: skip
    filters = {k: v for k, v in given.items() if v not in (None, "")}

    def page_url(key: str, at: int | None) -> str | None:
        return None if at is None else f"/c/{name}?" + urlencode({**filters, key: at})

    return render(
        request,
        "collection.html",
        name=name,
        info=info,
        page=page,
        filters=filters,
        items=[browse.item_dict(name, it) for it in page.items],
        runs=runs,
        tags=tag_counts(atlas),
        clusters=browse.run_clusters(
            atlas, run if run is not None else (runs[0]["id"] if runs else None)
        ),
        prev_url=page_url("before", page.prev_before),
        next_url=page_url("after", page.next_after),
    )


@router.get("/c/{name}/items/{item_id}", response_class=HTMLResponse)
def item(request: Request, name: str, item_id: int, pool: PoolDep) -> HTMLResponse:
    atlas = pool.get(name)
    found = atlas.store.get_items(atlas.collection, [item_id])
    if not found:
        raise HTTPException(404, f"no item {item_id} in collection {name!r}")
    similar: list[dict[str, Any]] = []
    if found[0].has_vector and found[0].status == "ok":  # the Atlas guards its own index
        similar = [hit_dict(name, h) for h in atlas.search_item(item_id, k=12)]
    captions = [c.as_dict(provenance=True) for c in atlas.captions().of_item(item_id)]
    return render(
        request,
        "item.html",
        name=name,
        item=browse.item_dict(name, found[0]),
        similar=similar,
        captions=captions,
    )


@router.get("/c/{name}/search", response_class=HTMLResponse)
def search(
    request: Request,
    name: str,
    pool: PoolDep,
    q: Annotated[str, Query(max_length=1000)] = "",
    k: Annotated[int, Query(ge=1, le=200)] = 24,
) -> HTMLResponse:
    hits: list[dict[str, Any]] | None = None
    error = None
    if q.strip():
        try:
            with pool.shared(name) as atlas:
                hits = [hit_dict(name, h) for h in atlas.search_text(q, k=k)]
        except ClipatlasError as exc:
            error = str(exc)
    else:
        pool.get(name)
    return render(request, "search.html", name=name, q=q, hits=hits, error=error)


# -- atlas -------------------------------------------------------------------------------------


@router.get("/c/{name}/runs/{run_id}", response_class=HTMLResponse)
def atlas_page(request: Request, name: str, run_id: int, pool: PoolDep) -> HTMLResponse:
    with pool.exclusive(name) as atlas:
        view = browse.run_view(atlas, run_id)
    return render(request, "run.html", name=name, run=view)


@router.get("/c/{name}/runs/{run_id}/map.html", response_class=Response)
def atlas_map(name: str, run_id: int, pool: PoolDep) -> Response:
    """The run's self-contained plotly map, sandboxed (scripts run, no same-origin access)."""
    run = pool.get(name).run(run_id)
    path = Path(run.directory) / "map.html" if run.directory else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"run {run_id} has no map yet")
    return Response(
        inject_select_script(path.read_bytes()),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _MAP_CSP},
    )


# -- jobs --------------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request, board: BoardDep) -> HTMLResponse:
    return render(request, "jobs.html", jobs=[j.as_dict() for j in board.list(limit=200)])


@router.get("/jobs/{collection}/{job_id}", response_class=HTMLResponse)
def job(request: Request, collection: str, job_id: int, board: BoardDep) -> HTMLResponse:
    found = board.get(collection, job_id, logs=True)
    return render(request, "job.html", job=found.as_dict(logs=True))
