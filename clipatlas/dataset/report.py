"""The build report: one self-contained HTML page (thumbnails inlined as small data URIs).

It shows the counts, the thresholds used, the kept pictures, the cluster picture (a strip of
thumbnails per cluster, the chosen one marked, with its scores) and every dropped candidate
grouped by stage and reason. Everything that came from upstream (URLs, titles, details, the
query itself) is HTML-escaped; no script, no external resource.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["ReportEntry", "render_report"]

_THUMB = 96
_PER_GROUP = 48  # thumbnails shown per group; the rest are counted
_STAGES = ("fetch", "decode", "quality", "dedupe", "meaning", "export")

_CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:17px;margin-top:28px} h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse} td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
.grid{display:flex;flex-wrap:wrap;gap:4px}
figure{margin:0;width:100px;font-size:10px;overflow:hidden}
.th{width:96px;height:96px;background:#eee center/cover no-repeat}
.noimg{width:96px;height:96px;background:#f3e0e0;display:flex;align-items:center;
 justify-content:center;font-size:10px;word-break:break-all}
.cluster{border:2px solid #ddd;padding:6px;margin:6px 0}
.chosen{border-color:#2a8;background:#f2fbf7}
.muted{color:#777}
.warn{background:#fff4e0;border-left:4px solid #e90;padding:4px 8px}
"""


@dataclass(frozen=True)
class ReportEntry:
    """One candidate as the report shows it."""

    position: int
    uri: str
    title: str
    thumb: Path | None
    outcome: str
    stage: str | None
    reason: str | None
    detail: str | None
    file: str | None
    scores: Mapping[str, Any]


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _data_uri(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as opened:
            im = opened.convert("RGB")
        im.thumbnail((_THUMB, _THUMB))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=70)
    except (OSError, UnidentifiedImageError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(entry: ReportEntry, caption: str, cache: dict[int, str | None]) -> str:
    """A thumbnail; its data URI is written once, in a CSS class, however often it is shown."""
    if entry.position not in cache:
        cache[entry.position] = _data_uri(entry.thumb)
    tip = _e(" | ".join(p for p in (entry.title, entry.uri, entry.detail or "") if p))
    body = (
        f'<div class="th p{entry.position}"></div>'
        if cache[entry.position]
        else f'<div class="noimg">{_e(entry.reason)}</div>'
    )
    return f'<figure title="{tip}">{body}<figcaption>{_e(caption)}</figcaption></figure>'


def _thumb_styles(cache: dict[int, str | None]) -> str:
    return "\n".join(
        f".p{pos}{{background-image:url({uri})}}" for pos, uri in sorted(cache.items()) if uri
    )


def _grid(
    entries: Sequence[ReportEntry],
    caption: Any,
    cache: dict[int, str | None],
    cap: int | None = _PER_GROUP,
) -> str:
    cap = len(entries) if cap is None else cap
    shown = "".join(_figure(e, caption(e), cache) for e in entries[:cap])
    more = len(entries) - cap
    extra = f'<p class="muted">... and {more} more</p>' if more > 0 else ""
    return f'<div class="grid">{shown}</div>{extra}'


def render_report(
    *,
    query: str,
    entries: Sequence[ReportEntry],
    clusters: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    note: str = "",
    warnings: Sequence[Mapping[str, Any]] = (),
    decided_by: str = "",
) -> str:
    cache: dict[int, str | None] = {}
    by_pos = {e.position: e for e in entries}
    kept = sorted((e for e in entries if e.outcome == "kept"), key=lambda e: e.file or "")
    dropped = [e for e in entries if e.outcome == "dropped"]
    counts = Counter((e.stage, e.reason) for e in dropped)
    parts = [
        f"<h1>Dataset build: {_e(query)}</h1>",
        f"<p>{len(entries)} candidates: <b>{len(kept)} kept</b>, {len(dropped)} dropped.</p>",
    ]
    if note:
        parts.append(f'<p class="muted">{_e(note)}</p>')
    for w in warnings:
        parts.append(
            f'<p class="warn"><b>warning {_e(w.get("code"))}</b>: {_e(w.get("message"))}</p>'
        )
    if decided_by:
        parts.append(f'<p class="muted">cluster chosen by: {_e(decided_by)}</p>')
    parts.append(
        "<h2>Dropped, by stage and reason</h2><table><tr><th>stage</th>"
        "<th>reason</th><th>candidates</th></tr>"
    )
    for (stage, reason), n in sorted(counts.items(), key=lambda kv: _order(kv[0])):
        parts.append(f"<tr><td>{_e(stage)}</td><td>{_e(reason)}</td><td>{n}</td></tr>")
    parts.append("</table><h2>Thresholds</h2><table>")
    for section in ("quality", "meaning"):
        for key, value in (params.get(section) or {}).items():
            shown = json.dumps(value, ensure_ascii=False)
            parts.append(f"<tr><td>{_e(section)}.{_e(key)}</td><td>{_e(shown)}</td></tr>")
    parts.append(f"</table><h2>Kept ({len(kept)})</h2>")
    caption = lambda e: f"{e.file} {e.scores.get('query_similarity', '')}"  # noqa: E731
    parts.append(_grid(kept, caption, cache, cap=None))  # the whole kept set
    parts.append("<h2>Clusters</h2>")
    for cl in clusters:
        chosen = " chosen" if cl.get("chosen") else ""
        label = "chosen " if chosen else ""
        members = [by_pos[p] for p in cl.get("positions", []) if p in by_pos]
        parts.append(
            f'<div class="cluster{chosen}"><b>{label}cluster {_e(cl.get("label"))}</b> '
            f"size {_e(cl.get('size'))} (share {_e(cl.get('size_share'))}), relevance "
            f"{_e(cl.get('relevance'))}, text evidence z {_e(cl.get('text_z'))}"
            + (" (vetoed by the query text)" if cl.get("vetoed") else "")
            + _grid(members, lambda e: e.reason or "kept", cache)
            + "</div>"
        )
    parts.append("<h2>Dropped pictures</h2>")
    for stage, reason in sorted(counts, key=_order):
        group = [e for e in dropped if (e.stage, e.reason) == (stage, reason)]
        parts.append(f"<h3>{_e(stage)}: {_e(reason)} ({len(group)})</h3>")
        parts.append(_grid(group, lambda e: f"#{e.position} {e.detail or ''}"[:60], cache))
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Dataset: {_e(query)}</title><style>{_CSS}\n{_thumb_styles(cache)}</style>"
        "</head><body>"
    )
    return "\n".join([head, *parts, "</body></html>"])


def _order(key: tuple[str | None, str | None]) -> tuple[int, str]:
    stage, reason = key
    rank = _STAGES.index(stage) if stage in _STAGES else len(_STAGES)
    return rank, reason or ""
