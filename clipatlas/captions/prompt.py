"""The retrieval-augmented prompt: the captions of a picture's nearest neighbours, ordered by
similarity (shown), deduplicated, put into a template.

A template is plain text with ``{examples}`` (the neighbours' captions, one per line with
their similarity) and optionally ``{k}``; it is versioned by its own hash, so captions made
with an edited template are told apart (``prompt_version``) and a batch rerun redoes them.
Without neighbours (or with retrieval off) the plain template is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipatlas.errors import ConfigError

__all__ = [
    "DEFAULT_TEMPLATES",
    "PLAIN_TEMPLATES",
    "Neighbour",
    "PromptTemplate",
    "build_prompt",
    "examples",
]

DEFAULT_TEMPLATES = {
    "en": (
        "Write one caption for this image: a single factual English sentence saying what is "
        "in it and what is happening. Here are captions of the {k} most similar images in the "
        "collection, most similar first, with their similarity; use them for vocabulary and "
        "style, but describe only what you see in this image:\n{examples}\n"
        "Answer with the caption only."
    ),
    "ko": (
        "이 이미지에 대한 캡션을 한국어 한 문장으로 사실대로 써 주세요: 무엇이 있고 무슨 일이 "
        "일어나는지. 아래는 컬렉션에서 가장 비슷한 이미지 {k}개의 캡션입니다(비슷한 순서, "
        "유사도 표시). 어휘와 문체는 참고하되 이 이미지에 보이는 것만 설명하세요:\n{examples}\n"
        "캡션만 답하세요."
    ),
}
PLAIN_TEMPLATES = {
    "en": (
        "Write one caption for this image: a single factual English sentence saying what is "
        "in it and what is happening. Answer with the caption only."
    ),
    "ko": (
        "이 이미지에 대한 캡션을 한국어 한 문장으로 사실대로 써 주세요: 무엇이 있고 무슨 일이 "
        "일어나는지. 캡션만 답하세요."
    ),
}


@dataclass(frozen=True)
class Neighbour:
    """A similar stored item and the captions it lends to the prompt."""

    item_id: int
    score: float
    captions: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "item_id": self.item_id,
            "score": round(self.score, 6),
            "captions": list(self.captions),
        }


@dataclass(frozen=True)
class PromptTemplate:
    language: str
    retrieval: str  # with {examples}
    plain: str

    @classmethod
    def load(cls, language: str = "en", path: Path | None = None) -> PromptTemplate:
        if language not in DEFAULT_TEMPLATES:
            raise ConfigError(f"caption language must be one of {sorted(DEFAULT_TEMPLATES)}")
        retrieval = DEFAULT_TEMPLATES[language]
        if path is not None:
            try:
                retrieval = Path(path).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read prompt template {path}: {exc}") from exc
            if "{examples}" not in retrieval:
                raise ConfigError(f"prompt template {path} has no {{examples}} placeholder")
        return cls(language, retrieval, PLAIN_TEMPLATES[language])

    def version(self, retrieval: bool) -> str:
        text = self.retrieval if retrieval else self.plain
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
        return f"{'rag' if retrieval else 'plain'}-{self.language}-{digest}"


def _norm(text: str) -> str:
    return " ".join(text.lower().strip(" .!").split())


def examples(neighbours: Sequence[Neighbour], limit: int = 12) -> list[tuple[float, str]]:
    """(similarity, caption) lines: best neighbour first, each caption once."""
    seen: set[str] = set()
    lines: list[tuple[float, str]] = []
    for n in sorted(neighbours, key=lambda n: -n.score):
        for caption in n.captions:
            key = _norm(caption)
            if key and key not in seen:
                seen.add(key)
                lines.append((n.score, caption))
    return lines[:limit]


def build_prompt(
    template: PromptTemplate, neighbours: Sequence[Neighbour], *, retrieval: bool = True
) -> str:
    """The prompt text; without neighbours' captions it is the plain prompt. (The caption's
    ``prompt_version`` is the run's, :meth:`PromptTemplate.version`, either way.)"""
    lines = examples(neighbours) if retrieval else []
    if not lines:
        return template.plain
    shown = "\n".join(f"- ({score:.2f}) {caption}" for score, caption in lines)
    k = len({n.item_id for n in neighbours})
    try:
        text = template.retrieval.format(examples=shown, k=k)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"prompt template: bad placeholder {exc}") from exc
    return text
