"""Render an atlas map: a self-contained interactive HTML page and a static PNG.

HTML: plotly, with plotly.js embedded in the page (``include_plotlyjs=True``, ~4.7 MB), so it
works offline and from ``file://``. Plotly was chosen over a hand-written canvas page because
zoom, pan, box-select, legend toggling of clusters and WebGL for large N come for free; the
cost is the fixed ~4.7 MB. One trace per cluster (largest first, noise ``-1`` in grey); hover
shows the cluster name and the provenance in the tooltip and, in a side panel, the item's
thumbnail (a ``data:`` URI, downscaled to ``thumb_px`` <= 96 px). Thumbnails are embedded for
at most ``max_thumbnails`` points (a seeded sample when there are more); the others keep name
and text only. Every string from upstream (cluster names, provenance, title) is HTML-escaped
before it reaches the page; file paths are only read, never written into the page.

PNG: a matplotlib scatter on the Agg canvas (no pyplot, no global backend state); every
cluster's label is written on the plot where its members are, and the legend lists every
cluster (label, name, size) in as many columns as it needs.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from clipatlas.atomic import write_atomic
from clipatlas.errors import ConfigError
from clipatlas.wording import counted

__all__ = ["LEGEND_ROWS", "HtmlMap", "label_anchors", "legend_entries", "render_html", "render_png"]

NOISE = -1
NOISE_COLOUR = "#9e9e9e"
_MAX_FIELD = 300  # characters kept of one provenance value in hover text
_WEBGL_ABOVE = 10_000


@dataclass(frozen=True)
class HtmlMap:
    path: Path
    size_bytes: int
    points: int
    thumbnails: int  # embedded as data: URIs
    thumbnails_failed: int  # missing or unreadable files (points keep their text)


def _write_bytes(dest: Path, data: bytes) -> None:
    def write(fh: BinaryIO) -> None:
        fh.write(data)

    write_atomic(dest, write)


def _palette() -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    colours: list[str] = []
    for name in ("tab20", "tab20b", "tab20c"):
        cmap = colormaps[name]
        colours += [to_hex(cmap(i)) for i in range(cmap.N)]
    return [c for c in colours if c.lower() not in ("#7f7f7f", "#c7c7c7")]  # greys mean noise


def _check(coords: np.ndarray, labels: Sequence[int] | np.ndarray | None) -> tuple[Any, Any]:
    xy = np.asarray(coords, dtype=np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ConfigError(f"coords must have shape (N, 2), got {xy.shape}")
    lab = np.zeros(len(xy), np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if lab.shape != (len(xy),):
        raise ConfigError(f"labels must have one entry per point ({len(xy)}), got {lab.shape}")
    return xy, lab


def _cluster_order(labels: np.ndarray) -> list[tuple[int, int]]:
    """(label, size) pairs, largest cluster first, noise last."""
    values, counts = np.unique(labels, return_counts=True)
    pairs = [(int(v), int(c)) for v, c in zip(values, counts, strict=True)]
    pairs.sort(key=lambda p: (p[0] == NOISE, -p[1], p[0]))
    return pairs


def _colours(order: list[tuple[int, int]]) -> dict[int, str]:
    palette = _palette()
    out: dict[int, str] = {}
    for rank, (label, _) in enumerate(p for p in order if p[0] != NOISE):
        out[label] = palette[rank % len(palette)]
    out[NOISE] = NOISE_COLOUR
    return out


def _name(names: Mapping[int, str], label: int) -> str:
    if label in names:
        return str(names[label])
    return "noise" if label == NOISE else f"cluster {label}"


def _thumbnail_uri(path: str, px: int) -> str | None:
    try:
        with Image.open(path) as src:
            src.draft("RGB", (px, px))  # JPEG: decode at reduced scale
            rgb = src.convert("RGB")
        rgb.thumbnail((px, px))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=70)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _hover_text(cluster: str, fields: Mapping[str, str] | None) -> str:
    parts = [f"<b>{html.escape(cluster)}</b>"]
    for key, value in (fields or {}).items():
        text = str(value)
        if len(text) > _MAX_FIELD:
            text = text[: _MAX_FIELD - 1] + "…"
        parts.append(f"{html.escape(str(key))}: {html.escape(text)}")
    return "<br>".join(parts)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: system-ui, sans-serif; }}
#clipatlas-wrap {{ display: flex; height: 100vh; }}
#clipatlas-plot {{ flex: 1; min-width: 0; }}
#clipatlas-panel {{ width: 240px; padding: 12px; border-left: 1px solid #ddd;
  overflow-wrap: anywhere; font-size: 13px; }}
#clipatlas-thumb {{ display: none; max-width: 96px; max-height: 96px; margin-bottom: 8px; }}
</style></head>
<body><div id="clipatlas-wrap"><div id="clipatlas-plot">{plot}</div>
<aside id="clipatlas-panel"><h3>{title}</h3><p>{summary}</p>
<img id="clipatlas-thumb" alt=""><div id="clipatlas-info">Hover a point.</div></aside>
</div></body></html>
"""

