"""``caption-eval``: does retrieval help? Caption held-out pictures with and without the
neighbours' captions and score both against the pictures' reference captions.

Held-out pictures are the ``test`` side of the seeded split; their neighbours come from the
``train`` side only, so no reference of a test picture reaches its own prompt. Nothing is
stored in the collection: the results go to ``report.json`` and ``report.html``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipatlas.captions.backends.base import CaptionModel, CaptionRequest
from clipatlas.captions.metrics import score_captions
from clipatlas.captions.prompt import DEFAULT_PROMPT_CHARS, PromptTemplate, compose_prompt
from clipatlas.captions.rag import Retriever, load_picture
from clipatlas.captions.report import write_html
from clipatlas.errors import CaptionBackendError, CaptionError, ImageError
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

if TYPE_CHECKING:
    from clipatlas.captions.context import CaptionContext

__all__ = ["evaluate_captions"]


def _order(item_id: int, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def evaluate_captions(
    captions: CaptionContext,
    model: CaptionModel,
    *,
    n: int = 50,
    k: int = 5,
    seed: int = 0,
    template: PromptTemplate,
    out_dir: Path,
    prompt_chars: int = DEFAULT_PROMPT_CHARS,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run the comparison on ``n`` held-out pictures; returns the report (also written)."""
    engine, cstore = captions.engine, captions.store
    splits = cstore.splits()
    if not splits:
        raise CaptionError("no train/test split: import a captioned dataset first")
    retriever = Retriever(engine, cstore, k)
    train = {i for i, side in splits.items() if side == "train"}
    refs_of = {
        i: [c.text for c in rows if c.kind == "reference" and c.text]
        for i, rows in cstore.captions_of(
            [i for i, s in splits.items() if s == "test"], kinds=("reference",)
        ).items()
    }
    test = sorted(
        (i for i, r in refs_of.items() if r and retriever.vector_of(i) is not None),
        key=lambda i: _order(i, seed),
    )[:n]
    if not test:
        raise CaptionError("the test split has no pictures with reference captions and vectors")
    items = {it.id: it for it in engine.store.get_items(engine.collection, test)}
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for done, item_id in enumerate(test, 1):
        item = items[item_id]
        vector = retriever.vector_of(item_id)
        assert vector is not None
        near = retriever.neighbours(vector, exclude={item_id}, allowed=train)
        rag = compose_prompt(template, near, budget=prompt_chars)
        entry: dict[str, Any] = {
            "item_id": item_id,
            "source_key": item.source_key,
            "references": refs_of[item_id],
            "neighbours": rag.neighbours(),  # the captions the retrieval prompt carries
            "budget": rag.summary(),
            "thumbnail": str(engine.media_root / item.thumb_path) if item.thumb_path else None,
        }
        prompts = {
            "plain": compose_prompt(template, near, retrieval=False).text,
            "rag": rag.text,
        }
        try:
            picture = load_picture(engine, item)
        except ImageError as exc:
            for name, prompt in prompts.items():
                entry[name] = {"prompt": prompt, "caption": None, "error": f"decode_error: {exc}"}
        else:
            answers = model.caption(
                [
                    CaptionRequest(f"{item_id}/{name}", picture, prompt)
                    for name, prompt in prompts.items()
                ]
            )
            for (name, prompt), answer in zip(prompts.items(), answers, strict=True):
                failed = isinstance(answer, CaptionBackendError)
                entry[name] = {
                    "prompt": prompt,
                    "caption": None if failed else answer,
                    "error": str(answer) if failed else None,
                }
        results.append(entry)
        emit(progress, ProgressEvent("caption-eval", done, len(test)))
    summary: dict[str, Any] = {}
    embed = captions.text_model().embed_texts
    # both systems are scored on the same pictures: those where both captions succeeded
    both = [r for r in results if r["plain"]["caption"] and r["rag"]["caption"]]
    for name in ("plain", "rag"):
        scores = score_captions(
            [r[name]["caption"] for r in both], [r["references"] for r in both], embed
        )
        for r, per in zip(both, scores.pop("items"), strict=True):
            r[name]["metrics"] = per
        unavailable = scores.pop("unavailable")
        summary[name] = {**scores, "failed": sum(not r[name]["caption"] for r in results)}
    report = {
        "collection": engine.name,
        "model": model.id,
        "n": len(results),
        "k": k,
        "prompt_chars": prompt_chars,
        "seed": seed,
        "prompt_versions": {"plain": template.version(False), "rag": template.version(True)},
        "summary": summary,
        "unavailable": unavailable,
        "seconds": round(time.perf_counter() - start, 3),
        "items": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    report["html"] = str(write_html(report, out_dir / "report.html"))
    report["json"] = str(out_dir / "report.json")
    return report
