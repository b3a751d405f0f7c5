"""Read-only views of a collection for the web app: overview, gallery pages, item details,
cluster representatives, and the files behind an item id (never a path from a request)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from clipatlas.atlas import Atlas
from clipatlas.store.base import Item
from clipatlas.store.schema import items
from clipatlas.store.sql import transaction
from clipatlas.tagging import ids_with_tag

__all__ = ["MEDIA_TYPES", "Page", "item_dict", "item_file", "list_items", "overview", "run_view"]

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
MAX_PAGE = 200


@dataclass(frozen=True)
class Page:
    total: int
    offset: int
    limit: int
    items: list[Item]


def overview(atlas: Atlas) -> dict[str, Any]:
    stats = atlas.stats().as_dict()
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
    limit: int = 60,
) -> Page:
    """One page of items (id order) matching the filters; a cluster filter needs ``run_id``;
    ``tag`` keeps the items carrying that tag (``items.meta["tags"]``)."""
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
        page_ids = ids[offset : offset + limit]
        return Page(len(ids), offset, limit, atlas.store.get_items(atlas.collection, page_ids))
    with transaction(atlas.store.engine) as conn:
        total = _total(atlas, status, reason, source)
        if total is None:
            query = select(func.count()).select_from(items).where(*cond)
            total = int(conn.execute(query).scalar_one())
        page_ids = list(
            conn.execute(
                select(items.c.id).where(*cond).order_by(items.c.id).offset(offset).limit(limit)
            ).scalars()
        )
    return Page(total, offset, limit, atlas.store.get_items(atlas.collection, page_ids))


def _total(atlas: Atlas, status: str | None, reason: str | None, source: str | None) -> int | None:
    """The page total from the collection's cached counts when the filters allow it."""
    if reason or source:
        return None
    counts = atlas.store.counts(atlas.collection, atlas.summary_lag())
    if status is None:
        return counts["ok"] + counts["rejected"]
    return counts[status] if status in ("ok", "rejected") else None


def item_dict(collection: str, item: Item) -> dict[str, Any]:
    base = f"/api/collections/{collection}/items/{item.id}"
    return {
        "id": item.id,
        "source": item.source,
        "source_key": item.source_key,
        "uri": item.uri,
        "status": item.status,
        "reason": item.reason,
        "detail": item.detail,
        "sha256": item.sha256,
        "phash": item.phash,
        "format": item.format,
        "size_bytes": item.size_bytes,
        "width": item.width,
        "height": item.height,
        "aspect": item.aspect,
        "sharpness": item.sharpness,
        "has_vector": item.has_vector,
        "meta": dict(item.meta),
        "thumbnail_url": f"{base}/thumbnail" if item.thumb_path else None,
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
