"""Read-only views of a collection for the web app: overview, gallery pages, item details,
cluster representatives, and the files behind an item id (never a path from a request)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from clipatlas.atlas import Atlas
from clipatlas.store.base import Item
from clipatlas.store.schema import items
from clipatlas.store.sql import transaction
from clipatlas.tagging import ids_with_tag

__all__ = [
    "MEDIA_TYPES",
    "Page",
    "item_dict",
    "item_file",
    "list_items",
    "overview",
    "page_query",
    "run_view",
    "thumb_link",
    "thumb_url",
    "thumb_version",
]

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
MAX_PAGE = 200
MAX_ID = 2**63 - 1  # a cursor beyond any database integer is a 422, not a database error


@dataclass(frozen=True)
class Page:
    """One gallery page. ``offset`` is the page's position when it was asked for by offset
    (None for a cursor page); ``next_after`` / ``prev_before`` are the cursors of the pages after
    and before it (None at either end)."""

    total: int
    offset: int | None
    limit: int
    items: list[Item]
    next_after: int | None = None
    prev_before: int | None = None


def overview(atlas: Atlas) -> dict[str, Any]:
    """Counts and sources of a collection from the pool (its row read by ``AtlasPool.get``)."""
    stats = atlas.stats(reread=False).as_dict()
    stats.pop("database", None)  # may name a server; not needed in pages
    stats["sources"] = atlas.store.source_counts(atlas.collection, atlas.summary_lag())
    return stats


def list_items(
    atlas: Atlas,
    *,
    status: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    run_id: int | None = None,
    cluster: int | None = None,
    tag: str | None = None,
    offset: int = 0,
    after: int | None = None,
    before: int | None = None,
    limit: int = 60,
) -> Page:
    """One page of items (id order) matching the filters; a cluster filter needs ``run_id``;
    ``tag`` keeps the items carrying that tag (``items.meta["tags"]``).

    Keyset paging: ``after=<id>`` gives the items after that id, ``before=<id>`` those just
    before it; either seeks the id index, so a page deep in the collection costs what the first
    does. ``offset`` (ignored when a cursor is given) still works but reads every skipped row."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    cond: list[ColumnElement[bool]] = [items.c.collection_id == atlas.collection.id]
    if status:
        cond.append(items.c.status == status)
    if reason:
        cond.append(items.c.reason == reason)
    if source:
        cond.append(items.c.source == source)
    restrict: np.ndarray | None = None
    if run_id is not None and cluster is not None:
        run = atlas.run(run_id)
        restrict = np.sort(run.item_ids[run.labels == cluster])
    if tag:
        tagged = np.asarray(ids_with_tag(atlas, tag), dtype=np.int64)
        restrict = tagged if restrict is None else np.intersect1d(restrict, tagged)
    if restrict is not None:
        ids = [int(i) for i in restrict]
        if len(cond) > 1:  # other filters too: keep the restricted ids that pass them
            kept: list[int] = []
            with transaction(atlas.store.engine) as conn:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    kept += conn.execute(
                        select(items.c.id).where(*cond, items.c.id.in_(chunk))
                    ).scalars()
            ids = sorted(int(i) for i in kept)
        if after is not None:
            start = bisect.bisect_right(ids, after)
            end = start + limit
        elif before is not None:
            end = bisect.bisect_left(ids, before)
            start = max(0, end - limit)
        else:
            start, end = offset, offset + limit
        page_ids = ids[start:end]
        return _page(
            atlas, len(ids), after, before, offset, limit, page_ids, start > 0, end < len(ids)
        )
    with transaction(atlas.store.engine) as conn:
        total = _total(atlas, status, reason, source)
        if total is None:
            query = select(func.count()).select_from(items).where(*cond)
            total = int(conn.execute(query).scalar_one())
        # one id more than the page says whether there is more in the paging direction
        page_ids = list(conn.execute(page_query(cond, after, before, offset, limit)).scalars())
        beyond = len(page_ids) > limit
        page_ids = page_ids[:limit]
        if before is not None:
            page_ids.reverse()
        earlier, later = (beyond, False) if before is not None else (False, beyond)
        if page_ids and before is not None:
            later = _exists(conn, [*cond, items.c.id > page_ids[-1]])
        elif page_ids and (after is not None or offset > 0):
            earlier = _exists(conn, [*cond, items.c.id < page_ids[0]])
    return _page(atlas, total, after, before, offset, limit, page_ids, earlier, later)


def page_query(
    cond: list[ColumnElement[bool]], after: int | None, before: int | None, offset: int, limit: int
) -> Select[Any]:
    """The ids of one page and one more (is there a next one?): a keyset seek on the id index
    for a cursor, else OFFSET."""
    limit += 1
    query = select(items.c.id).where(*cond)
    if after is not None:
        return query.where(items.c.id > after).order_by(items.c.id).limit(limit)
    if before is not None:
        return query.where(items.c.id < before).order_by(items.c.id.desc()).limit(limit)
    return query.order_by(items.c.id).offset(offset).limit(limit)