# The hover text was built from escaped pieces above, so it may go into innerHTML.
_HOVER_JS = """
var gd = document.getElementById('{plot_id}');
gd.on('plotly_hover', function (ev) {
  var p = ev.points[0], img = document.getElementById('clipatlas-thumb');
  if (p.customdata) { img.src = p.customdata; img.style.display = 'block'; }
  else { img.removeAttribute('src'); img.style.display = 'none'; }
  document.getElementById('clipatlas-info').innerHTML = p.text;
});
"""


def render_html(
    path: str | Path,
    coords: np.ndarray,
    *,
    labels: Sequence[int] | np.ndarray | None,
    names: Mapping[int, str] | None = None,
    hover: Sequence[Mapping[str, str]] | None = None,
    thumbnails: Sequence[str | None] | None = None,
    title: str = "clipatlas map",
    max_thumbnails: int = 5_000,
    thumb_px: int = 96,
    seed: int = 0,
) -> HtmlMap:
    """Write a self-contained, offline HTML map of ``coords`` (N, 2) coloured by ``labels``.

    ``hover[i]`` holds the provenance fields of point i (name, source, ...), ``thumbnails[i]``
    the path of a small picture or None. Written atomically; returns what was written.
    """
    import plotly.io as pio

    xy, lab = _check(coords, labels)
    n = len(xy)
    names = names or {}
    for what, seq in (("hover", hover), ("thumbnails", thumbnails)):
        if seq is not None and len(seq) != n:
            raise ConfigError(f"{what} must have one entry per point ({n}), got {len(seq)}")
    if not 8 <= thumb_px <= 96:
        raise ConfigError(f"thumb_px must be between 8 and 96, got {thumb_px}")

    uris: list[str] = [""] * n
    embedded = failed = 0
    if thumbnails is not None and max_thumbnails > 0:
        candidates = np.array([i for i, p in enumerate(thumbnails) if p], dtype=np.int64)
        if len(candidates) > max_thumbnails:
            rng = np.random.default_rng(seed)
            candidates = np.sort(rng.choice(candidates, size=max_thumbnails, replace=False))
        for i in candidates.tolist():
            uri = _thumbnail_uri(str(thumbnails[i]), thumb_px)
            if uri is None:
                failed += 1
            else:
                uris[i], embedded = uri, embedded + 1

    order = _cluster_order(lab)
    colours = _colours(order)
    trace_type = "scattergl" if n > _WEBGL_ABOVE else "scatter"
    size = 7 if n <= 2_000 else 5 if n <= 50_000 else 3
    traces: list[dict[str, Any]] = []
    for label, count in order:
        idx = np.flatnonzero(lab == label)
        cluster = _name(names, label)
        traces.append(
            {
                "type": trace_type,
                "mode": "markers",
                "name": html.escape(f"{cluster} ({count})"),
                "x": xy[idx, 0].tolist(),
                "y": xy[idx, 1].tolist(),
                "text": [_hover_text(cluster, hover[i] if hover else None) for i in idx.tolist()],
                "customdata": [uris[i] for i in idx.tolist()],
                "hoverinfo": "text",
                "marker": {"color": colours[label], "size": size, "opacity": 0.8},
            }
        )
    figure = {
        "data": traces,
        "layout": {
            "title": {"text": html.escape(title)},
            "hovermode": "closest",
            "xaxis": {"visible": False},
            "yaxis": {"visible": False, "scaleanchor": "x"},
            "legend": {"itemsizing": "constant"},
            "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
        },
    }
    plot = pio.to_html(
        figure,
        include_plotlyjs=True,
        full_html=False,
        post_script=_HOVER_JS,
        validate=False,
        config={"displaylogo": False, "responsive": True},
        default_height="100%",
    )
    clusters = sum(1 for label, _ in order if label != NOISE)
    summary = f"{counted(n, 'point')}, {counted(clusters, 'cluster')}" + (
        f", {int((lab == NOISE).sum())} noise" if (lab == NOISE).any() else ""
    )
    page = _PAGE.format(title=html.escape(title), plot=plot, summary=html.escape(summary))
    data = page.encode("utf-8")
    dest = Path(path)
    _write_bytes(dest, data)
    return HtmlMap(dest, len(data), n, embedded, failed)


