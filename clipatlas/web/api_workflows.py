"""REST API of the dataset builder (builds and their reports), captions (fused caption search,
an item's captions with provenance) and record matching (a described record, optionally with
a photo, or a stored record by id).

Long work (building a dataset, captioning) runs as jobs: ``POST /api/jobs`` with kind
``build-dataset`` or ``caption`` (see ``docs/jobs.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy import select

from clipatlas.atlas import Atlas
from clipatlas.errors import ConfigError
from clipatlas.store.dataset_tables import dataset_builds
from clipatlas.store.sql import transaction
from clipatlas.web import browse
from clipatlas.web.deps import PoolDep

__all__ = ["REPORT_CSP", "build_report", "builds", "router"]

router = APIRouter(prefix="/api/collections/{name}", tags=["workflows"])

# the report is self-contained HTML (inline CSS, data: pictures): no scripts, no network
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
)
_BUILD_FIELDS = ("id", "query", "source", "status", "stage", "counts", "chosen_cluster",
                 "error", "created_at", "updated_at", "finished_at")  # fmt: skip


# -- dataset builds ----------------------------------------------------------------------------


def builds(atlas: Atlas, build_id: int | None = None) -> list[dict[str, Any]]:
    """The collection's dataset builds (newest first), or the one ``build_id``."""
    query = select(dataset_builds).where(dataset_builds.c.collection_id == atlas.collection.id)
    if build_id is not None:
        query = query.where(dataset_builds.c.id == build_id)
    with transaction(atlas.store.engine) as conn:
        rows = conn.execute(query.order_by(dataset_builds.c.id.desc())).mappings().all()
    out = []
    for row in rows:
        entry = {k: row[k] for k in _BUILD_FIELDS}
        folder = Path(row["out_path"])
        entry["folder"] = folder.name
        entry["has_report"] = (folder / "report.html").is_file()
        entry["report_url"] = f"/c/{atlas.name}/datasets/{row['id']}/report"
        out.append(entry)
    return out


