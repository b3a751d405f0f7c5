"""The REST API under ``/api``: collections, items and their files, search, runs, jobs.

Errors are JSON ``{"error", "detail"}`` (see :mod:`clipatlas.web.app`). Handlers only call
the library (:class:`~clipatlas.Atlas`, :class:`~clipatlas.jobs.JobBoard`) and shape JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from clipatlas.analysis.search import SearchHit
from clipatlas.errors import ImageError
from clipatlas.jobs.model import ACTIVE
from clipatlas.web import browse
from clipatlas.web.deps import BoardDep, PoolDep

__all__ = ["router"]

router = APIRouter(prefix="/api")


class JobRequest(BaseModel):
    collection: str = Field(description="Collection the job acts on (created by ingest).")
    kind: str = Field(description="Job kind: ingest, cluster, map, ... (GET /api/kinds).")
    params: dict[str, Any] = Field(default_factory=dict)


class UrlSearch(BaseModel):
    url: str
    k: int = Field(default=20, ge=1, le=500)


def hit_dict(collection: str, hit: SearchHit) -> dict[str, Any]:
    thumbnail = browse.thumb_url(collection, hit.id, hit.thumbnail)
    return {
        "id": hit.id,
        "score": round(hit.score, 6),
        "uri": hit.uri,
        "source": hit.source,
        "source_key": hit.source_key,
        "width": hit.width,
        "height": hit.height,
        "meta": dict(hit.meta),
        "thumbnail_url": thumbnail or browse.thumb_link(collection, hit.id),
        "page_url": f"/c/{collection}/items/{hit.id}",
    }


# -- collections and items ---------------------------------------------------------------------


@router.get("/collections")
def collections(pool: PoolDep) -> list[dict[str, Any]]:
    """Every collection with its counts, embedder and rejection reasons."""
    return [browse.overview(pool.get(name)) for name in pool.names()]


@router.get("/collections/{name}")
def collection(name: str, pool: PoolDep) -> dict[str, Any]:
    atlas = pool.get(name)
    return {**browse.overview(atlas), "runs": atlas.runs()}


@router.get("/collections/{name}/items")
def items(
    name: str,
    pool: PoolDep,
    status: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    run: int | None = None,
    cluster: int | None = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    after: Annotated[int | None, Query(ge=0, le=browse.MAX_ID)] = None,
    before: Annotated[int | None, Query(ge=0, le=browse.MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=browse.MAX_PAGE)] = 60,
) -> dict[str, Any]:
    """A page of items, filtered by status, reason, source, tag, or a run's cluster. Walk the
    pages with the cursors ``after=<next_after>`` / ``before=<prev_before>`` (keyset paging,
    as cheap deep in the collection as on page one); ``offset`` still works."""
    page = browse.list_items(
        pool.get(name),
        status=status,
        reason=reason,
        source=source,
        run_id=run,
        cluster=cluster,
        tag=tag or None,
        offset=offset,
        after=after,
        before=before,
        limit=limit,
    )
    return {
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "next_after": page.next_after,
        "prev_before": page.prev_before,
        "items": [browse.item_dict(name, it) for it in page.items],
    }


def _item(pool: PoolDep, name: str, item_id: int) -> Any:
    atlas = pool.get(name)
    found = atlas.store.get_items(atlas.collection, [item_id])
    if not found:
        raise HTTPException(404, f"no item {item_id} in collection {name!r}")
    return atlas, found[0]


@router.get("/collections/{name}/items/{item_id}")
def item(name: str, item_id: int, pool: PoolDep) -> dict[str, Any]:
    _, found = _item(pool, name, item_id)
    return browse.item_dict(name, found)


_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
YEAR = 365 * 24 * 3600


def _file(pool: PoolDep, name: str, item_id: int, which: str) -> FileResponse:
    atlas, found = _item(pool, name, item_id)
    resolved = browse.item_file(atlas, found, which)
    if resolved is None:
        raise HTTPException(404, f"item {item_id} has no {which} file")
    path, media_type = resolved
    headers = {**_FILE_HEADERS, "Cache-Control": "private, max-age=3600"}
    return FileResponse(path, media_type=media_type, headers=headers)


@router.get(
    "/collections/{name}/items/{item_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified"}},
)
def thumbnail(
    name: str,
    item_id: int,
    pool: PoolDep,
    request: Request,
    v: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The item's thumbnail. Thumbnails are content-addressed (``thumbs/<sha256>.jpg``, never
    rewritten), so the name is the ETag; with ``v=`` the name the page linked to (as
    ``thumbnail_url`` does), the answer may be cached for a year. A thumbnail is a few KB:
    read whole here, which costs less than a streamed file's thread hops. ``If-None-Match``
    (HTTP revalidation, read from the request rather than declared as an API parameter) is
    answered 304 when it names this ETag, weak or strong, or is ``*``."""
    atlas, found = _item(pool, name, item_id)
    resolved = browse.item_file(atlas, found, "thumbnail")
    if resolved is None:
        raise HTTPException(404, f"item {item_id} has no thumbnail file")
    path, media_type = resolved
    tag = '"' + path.stem + '"'
    lasting = v is not None and v == browse.thumb_version(found.thumb_path)
    cache = f"private, max-age={YEAR}, immutable" if lasting else "private, max-age=3600"
    headers = {**_FILE_HEADERS, "ETag": tag, "Cache-Control": cache}
    if _etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(path.read_bytes(), media_type=media_type, headers=headers)


