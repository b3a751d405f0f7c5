"""The retrieval-augmented prompt: the captions of a picture's nearest neighbours, ordered by
similarity (shown), deduplicated, within a character budget, put into a template.

The budget (``caption_prompt_chars``, default :data:`DEFAULT_PROMPT_CHARS`) is shared round-
robin: every neighbour gives its best caption (the one whose words the other neighbours'
captions share most) before any gives a second, so a neighbour with many captions cannot crowd
out the others. :class:`Prompt` keeps exactly the lines that reached the prompt; that, not
everything the neighbours lent, is the caption's provenance.

A template is plain text with ``{examples}`` (the neighbours' captions, one per line with
their similarity) and optionally ``{k}`` (the neighbours shown); it is versioned by its own
hash, so captions made with an edited template are told apart (``prompt_version``) and a batch
rerun redoes them. Without neighbours (or with retrieval off) the plain template is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipatlas.errors import ConfigError

__all__ = [
    "DEFAULT_PROMPT_CHARS",
    "DEFAULT_TEMPLATES",
    "PLAIN_TEMPLATES",
    "Neighbour",
    "Prompt",
    "PromptLine",
    "PromptTemplate",
    "compose_prompt",
    "examples",
]

DEFAULT_PROMPT_CHARS = 1500  # about 400 tokens of English: room for 5 neighbours x 3 captions
_WORD = re.compile(r"\w+", re.UNICODE)

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


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 or not w.isascii()}


@dataclass(frozen=True)
class PromptLine:
    """One caption line of the prompt and the neighbour that lent it."""

    item_id: int
    score: float
    caption: str

    def render(self) -> str:
        return f"- ({self.score:.2f}) {self.caption}"


@dataclass(frozen=True)
class Prompt:
    """The prompt text and exactly the caption lines that reached it."""

    text: str
    lines: tuple[PromptLine, ...]
    budget: int
    lent: int  # distinct captions the neighbours offered
    retrieved: tuple[int, ...]  # every neighbour retrieved, most similar first

    @property
    def used(self) -> int:
        return len("\n".join(line.render() for line in self.lines))

    def neighbours(self) -> list[dict[str, object]]:
        """The neighbours that reached the prompt, most similar first, each with the
        captions of it that the prompt shows (the provenance of a caption)."""
        out: dict[int, dict[str, object]] = {}
        for line in self.lines:
            entry = out.setdefault(
                line.item_id,
                {"item_id": line.item_id, "score": round(line.score, 6), "captions": []},
            )
            captions = entry["captions"]
            assert isinstance(captions, list)
            captions.append(line.caption)
        return list(out.values())

    def summary(self) -> dict[str, object]:
        shown = {line.item_id for line in self.lines}
        return {
            "chars": self.budget,
            "used": self.used,
            "lent": self.lent,
            "shown": len(self.lines),
            "left_out": [i for i in self.retrieved if i not in shown],
        }


def _ranked(neighbours: Sequence[Neighbour]) -> list[tuple[Neighbour, list[str]]]:
    """Each neighbour (most similar first) with its captions, deduplicated across the
    neighbours (a caption stays with the most similar one lending it) and best first: the
    caption whose words the other neighbours' captions share most (consensus), ties in the
    order they were lent."""
    seen: set[str] = set()
    kept: list[tuple[Neighbour, list[str]]] = []
    for n in sorted(neighbours, key=lambda n: -n.score):
        own: list[str] = []
        for caption in n.captions:
            key = _norm(caption)
            if key and key not in seen:
                seen.add(key)
                own.append(caption)
        kept.append((n, own))
    vocab = [set().union(*(_words(c) for c in own)) if own else set() for _, own in kept]

    def consensus(at: int, caption: str) -> float:
        words = _words(caption)
        others = [v for j, v in enumerate(vocab) if j != at]
        if not words or not others:
            return 0.0
        return sum(sum(w in v for v in others) for w in words) / (len(words) * len(others))

    out: list[tuple[Neighbour, list[str]]] = []
    for at, (n, own) in enumerate(kept):
        score = {c: consensus(at, c) for c in own}
        out.append((n, sorted(own, key=score.__getitem__, reverse=True)))  # stable: ties keep order
    return out


def examples(
    neighbours: Sequence[Neighbour], budget: int = DEFAULT_PROMPT_CHARS
) -> list[PromptLine]:
    """The caption lines within ``budget`` characters (the rendered lines, newlines counted),
    chosen round-robin so that every neighbour is represented before any gives a second line;
    shown grouped by neighbour, most similar first. A caption longer than what is left of the
    budget is skipped (the neighbour's next one may fit)."""
    ranked = _ranked(neighbours)
    queues = [list(reversed(own)) for _, own in ranked]
    chosen: list[list[PromptLine]] = [[] for _ in ranked]
    used, count = 0, 0
    while any(queues):
        for at, (n, _) in enumerate(ranked):
            queue = queues[at]
            while queue:
                line = PromptLine(n.item_id, n.score, queue.pop())
                cost = len(line.render()) + (1 if count else 0)
                if used + cost <= budget:
                    chosen[at].append(line)
                    used, count = used + cost, count + 1
                    break
    return [line for lines in chosen for line in lines]


def compose_prompt(
    template: PromptTemplate,
    neighbours: Sequence[Neighbour],
    *,
    retrieval: bool = True,
    budget: int = DEFAULT_PROMPT_CHARS,
) -> Prompt:
    """The prompt and the lines it carries; without neighbours' captions (or with retrieval
    off) the plain prompt. (The caption's ``prompt_version`` is the run's,
    :meth:`PromptTemplate.version`, either way.)"""
    if budget < 1:
        raise ConfigError(f"prompt budget must be at least 1 character, got {budget}")
    lent = len({_norm(c) for n in neighbours for c in n.captions if _norm(c)})
    retrieved = tuple(n.item_id for n in sorted(neighbours, key=lambda n: -n.score))
    lines = examples(neighbours, budget) if retrieval else []
    if not lines:
        return Prompt(template.plain, (), budget, lent if retrieval else 0, retrieved)
    shown = "\n".join(line.render() for line in lines)
    k = len({line.item_id for line in lines})
    try:
        text = template.retrieval.format(examples=shown, k=k)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"prompt template: bad placeholder {exc}") from exc
    return Prompt(text, tuple(lines), budget, lent, retrieved)
