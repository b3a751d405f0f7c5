"""The atlas map of a clustering run: layout, coordinates, interactive HTML and static PNG.

Files go to the run's folder (``runs/<id>/``): ``map_coords.npz`` (item ids + 2-D coordinates,
the stored layout), ``map.html`` (offline, thumbnails and provenance on hover) and ``map.png``.
"""

from __future__ import annotations

import time
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

__all__ = ["HOVER_FIELDS", "RunMap", "draw_run_map", "redraw_run_map"]

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
    folder = Path(run.directory)
    folder.mkdir(parents=True, exist_ok=True)

    def save_coords(fh: BinaryIO) -> None:
        np.savez(fh, item_ids=item_ids, labels=labels, coords=placed.coords)

    write_atomic(folder / "map_coords.npz", save_coords)
    html, png = _render(store, collection, run, media_root, item_ids, labels, placed.coords)
    return RunMap(
        run_id=run.id, points=len(item_ids), html=html, png=png,
        coords=str(folder / "map_coords.npz"), strategy=placed.strategy, seconds=placed.seconds,
    )  # fmt: skip


def redraw_run_map(
    store: SqlStore, collection: CollectionInfo, run: ClusterRun, media_root: Path
) -> RunMap | None:
    """Render a run's HTML and PNG again from its stored layout (e.g. after a rename), without
    a new layout; None when the run has no map yet."""
    if run.directory is None or not (Path(run.directory) / "map_coords.npz").is_file():
        return None
    started = time.perf_counter()
    with np.load(Path(run.directory) / "map_coords.npz") as stored:
        item_ids, coords = stored["item_ids"], stored["coords"]
        if "labels" in stored:
            labels = stored["labels"]
        else:  # a layout saved before labels were stored with it
            label_of = run.label_of()
            labels = np.asarray([label_of.get(int(i), -1) for i in item_ids], np.int32)
    html, png = _render(store, collection, run, media_root, item_ids, labels, coords)
    return RunMap(
        run_id=run.id, points=len(item_ids), html=html, png=png,
        coords=str(Path(run.directory) / "map_coords.npz"), strategy="stored layout",
        seconds={"render": round(time.perf_counter() - started, 3)},
    )  # fmt: skip


def _render(
    store: SqlStore,
    collection: CollectionInfo,
    run: ClusterRun,
    media_root: Path,
    item_ids: np.ndarray,
    labels: np.ndarray,
    coords: np.ndarray,
) -> tuple[str, str]:
    """Write ``map.html`` and ``map.png`` with the run's current cluster names."""
    assert run.directory is not None
    folder = Path(run.directory)
    items = {it.id: it for it in store.get_items(collection, [int(i) for i in item_ids])}
    names = {c.label: c.name or ("noise" if c.label < 0 else f"cluster {c.label}")
             for c in run.clusters}  # fmt: skip
    shown = [k for k, i in enumerate(item_ids) if int(i) in items]  # items deleted since: gone
    item_ids, labels, coords = item_ids[shown], labels[shown], coords[shown]
    hover = [_hover(items[int(i)]) for i in item_ids]
    thumb_paths = [items[int(i)].thumb_path for i in item_ids]
    thumbs = [str(media_root / t) if t else None for t in thumb_paths]
    title = f"{collection.name}: run {run.id} ({run.method}, {run.n_clusters} clusters)"
    html = render_html(folder / "map.html", coords, labels=labels, names=names,
                       hover=hover, thumbnails=thumbs, title=title)  # fmt: skip
    render_png(folder / "map.png", coords, labels=labels, names=names, title=title)
    return str(html.path), str(folder / "map.png")