def build_report(atlas: Atlas, build_id: int) -> Response:
    """A build's report.html, found through its row (never a path from the request)."""
    found = builds(atlas, build_id)
    if not found:
        raise HTTPException(404, f"no dataset build {build_id} in collection {atlas.name!r}")
    with transaction(atlas.store.engine) as conn:
        out_path = conn.execute(
            select(dataset_builds.c.out_path).where(dataset_builds.c.id == build_id)
        ).scalar_one()
    path = Path(out_path) / "report.html"
    if not path.is_file():
        raise HTTPException(404, f"dataset build {build_id} has no report (yet)")
    return Response(
        path.read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/datasets")
def list_builds(name: str, pool: PoolDep) -> list[dict[str, Any]]:
    """Dataset builds of this collection, newest first."""
    return builds(pool.get(name))


@router.get("/datasets/{build_id}")
def get_build(name: str, build_id: int, pool: PoolDep) -> dict[str, Any]:
    found = builds(pool.get(name), build_id)
    if not found:
        raise HTTPException(404, f"no dataset build {build_id} in collection {name!r}")
    return found[0]


@router.get("/datasets/{build_id}/report", response_class=Response)
def report(name: str, build_id: int, pool: PoolDep) -> Response:
    """The build's self-contained HTML report, sandboxed by its CSP."""
    return build_report(pool.get(name), build_id)


# -- captions ----------------------------------------------------------------------------------


def caption_hits(
    atlas: Atlas,
    q: str,
    k: int,
    weights: dict[str, float],
    fusion: str,
    exact_first: bool = True,
) -> Any:
    hits = atlas.search_captions(
        q, k, weights=weights or None, fusion=fusion, exact_first=exact_first
    )
    out = []
    for h in hits:
        entry = h.as_dict()
        entry.pop("media_path", None)
        entry["thumbnail_url"] = browse.thumb_link(atlas.name, h.hit.id)
        entry["page_url"] = f"/c/{atlas.name}/items/{h.hit.id}"
        out.append(entry)
    return out


@router.get("/captions/search")
def search_captions(
    name: str,
    pool: PoolDep,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    k: Annotated[int, Query(ge=1, le=200)] = 20,
    fusion: Annotated[str, Query(pattern="^(rrf|weighted)$")] = "weighted",
    exact_first: Annotated[
        bool, Query(description="items with a caption holding every query word first")
    ] = True,
    clip: Annotated[float | None, Query(ge=0, le=10, description="CLIP rank weight")] = None,
    caption: Annotated[float | None, Query(ge=0, le=10, description="caption weight")] = None,
    keyword: Annotated[float | None, Query(ge=0, le=10, description="keyword weight")] = None,
) -> dict[str, Any]:
    """Text search fusing CLIP, caption-embedding and keyword scores (exact keyword matches
    first); each hit's caption, per-ranking ranks and scores."""
    given = {"clip": clip, "caption": caption, "keyword": keyword}
    weights = {k: v for k, v in given.items() if v is not None}
    with pool.exclusive(name) as atlas:
        hits = caption_hits(atlas, q, k, weights, fusion, exact_first)
    return {
        "query": q,
        "fusion": fusion,
        "exact_first": exact_first,
        "weights": weights,
        "hits": hits,
    }


@router.get("/items/{item_id}/captions")
def item_captions(name: str, item_id: int, pool: PoolDep) -> list[dict[str, Any]]:
    """The item's captions with provenance (model, prompt version, neighbours used)."""
    atlas = pool.get(name)
    if not atlas.store.get_items(atlas.collection, [item_id]):
        raise HTTPException(404, f"no item {item_id} in collection {name!r}")
    return [c.as_dict(provenance=True) for c in atlas.captions().of_item(item_id)]


# -- record matching ---------------------------------------------------------------------------


def match_view(name: str, matches: list[Any]) -> list[dict[str, Any]]:
    out = []
    for m in matches:
        entry = m.as_dict()
        pid = entry.get("photo_item_id")
        entry["thumbnail_url"] = browse.thumb_link(name, pid) if pid is not None else None
        out.append(entry)
    return out


@router.post("/match")
def match(
    name: str,
    pool: PoolDep,
    description: Annotated[str, Form(max_length=10_000)] = "",
    category: Annotated[str, Form(max_length=200)] = "",
    place: Annotated[str, Form(max_length=500)] = "",
    time: Annotated[str, Form(max_length=100, description="ISO 8601 or epoch seconds")] = "",
    kind: Annotated[str, Form(max_length=100)] = "",
    against: Annotated[str, Form(max_length=100, description="match only this kind")] = "",
    photo: Annotated[UploadFile | None, File(description="An optional photo.")] = None,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Stored records matching a described one (and its photo), each with every component's
    score and weight. The row is built from these fields only: never a server path."""
    data = photo.file.read() if photo is not None and photo.filename else None
    row = {
        key: value.strip()
        for key, value in (
            ("description", description),
            ("category", category),
            ("place", place),
            ("time", time),
            ("kind", kind),
        )
        if value.strip()
    }
    if not row.get("description") and data is None:
        raise ConfigError("describe the thing or give a photo (or both)")
    with pool.exclusive(name) as atlas:
        found = atlas.match(row, photo=data, k=k, against_kind=against.strip() or None)
    return {"query": row, "photo": data is not None, "matches": match_view(name, found)}


@router.get("/records/{record_id}/matches")
def match_stored(
    name: str,
    record_id: str,
    pool: PoolDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    against: str | None = None,
) -> dict[str, Any]:
    """Stored records matching the stored record ``record_id``."""
    with pool.exclusive(name) as atlas:
        found = atlas.match(record_id, k=k, against_kind=against or None)
    return {"record": record_id, "matches": match_view(name, found)}
