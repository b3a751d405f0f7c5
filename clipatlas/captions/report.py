"""The caption-eval report as a self-contained HTML page (thumbnails inline, text escaped)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["write_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4rem;
vertical-align:top;font-size:.9rem}th{background:#f3f3f3}img{max-width:200px}
.err{color:#b00}.num{font-family:monospace}ul{margin:0;padding-left:1.1rem}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: object) -> str:
    return "-" if value is None else f"{float(value):.4f}"  # type: ignore[arg-type]


def _thumb(path: str | None) -> str:
    if not path:
        return ""
    try:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return ""
    return f'<img alt="" src="data:image/jpeg;base64,{data}">'


def _caption(result: dict[str, Any]) -> str:
    if result.get("error"):
        return f'<span class="err">{_e(result["error"])}</span>'
    m = result.get("metrics") or {}
    return (
        f"{_e(result.get('caption'))}<br><span class=num>BLEU-4 {_num(m.get('bleu4'))} · "
        f"ROUGE-L {_num(m.get('rougeL'))} · emb {_num(m.get('embedding_similarity'))}</span>"
    )


def write_html(report: dict[str, Any], path: Path) -> Path:
    s = report["summary"]
    rows = []
    for it in report["items"]:
        refs = "".join(f"<li>{_e(r)}</li>" for r in it["references"])
        near = "".join(
            f"<li>#{_e(n['item_id'])} ({_num(n['score'])}): {_e('; '.join(n['captions'][:2]))}</li>"
            for n in it["neighbours"]
        )
        rows.append(
            f"<tr><td>{_thumb(it.get('thumbnail'))}<br>#{_e(it['item_id'])} "
            f"{_e(it['source_key'])}</td><td><ul>{refs}</ul></td>"
            f"<td>{_caption(it['plain'])}</td><td>{_caption(it['rag'])}</td>"
            f"<td><ul>{near}</ul></td></tr>"
        )
    summary = "".join(
        f"<tr><th>{_e(name)}</th><td class=num>{_num(s[name].get('bleu4'))}</td>"
        f"<td class=num>{_num(s[name].get('rougeL'))}</td>"
        f"<td class=num>{_num(s[name].get('embedding_similarity'))}</td>"
        f"<td>{_e(s[name].get('n'))} scored, {_e(s[name].get('failed'))} failed</td></tr>"
        for name in ("plain", "rag")
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>caption-eval {_e(report["collection"])}</title><style>{_STYLE}</style></head><body>
<h1>Caption evaluation: {_e(report["collection"])}</h1>
<p>model <b>{_e(report["model"])}</b>, {_e(report["n"])} held-out images (scores over those where
both captions succeeded), k={_e(report["k"])}
neighbours from the train split; seed {_e(report["seed"])}.</p>
<table><tr><th></th><th>BLEU-4</th><th>ROUGE-L</th><th>embedding similarity</th><th>items</th></tr>
{summary}</table>
<p>Not computed: {_e("; ".join(f"{k}: {v}" for k, v in report["unavailable"].items()))}</p>
<h2>Items</h2>
<table><tr><th>image</th><th>references</th><th>plain caption</th>
<th>retrieval-augmented caption</th><th>neighbours</th></tr>
{"".join(rows)}</table></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
