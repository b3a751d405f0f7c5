"""Caption metrics against several reference captions per picture.

* BLEU-4: corpus BLEU with up to 4-grams (``nltk``), smoothing method 1 so that small runs do
  not collapse to 0; per item the sentence BLEU-4 is reported too.
* ROUGE-L: F-measure (``rouge-score``), best reference per item, averaged.
* Embedding similarity: cosine of the caption and each reference under the caption text model,
  best reference per item, averaged.

Not computed: METEOR (nltk's needs the WordNet corpus, a separate download) and CIDEr (only in
``pycocoevalcap``, unmaintained since 2020 and tied to Java tools). Both metric packages are
in the ``caption`` extra; a missing one is reported as unavailable instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["score_captions", "tokens"]

_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _bleu(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float | None, list[float | None]]:
    try:
        from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
    except ImportError:
        return None, [None] * len(candidates)
    smooth = SmoothingFunction().method1
    refs = [[tokens(r) for r in group] for group in references]
    hyps = [tokens(c) for c in candidates]
    corpus = float(corpus_bleu(refs, hyps, smoothing_function=smooth)) if hyps else None
    per = [
        float(sentence_bleu(r, h, smoothing_function=smooth))
        for r, h in zip(refs, hyps, strict=True)
    ]
    return corpus, list(per)


def _rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float | None]:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        return [None] * len(candidates)

    class _Tokenizer:  # unicode words (the default keeps only a-z0-9: Korean would vanish)
        def tokenize(self, text: str) -> list[str]:
            return tokens(text)

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    return [
        float(scorer.score_multi(list(refs), cand)["rougeL"].fmeasure)
        for cand, refs in zip(candidates, references, strict=True)
    ]


def _embedding(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    embed: Callable[[list[str]], np.ndarray] | None,
) -> list[float | None]:
    if embed is None or not candidates:
        return [None] * len(candidates)
    flat = [r for group in references for r in group]
    vectors = embed(list(candidates) + flat)
    cand, refs = vectors[: len(candidates)], vectors[len(candidates) :]
    out: list[float | None] = []
    start = 0
    for i, group in enumerate(references):
        block = refs[start : start + len(group)]
        start += len(group)
        out.append(float(np.max(block @ cand[i])) if len(group) else None)
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def score_captions(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Corpus scores and per-item scores of ``candidates`` (one per item) against references."""
    bleu, bleu_items = _bleu(candidates, references)
    rouge = _rouge_l(candidates, references)
    cosine = _embedding(candidates, references, embed)
    return {
        "n": len(candidates),
        "bleu4": bleu,
        "rougeL": _mean(rouge),
        "embedding_similarity": _mean(cosine),
        "items": [
            {"bleu4": b, "rougeL": r, "embedding_similarity": c}
            for b, r, c in zip(bleu_items, rouge, cosine, strict=True)
        ],
        "unavailable": {
            "meteor": "needs the WordNet corpus (a download)",
            "cider": "no maintained package",
        },
    }
