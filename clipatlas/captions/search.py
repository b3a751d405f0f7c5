"""Text search over a captioned collection: three rankings fused into one.

* ``clip``: CLIP text->image similarity of the query and the pictures;
* ``caption``: text-model similarity of the query and each item's captions (best caption);
* ``keyword``: the share of the query's words found as words in a caption (best caption).

Fusion is ``weighted`` by default: the weighted sum of each ranking's min-max normalised
scores, so a strong score in one ranking counts by its size, not only by its place; ``rrf``
(reciprocal-rank fusion, ``sum_r w_r / (rrf_k + rank_r)``) is the alternative. Either way an
item with a caption containing every query word (an *exact* keyword match) ranks above the
items without one (``exact_first``; within each tier the fused score orders): a weak CLIP rank
cannot bury a caption that says exactly what was asked. Weights are per ranking; a weight of 0
switches one off. Each hit says its rank and score in every ranking and whether it is exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.analysis.search import SearchHit
from clipatlas.errors import ConfigError, ModalityNotSupportedError
from clipatlas.store.base import Item

if TYPE_CHECKING:
    from clipatlas.captions.context import CaptionContext

__all__ = ["DEFAULT_WEIGHTS", "CaptionHit", "fuse", "keyword_scores", "search_captions"]

DEFAULT_WEIGHTS: dict[str, float] = {"clip": 1.0, "caption": 1.0, "keyword": 0.5}
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "at",
        "to",
        "and",
        "or",
        "with",
        "is",
        "are",
        "for",
        "by",
        "from",
        "this",
        "that",
    ]
)

Ranking = dict[int, float]  # item id -> score (higher is better)


@dataclass(frozen=True)
class CaptionHit:
    hit: SearchHit
    score: float
    ranks: dict[str, int | None]
    scores: dict[str, float | None]
    caption: str | None  # the item's caption closest to the query
    captions: list[str] = field(default_factory=list)
    exact: bool = False  # one caption holds every query word

    def as_dict(self) -> dict[str, Any]:
        out = self.hit.as_dict()
        out.update(
            score=round(self.score, 6),
            exact=self.exact,
            ranks=self.ranks,
            scores={k: None if v is None else round(v, 6) for k, v in self.scores.items()},
            caption=self.caption,
            captions=self.captions,
        )
        return out


def query_words(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in _STOP and (len(w) > 1 or not w.isascii())]
    return list(dict.fromkeys(kept or words))


def keyword_scores(
    words: list[str], rows: list[tuple[int, int, str]]
) -> tuple[Ranking, dict[int, str]]:
    """Per item: the best share of ``words`` appearing as whole words in one caption."""
    best: Ranking = {}
    text_of: dict[int, str] = {}
    for _, item_id, text in rows:
        present = {w.lower() for w in _WORD.findall(text)}
        share = sum(w in present for w in words) / len(words)
        if share > best.get(item_id, 0.0):
            best[item_id], text_of[item_id] = share, text
    return best, text_of


def fuse(
    rankings: Mapping[str, Ranking],
    weights: Mapping[str, float],
    method: str = "weighted",
    rrf_k: int = 60,
) -> dict[int, float]:
    """One fused score per item from several rankings."""
    if method not in ("rrf", "weighted"):
        raise ConfigError(f"fusion must be 'rrf' or 'weighted', got {method!r}")
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        w = float(weights.get(name, 0.0))
        if not w or not ranking:
            continue
        ordered = sorted(ranking.items(), key=lambda kv: (-kv[1], kv[0]))
        lo, hi = ordered[-1][1], ordered[0][1]
        for rank, (item_id, score) in enumerate(ordered, 1):
            if method == "rrf":
                part = w / (rrf_k + rank)
            else:
                part = w * ((score - lo) / (hi - lo) if hi > lo else 1.0)
            fused[item_id] = fused.get(item_id, 0.0) + part
    return fused


def _top(scores: np.ndarray, ids: np.ndarray, depth: int) -> Ranking:
    order = np.argsort(-scores, kind="stable")[:depth]
    return {int(ids[i]): float(scores[i]) for i in order}


def _clip_ranking(captions: CaptionContext, text: str, depth: int) -> Ranking:
    engine = captions.engine
    if engine.collection.embedder_id is None:
        return {}
    index = engine.index()
    if not len(index):
        return {}
    try:
        query = engine.embedder().embed_texts([text])[0]
    except ModalityNotSupportedError:
        return {}
    scores, ids = index.search(query.reshape(1, -1), depth)
    return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True)}


def _caption_ranking(
    captions: CaptionContext, text: str, depth: int
) -> tuple[Ranking, dict[int, str]]:
    caption_ids, item_ids, matrix = captions.caption_vectors()
    if not len(caption_ids):
        return {}, {}
    query = captions.text_model().embed_texts([text])[0]
    scores = matrix @ query
    best: dict[int, tuple[float, int]] = {}
    for row, item_id in enumerate(item_ids.tolist()):
        if item_id not in best or scores[row] > best[item_id][0]:
            best[item_id] = (float(scores[row]), row)
    ids = np.fromiter(best, np.int64)
    values = np.asarray([best[int(i)][0] for i in ids], np.float32)
    ranking = _top(values, ids, depth)
    texts = captions.texts_of([int(caption_ids[best[i][1]]) for i in ranking])
    return ranking, {i: texts.get(int(caption_ids[best[i][1]]), "") for i in ranking}


def search_captions(
    captions: CaptionContext,
    text: str,
    k: int = 10,
    *,
    weights: Mapping[str, float] | None = None,
    fusion: str = "weighted",
    rrf_k: int = 60,
    depth: int | None = None,
    exact_first: bool = True,
) -> list[CaptionHit]:
    """The ``k`` best items for ``text`` by fused CLIP, caption-embedding and keyword ranks;
    with ``exact_first``, items with a caption holding every query word come first."""
    if not text.strip():
        raise ConfigError("search text is empty")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = set(w) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ConfigError(f"unknown ranking weights {sorted(unknown)}; use clip, caption, keyword")
    depth = depth or max(100, 5 * k)
    rankings: dict[str, Ranking] = {}
    best_text: dict[int, str] = {}
    if w["keyword"]:
        words = query_words(text)
        rows = captions.store.keyword_matches(words, limit=20 * depth)
        rankings["keyword"], kw_text = keyword_scores(words, rows)
        best_text.update(kw_text)
    if w["caption"]:
        rankings["caption"], cap_text = _caption_ranking(captions, text, depth)
        best_text.update(cap_text)
    if w["clip"]:
        rankings["clip"] = _clip_ranking(captions, text, depth)
    fused = fuse(rankings, w, fusion, rrf_k)
    exact = {i for i, share in rankings.get("keyword", {}).items() if share >= 1.0}
    tier = exact if exact_first else set()
    top = sorted(fused.items(), key=lambda kv: (kv[0] not in tier, -kv[1], kv[0]))[:k]
    engine = captions.engine
    items = {it.id: it for it in engine.store.get_items(engine.collection, [i for i, _ in top])}
    ordered = {
        name: {
            i: r
            for r, (i, _) in enumerate(sorted(ranking.items(), key=lambda kv: (-kv[1], kv[0])), 1)
        }
        for name, ranking in rankings.items()
    }
    all_captions = captions.store.captions_of([i for i, _ in top])
    hits: list[CaptionHit] = []
    for item_id, score in top:
        item = items.get(item_id)
        if item is None or item.status != "ok":
            continue
        texts = [c.text for c in all_captions.get(item_id, []) if c.status == "ok" and c.text]
        hits.append(
            CaptionHit(
                hit=_as_hit(item, score, captions),
                score=score,
                ranks={name: ordered[name].get(item_id) for name in rankings},
                scores={name: rankings[name].get(item_id) for name in rankings},
                caption=best_text.get(item_id) or (texts[0] if texts else None),
                captions=texts,
                exact=item_id in exact,
            )
        )
    return hits


def _as_hit(item: Item, score: float, captions: CaptionContext) -> SearchHit:
    from clipatlas.captions.rag import picture_path

    media_root = captions.engine.media_root
    path = picture_path(item, media_root)
    return SearchHit(
        id=item.id,
        score=score,
        uri=item.uri,
        path=str(path) if path else None,
        thumbnail=str(media_root / item.thumb_path) if item.thumb_path else None,
        source=item.source,
        source_key=item.source_key,
        width=item.width,
        height=item.height,
        meta=item.meta,
    )