def _mpl_text(text: str) -> str:
    return text.replace("$", r"\$")  # a lone "$" would start matplotlib mathtext


LEGEND_ROWS = 24  # legend entries per column of the PNG


def legend_entries(order: list[tuple[int, int]], names: Mapping[int, str]) -> list[str]:
    """One PNG legend entry per cluster (every cluster, largest first, noise last): the label
    that is also written on the plot, the name and the size."""
    out = []
    for label, count in order:
        name = _name(names, label)
        shown = name if label == NOISE or name == f"cluster {label}" else f"{label}: {name}"
        out.append(f"{_mpl_text(shown)} ({count})")
    return out


def label_anchors(xy: np.ndarray, lab: np.ndarray) -> dict[int, tuple[float, float]]:
    """Where each real cluster's label goes on the plot: the member nearest the median of its
    members (always on the cluster, also for a curved one)."""
    out: dict[int, tuple[float, float]] = {}
    for label in np.unique(lab):
        if label == NOISE:
            continue
        pts = xy[lab == label]
        nearest = int(np.argmin(((pts - np.median(pts, axis=0)) ** 2).sum(axis=1)))
        out[int(label)] = (float(pts[nearest, 0]), float(pts[nearest, 1]))
    return out


def render_png(
    path: str | Path,
    coords: np.ndarray,
    *,
    labels: Sequence[int] | np.ndarray | None,
    names: Mapping[int, str] | None = None,
    title: str = "clipatlas map",
    size_inches: tuple[float, float] = (10.0, 8.0),
    dpi: int = 120,
) -> Path:
    """Write a static PNG scatter of ``coords`` coloured by cluster: each cluster's label is
    written on the plot (:func:`label_anchors`) and the legend lists every cluster, in columns
    of :data:`LEGEND_ROWS` (:func:`legend_entries`)."""
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy, lab = _check(coords, labels)
    names = names or {}
    order = _cluster_order(lab)
    colours = _colours(order)
    n = len(xy)
    marker = 12.0 if n <= 2_000 else 4.0 if n <= 50_000 else 1.0
    entries = legend_entries(order, names)
    columns = max(1, -(-len(entries) // LEGEND_ROWS))

    fig = Figure(figsize=(size_inches[0] + 2.2 * (columns - 1), size_inches[1]), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    handles: dict[int, Any] = {}
    for label, _ in reversed(order):  # largest drawn last, on top; noise first, below
        idx = lab == label
        handles[label] = ax.scatter(
            xy[idx, 0], xy[idx, 1], s=marker, c=colours[label], alpha=0.8, linewidths=0,
            rasterized=True,
        )  # fmt: skip
    outline = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    for label, (x, y) in label_anchors(xy, lab).items():
        ax.text(x, y, str(label), fontsize=8, fontweight="bold", ha="center", va="center",
                color="#222222", path_effects=outline)  # fmt: skip
    ax.set_title(_mpl_text(title))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if n:
        ax.legend(
            [handles[label] for label, _ in order],
            entries,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncol=columns,
            fontsize=7 if len(entries) > LEGEND_ROWS else 8,
            markerscale=max(1.0, 6 / marker),
            frameon=False,
        )
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a name in a script the font lacks draws as boxes; that is no reason to fail the map
        warnings.filterwarnings("ignore", r"Glyph \d+ .*missing from", UserWarning)
        fig.tight_layout()
        fig.savefig(buf, format="png", bbox_inches="tight")
    dest = Path(path)
    data = buf.getvalue()
    _write_bytes(dest, data)
    return dest
