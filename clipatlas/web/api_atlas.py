"""REST API of the style atlas: name and rename clusters, classify, recommend, map selections
(item ids from lasso/box coordinates), tags and a CSV export of chosen items.

Errors are JSON ``{"error", "detail"}`` like the rest of ``/api``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from clipatlas import tagging
from clipatlas.errors import ConfigError
from clipatlas.web import browse
from clipatlas.web.deps import PoolDep
from clipatlas.web.selection import MAX_POINTS, items_csv, points_to_ids

__all__ = ["router"]

router = APIRouter(prefix="/api/collections/{name}", tags=["atlas"])


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="The cluster's new name.")


class NameAgain(BaseModel):
    vocabulary: list[str] | None = Field(
        default=None, max_length=5000, description="Style words to try (default: built-in)."
    )
    force: bool = Field(default=False, description="Also replace names a person gave.")


class Selection(BaseModel):
    points: list[list[float]] = Field(
        max_length=MAX_POINTS, description="[x, y] of the selected map points."
    )


class ItemIds(BaseModel):
    ids: list[int] = Field(max_length=tagging.MAX_ITEMS)
    run: int | None = Field(default=None, description="Add each item's cluster in this run.")


class TagChange(BaseModel):
    ids: list[int] = Field(max_length=tagging.MAX_ITEMS)
    tag: str = Field(min_length=1, max_length=200)
    remove: bool = False


# -- names -------------------------------------------------------------------------------------


@router.post("/runs/{run_id}/clusters/{label}/name")
def rename_cluster(name: str, run_id: int, label: int, body: Rename, pool: PoolDep) -> Any:
    """Give a cluster a person's name (kept by later automatic naming); the map is redrawn."""
    with pool.exclusive(name) as atlas:
        out = atlas.rename_cluster(run_id, label, body.name)
    return {"run": out["run"], "label": out["label"], "name": out["name"]}


@router.post("/runs/{run_id}/names")
def name_clusters(name: str, run_id: int, body: NameAgain, pool: PoolDep) -> Any:
    """Name the run's clusters again (zero-shot style words + distinctive tags)."""
    vocabulary = [v.strip() for v in body.vocabulary or [] if v.strip()] or None
    if body.vocabulary is not None and vocabulary is None:
        raise ConfigError("the vocabulary is empty: give style words or leave it out")
    with pool.exclusive(name) as atlas:
        named = atlas.name_clusters(run_id, vocabulary=vocabulary, force=body.force)
    return {"run": run_id, "clusters": named}


# -- classify and recommend --------------------------------------------------------------------


@router.post("/classify")
def classify(
    name: str,
    pool: PoolDep,
    file: Annotated[UploadFile | None, File(description="A picture.")] = None,
    url: Annotated[str | None, Form(description="A picture URL (fetched safely).")] = None,
    civitai_model: Annotated[int | None, Form(description="A CivitAI model id.")] = None,
    run: Annotated[int | None, Query(description="Run id (default: the newest).")] = None,
    top: Annotated[int, Query(ge=1, le=20)] = 3,
) -> Any:
    """Which cluster a picture, picture URL or CivitAI model belongs to (give exactly one)."""
    data = file.file.read() if file is not None and file.filename else None
    url = url.strip() if url and url.strip() else None
    given = [x is not None for x in (data, url, civitai_model)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of: a picture file, a picture URL, a CivitAI model id")
    with pool.exclusive(name) as atlas:
        answer = atlas.classify(run, image=data, url=url, civitai_model=civitai_model, top=top)
        out = answer.as_dict()
        if out["nearest"]:  # the nearest cluster's pictures, to recognise it by
            nearest = out["nearest"][0]
            view = browse.run_view(atlas, out["run"], representatives=4)
            reps: list[int] = next((c["representatives"] for c in view["clusters"]
                                    if c["label"] == nearest["label"]), [])  # fmt: skip
            nearest["thumbnails"] = [browse.thumb_link(name, i) for i in reps]
    return out


@router.get("/recommend")
def recommend(
    name: str,
    pool: PoolDep,
    prompt: Annotated[str, Query(min_length=1, max_length=1000)],
    run: int | None = None,
    top: Annotated[int, Query(ge=1, le=20)] = 3,
    items: Annotated[int, Query(ge=1, le=50)] = 5,
) -> Any:
    """The clusters that fit a prompt, their best pictures and the CivitAI models to try."""
    with pool.exclusive(name) as atlas:
        out = atlas.recommend(prompt, run, top=top, items=items)
    for cluster in out["clusters"]:
        for item in cluster["items"]:
            item.pop("media_path", None)  # a server path: not for the page
            item["thumbnail_url"] = browse.thumb_link(name, item["id"])
            item["page_url"] = f"/c/{name}/items/{item['id']}"
    return out


# -- selection, tags, export -------------------------------------------------------------------


@router.post("/runs/{run_id}/select")
def select(name: str, run_id: int, body: Selection, pool: PoolDep) -> Any:
    """Item ids of the map points a lasso or box selected (by their stored coordinates)."""
    ids = points_to_ids(pool.get(name).run(run_id), body.points)
    return {"run": run_id, "count": len(ids), "ids": ids}


@router.post("/items/tags")
def change_tags(name: str, body: TagChange, pool: PoolDep) -> Any:
    """Add (or with ``remove``, take away) a tag on items (``items.meta.tags``)."""
    atlas = pool.get(name)
    change = tagging.remove_tags if body.remove else tagging.add_tags
    changed = change(atlas, body.ids, body.tag)
    return {"tag": tagging.check_tag(body.tag), "changed": changed, "requested": len(body.ids)}


@router.get("/tags")
def tags(name: str, pool: PoolDep) -> dict[str, int]:
    """The collection's tags and how many items carry each."""
    return tagging.tag_counts(pool.get(name))


@router.post("/items/export", response_class=Response)
def export_items(name: str, body: ItemIds, pool: PoolDep) -> Response:
    """The chosen items' metadata as CSV (with their cluster when ``run`` is given)."""
    if not body.ids:
        raise HTTPException(422, "no items chosen")
    atlas = pool.get(name)
    run = atlas.run(body.run) if body.run is not None else None
    text = items_csv(atlas, body.ids, run)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-selection.csv"'},
    )