def _etag_matches(if_none_match: str | None, tag: str) -> bool:
    if if_none_match is None:
        return False
    sent = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in sent or tag in sent


@router.get("/collections/{name}/items/{item_id}/original", response_class=FileResponse)
def original(name: str, item_id: int, pool: PoolDep) -> FileResponse:
    return _file(pool, name, item_id, "original")


# -- search ------------------------------------------------------------------------------------


@router.get("/collections/{name}/search")
def search_text(
    name: str,
    pool: PoolDep,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    k: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """Text -> image search."""
    with pool.shared(name) as atlas:
        hits = atlas.search_text(q, k=k)
    return {"query": q, "hits": [hit_dict(name, h) for h in hits]}


@router.get("/collections/{name}/items/{item_id}/similar")
def search_similar(
    name: str, item_id: int, pool: PoolDep, k: Annotated[int, Query(ge=1, le=500)] = 20
) -> dict[str, Any]:
    with pool.shared(name) as atlas:
        hits = atlas.search_item(item_id, k=k)
    return {"item": item_id, "hits": [hit_dict(name, h) for h in hits]}


@router.post("/collections/{name}/search/image")
def search_image(
    name: str,
    pool: PoolDep,
    file: Annotated[UploadFile, File(description="A picture (size capped by the server).")],
    k: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """Image -> image search with an uploaded picture."""
    data = file.file.read()
    with pool.shared(name) as atlas:
        hits = atlas.search_image(data, k=k)
    return {"hits": [hit_dict(name, h) for h in hits]}


@router.post("/collections/{name}/search/url")
def search_url(name: str, body: UrlSearch, pool: PoolDep) -> dict[str, Any]:
    """Image -> image search with a picture fetched (safely: SSRF guard, size cap) by URL."""
    with pool.shared(name) as atlas:
        fetched = atlas.fetcher().get(body.url, expect="image")
        try:
            hits = atlas.search_image(fetched.data, k=body.k)
        except ImageError as exc:
            raise HTTPException(422, f"the picture at that URL cannot be used: {exc}") from None
    return {"url": fetched.url, "hits": [hit_dict(name, h) for h in hits]}


# -- clustering runs ---------------------------------------------------------------------------


@router.get("/collections/{name}/runs")
def runs(name: str, pool: PoolDep) -> list[dict[str, Any]]:
    return pool.get(name).runs()


@router.get("/collections/{name}/runs/{run_id}")
def run(name: str, run_id: int, pool: PoolDep) -> dict[str, Any]:
    """A run with its clusters (largest first), sizes, names and representative items."""
    with pool.exclusive(name) as atlas:
        return browse.run_view(atlas, run_id)


# -- jobs --------------------------------------------------------------------------------------


@router.get("/kinds")
def kinds(board: BoardDep) -> list[dict[str, str]]:
    return [{"name": k.name, "description": k.description} for k in board.kinds.kinds.values()]


@router.get("/jobs")
def jobs(
    board: BoardDep,
    collection: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    return [j.as_dict() for j in board.list(collection=collection, status=status, limit=limit)]


@router.post("/jobs", status_code=201)
def submit(body: JobRequest, board: BoardDep) -> dict[str, Any]:
    """Queue a job; its parameters are checked now (400 with the reason if wrong)."""
    return board.submit(body.collection, body.kind, body.params).as_dict()


@router.delete("/jobs")
def clear(board: BoardDep, collection: str | None = None) -> dict[str, int]:
    """Clear the history: delete finished jobs and their logs."""
    return {"removed": board.clear(collection)}


@router.get("/jobs/{collection}/{job_id}")
def job(collection: str, job_id: int, board: BoardDep, logs: bool = True) -> dict[str, Any]:
    return board.get(collection, job_id, logs=logs).as_dict(logs=logs)


@router.post("/jobs/{collection}/{job_id}/cancel")
def cancel(collection: str, job_id: int, board: BoardDep) -> dict[str, Any]:
    return board.cancel(collection, job_id).as_dict()


@router.post("/jobs/{collection}/{job_id}/resume")
def resume(collection: str, job_id: int, board: BoardDep) -> dict[str, Any]:
    return board.resume(collection, job_id).as_dict()


@router.get("/jobs/{collection}/{job_id}/events")
async def events(collection: str, job_id: int, board: BoardDep) -> StreamingResponse:
    """Server-sent events: the job as JSON whenever it changes, until it has finished."""
    first = await run_in_threadpool(board.get, collection, job_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        job = first
        while True:
            data = json.dumps(job.as_dict())
            if data != last:
                yield f"event: job\ndata: {data}\n\n"
                last = data
            if job.status not in ACTIVE:
                return
            await asyncio.sleep(0.5)
            job = await run_in_threadpool(board.get, collection, job_id)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
