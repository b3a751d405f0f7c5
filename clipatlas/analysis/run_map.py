"""The atlas map of a clustering run: layout, coordinates, interactive HTML and static PNG.

Files go to the run's folder (``runs/<id>/``): ``map_coords.npz`` (item ids + 2-D coordinates,
the stored layout), ``map.html`` (offline, thumbnails and provenance on hover) and ``map.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from clipatlas.analysis.map_layout import layout
from clipatlas.analysis.map_render import render_html, render_png
from clipatlas.atomic import write_atomic
from clipatlas.errors import ClusteringError
from clipatlas.progress import ProgressCallback
from clipatlas.store.base import CollectionInfo
from clipatlas.store.runs import ClusterRun
from clipatlas.store.sql import SqlStore

__all__ = ["HOVER_FIELDS", "RunMap", "draw_run_map"]

# provenance shown on hover when an item has it (CivitAI, Naver, URL lists, folders)
HOVER_FIELDS = ("model_name", "model_type", "base_model", "creator", "tags", "title", "query")


@dataclass(frozen=True)
class RunMap:
    run_id: int
    points: int
    html: str
    png: str
    coords: str
    strategy: str
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hover(item: Any) -> dict[str, str]:
    fields = {"item": f"#{item.id} {item.source_key}", "source": item.source}
    for key in HOVER_FIELDS:
        value = item.meta.get(key)
        if value not in (None, "", []):
            fields[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return fields


def draw_run_map(
    store: SqlStore,
    collection: CollectionInfo,
    run: ClusterRun,
    media_root: Path,
    *,
    sample: int = 50_000,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> RunMap:
    if run.directory is None:
        raise ClusteringError(f"run {run.id} has no folder to write its map to")
    ids, matrix = store.load_vectors(collection)
    row_of = {int(i): r for r, i in enumerate(ids)}
    keep = [k for k, item_id in enumerate(run.item_ids) if int(item_id) in row_of]
    if not keep:
        raise ClusteringError(f"none of run {run.id}'s items has a vector any more")
    item_ids = run.item_ids[keep]
    labels = run.labels[keep]
    vectors = matrix[[row_of[int(i)] for i in item_ids]]
    placed = layout(vectors, sample=sample, seed=seed, progress=progress)
    items = {it.id: it for it in store.get_items(collection, [int(i) for i in item_ids])}
    names = {c.label: c.name or ("noise" if c.label < 0 else f"cluster {c.label}")
             for c in run.clusters}  # fmt: skip
    hover = [_hover(items[int(i)]) for i in item_ids]
    thumb_paths = [items[int(i)].thumb_path for i in item_ids]
    thumbs = [str(media_root / t) if t else None for t in thumb_paths]
    folder = Path(run.directory)
    folder.mkdir(parents=True, exist_ok=True)

    def save_coords(fh: BinaryIO) -> None:
        np.savez(fh, item_ids=item_ids, coords=placed.coords)

    write_atomic(folder / "map_coords.npz", save_coords)
    title = f"{collection.name}: run {run.id} ({run.method}, {run.n_clusters} clusters)"
    html = render_html(folder / "map.html", placed.coords, labels=labels, names=names,
                       hover=hover, thumbnails=thumbs, title=title)  # fmt: skip
    render_png(folder / "map.png", placed.coords, labels=labels, names=names, title=title)
    return RunMap(
        run_id=run.id, points=len(item_ids), html=str(html.path), png=str(folder / "map.png"),
        coords=str(folder / "map_coords.npz"), strategy=placed.strategy, seconds=placed.seconds,
    )  # fmt: skip