def _exists(conn: Connection, cond: list[ColumnElement[bool]]) -> bool:
    return conn.execute(select(items.c.id).where(*cond).limit(1)).first() is not None


def _page(
    atlas: Atlas,
    total: int,
    after: int | None,
    before: int | None,
    offset: int,
    limit: int,
    page_ids: list[int],
    earlier: bool,
    later: bool,
) -> Page:
    return Page(
        total=total,
        offset=None if after is not None or before is not None else offset,
        limit=limit,
        items=atlas.store.get_items(atlas.collection, page_ids),
        next_after=page_ids[-1] if page_ids and later else None,
        prev_before=page_ids[0] if page_ids and earlier else None,
    )


def _total(atlas: Atlas, status: str | None, reason: str | None, source: str | None) -> int | None:
    """The page total from the collection's cached counts when the filters allow it."""
    if reason or source:
        return None
    counts = atlas.store.counts(atlas.collection, atlas.summary_lag())
    if status is None:
        return counts["ok"] + counts["rejected"]
    return counts[status] if status in ("ok", "rejected") else None


def thumb_version(thumb_path: str | None) -> str | None:
    """What names a thumbnail in its URL (``?v=``): the stem of its content-addressed file
    (``thumbs/<sha256>.jpg``), so a page's link changes when the picture does and may be
    cached until then."""
    return PurePosixPath(thumb_path).stem[:16] if thumb_path else None


def thumb_link(collection: str, item_id: int) -> str:
    """The thumbnail route of an item, without its content version (revalidated by ETag)."""
    return f"/api/collections/{collection}/items/{item_id}/thumbnail"


def thumb_url(collection: str, item_id: int, thumb_path: str | None) -> str | None:
    """The URL of an item's thumbnail, named by its content; None when it has none."""
    version = thumb_version(thumb_path)
    if version is None:
        return None
    return f"{thumb_link(collection, item_id)}?v={version}"


def item_dict(collection: str, item: Item) -> dict[str, Any]:
    base = f"/api/collections/{collection}/items/{item.id}"
    return {
        **item.scalars(),
        "meta": dict(item.meta),
        "thumbnail_url": thumb_url(collection, item.id, item.thumb_path),
        "original_url": f"{base}/original" if item.format else None,
    }


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if root.resolve() in path.parents and path.is_file() else None


def item_file(atlas: Atlas, item: Item, which: str) -> tuple[Path, str] | None:
    """The thumbnail or original of a stored item, with its media type; None when absent.

    Paths come from the item's row: thumbnails and copied originals must lie inside the
    collection's media folder; a folder ingest's original is the file it was read from."""
    if which == "thumbnail":
        path = _inside(atlas.media_root, item.thumb_path) if item.thumb_path else None
        return (path, "image/jpeg") if path else None
    media_type = MEDIA_TYPES.get(item.format or "")
    if media_type is None:
        return None
    if item.media_path:
        path = _inside(atlas.media_root, item.media_path)
    elif item.source == "folder" and item.status == "ok":
        candidate = Path(item.uri)
        path = candidate if candidate.is_file() else None
    else:
        path = None
    return (path, media_type) if path else None


def run_view(atlas: Atlas, run_id: int, *, representatives: int = 6) -> dict[str, Any]:
    """A run's summary and clusters (largest first) with representative item ids: the
    members nearest the centroid (the medoid first)."""
    run = atlas.run(run_id)
    index = atlas.index()
    order = np.argsort(index.ids)
    sorted_ids = index.ids[order]
    clusters = []
    for c in sorted(run.clusters, key=lambda c: (c.label < 0, -c.size)):
        members = run.item_ids[run.labels == c.label]
        reps: list[int] = [c.medoid_id] if c.medoid_id is not None else []
        if c.centroid is not None and len(members):
            present = members[np.isin(members, sorted_ids)]  # members still searchable
            rows = order[np.searchsorted(sorted_ids, present)]
            scores = np.asarray(index.matrix[rows], dtype=np.float32) @ c.centroid
            best = [int(index.ids[rows[i]]) for i in np.argsort(-scores)[: representatives + 1]]
            reps += [i for i in best if i not in reps]
        elif len(members):
            reps += [int(i) for i in members[:representatives]]
        clusters.append({**c.as_dict(), "representatives": reps[:representatives]})
    folder = Path(run.directory) if run.directory else None
    return {
        **run.summary(),
        "clusters": clusters,
        "has_map": bool(folder and (folder / "map.html").is_file()),
    }


def run_clusters(atlas: Atlas, run_id: int | None) -> list[dict[str, Any]]:
    """A run's clusters (label, name, size) for filter menus; empty without a run."""
    if run_id is None:
        return []
    run = atlas.run(run_id)
    return [
        {"label": c.label, "name": c.name, "size": c.size}
        for c in sorted(run.clusters, key=lambda c: (c.label < 0, -c.size))
    ]
