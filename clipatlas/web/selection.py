"""Map selections: the points a lasso or box picked on a run's map -> item ids -> a CSV.

The map (``map.html``) is a sandboxed plotly page; its selection script (injected when the
page is served, :data:`SELECT_JS`) posts the selected points' coordinates to the atlas page,
which sends them here. Coordinates are matched against the run's stored layout
(``map_coords.npz``, float32), so no item id ever has to live inside the sandboxed page.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.errors import ConfigError

if TYPE_CHECKING:
    from clipatlas.atlas import Atlas
    from clipatlas.store.runs import ClusterRun

__all__ = ["MAX_POINTS", "SELECT_JS", "inject_select_script", "items_csv", "points_to_ids"]

MAX_POINTS = 200_000

# Runs inside the sandboxed map (no same-origin access): it can only post coordinates up.
SELECT_JS = """<script>
(function hook(tries) {
  var gd = document.querySelector('.plotly-graph-div');
  if (!gd || !gd.on) {
    if (tries < 100) { setTimeout(function () { hook(tries + 1); }, 100); }
    return;
  }
  function send(ev) {
    var pts = (ev && ev.points) ? ev.points.map(function (p) { return [p.x, p.y]; }) : [];
    window.parent.postMessage({ clipatlas: 'selection', points: pts }, '*');
  }
  gd.on('plotly_selected', send);
  gd.on('plotly_deselect', function () { send(null); });
})(0);
</script>"""


def inject_select_script(page: bytes) -> bytes:
    """The map page with :data:`SELECT_JS` before ``</body>`` (or at the end)."""
    marker = b"</body>"
    at = page.rfind(marker)
    script = SELECT_JS.encode()
    return page + script if at < 0 else page[:at] + script + page[at:]


def points_to_ids(run: ClusterRun, points: Sequence[Sequence[float]]) -> list[int]:
    """Item ids of a run's map at the given (x, y) coordinates (ascending, de-duplicated)."""
    if len(points) > MAX_POINTS:
        raise ConfigError(f"select at most {MAX_POINTS} points, got {len(points)}")
    folder = Path(run.directory) if run.directory else None
    if folder is None or not (folder / "map_coords.npz").is_file():
        raise ConfigError(f"run {run.id} has no map yet: draw it first")
    try:
        given = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ConfigError("points must be a list of [x, y] number pairs") from None
    # a point outside float32's range (or not finite) cannot be on the map: drop it before the
    # cast, which would overflow
    limit = float(np.finfo(np.float32).max)
    wanted = given[np.all(np.isfinite(given) & (np.abs(given) <= limit), axis=1)].astype(np.float32)
    with np.load(folder / "map_coords.npz") as stored:
        item_ids, coords = stored["item_ids"], stored["coords"].astype(np.float32)
    where: dict[tuple[float, float], list[int]] = {}
    for item_id, (x, y) in zip(item_ids.tolist(), coords.tolist(), strict=True):
        where.setdefault((x, y), []).append(int(item_id))
    found: set[int] = set()
    for x, y in wanted.tolist():
        found.update(where.get((x, y), ()))
    return sorted(found)


_COLUMNS = ["id", "cluster", "cluster_name", "source", "source_key", "uri", "status",
            "reason", "width", "height", "sharpness", "sha256", "tags", "meta"]  # fmt: skip


def _cell(value: Any) -> Any:
    # spreadsheet formula injection: a cell starting with = + - @ is quoted as text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def items_csv(atlas: Atlas, item_ids: Sequence[int], run: ClusterRun | None = None) -> str:
    """The metadata of ``item_ids`` (with their cluster in ``run``) as CSV text."""
    labels: dict[int, int] = {}
    names: dict[int, str | None] = {}
    if run is not None:
        labels = dict(zip(run.item_ids.tolist(), run.labels.tolist(), strict=True))
        names = {c.label: c.name for c in run.clusters}
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(_COLUMNS)
    ids = sorted({int(i) for i in item_ids})
    for start in range(0, len(ids), 500):
        for it in atlas.store.get_items(atlas.collection, ids[start : start + 500]):
            label = labels.get(it.id)
            meta = dict(it.meta)
            raw = meta.get("tags")
            tags: list[Any] = raw if isinstance(raw, list) else []
            row = [
                it.id, label, names.get(label) if label is not None else None, it.source,
                it.source_key, it.uri, it.status, it.reason, it.width, it.height,
                it.sharpness, it.sha256, ";".join(str(t) for t in tags),
                json.dumps(meta, ensure_ascii=False, sort_keys=True),
            ]  # fmt: skip
            writer.writerow([_cell(v) for v in row])
    return buf.getvalue()
