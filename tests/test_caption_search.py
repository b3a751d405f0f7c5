"""Fused text search over captions: reciprocal-rank fusion, weighted fusion, keyword scores,
and each ranking pulling its weight on a real collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.captions.search import fuse, keyword_scores, query_words
from clipatlas.errors import ConfigError
from clipatlas.settings import Settings
from tests.caption_data import write_dataset
from tests.corpus import coloured_picture


def test_reciprocal_rank_fusion_adds_weighted_inverse_ranks() -> None:
    rankings = {"clip": {1: 0.9, 2: 0.5, 3: 0.1}, "caption": {3: 0.8, 1: 0.7}}
    fused = fuse(rankings, {"clip": 1.0, "caption": 2.0}, "rrf", rrf_k=60)
    assert fused[1] == pytest.approx(1 / 61 + 2 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 2 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert fuse(rankings, {"clip": 1.0, "caption": 0.0}, "rrf")[3] == pytest.approx(1 / 63)


def test_weighted_fusion_uses_normalised_scores() -> None:
    fused = fuse({"a": {1: 10.0, 2: 0.0}, "b": {2: 0.3, 1: 0.1}}, {"a": 1, "b": 1}, "weighted")
    assert fused == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}
    with pytest.raises(ConfigError, match="fusion"):
        fuse({}, {}, "max")


def test_keywords_match_whole_words_and_score_the_best_caption() -> None:
    words = query_words("The red fire-truck!")
    assert words == ["red", "fire", "truck"]
    rows = [(1, 10, "a red truck"), (2, 10, "a red fire truck"), (3, 11, "bored firemen")]
    scores, texts = keyword_scores(words, rows)
    assert scores == {10: pytest.approx(1.0)} and texts[10] == "a red fire truck"
    assert query_words("고양이 사진") == ["고양이", "사진"]


def test_caption_search_ranks_items_by_their_captions(tmp_path: Path, settings: Settings) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    with Atlas.open("c", settings=settings) as atlas:
        atlas.import_captions(root)
        by_image = {it.id: it.meta["image"] for page in atlas.store.iter_items(atlas.collection)
                    for it in page}  # fmt: skip
        taxi = atlas.search_captions("a taxi cab", k=3, weights={"clip": 0})
        assert {by_image[h.hit.id] for h in taxi[:2]} == {"yellow_1.png", "yellow_2.png"}
        assert taxi[0].ranks["keyword"] is not None and "clip" not in taxi[0].ranks
        # meaning, not words: no caption says "automobile", the caption model still knows
        vehicle = atlas.search_captions("an automobile", k=2, weights={"clip": 0, "keyword": 0})
        assert {by_image[h.hit.id] for h in vehicle} <= {
            "yellow_1.png",
            "yellow_2.png",
            "red_1.png",
            "red_2.png",
            "red_3.png",
        }
        # CLIP alone (the fake embedder knows colours) finds the blue pictures
        blue = atlas.search_captions("blue", k=2, weights={"caption": 0, "keyword": 0})
        assert {by_image[h.hit.id] for h in blue} == {"blue_1.png", "blue_2.png"}
        fused = atlas.search_captions("boat on the sea", k=2)
        assert {by_image[h.hit.id] for h in fused} == {"blue_1.png", "blue_2.png"}
        assert set(fused[0].ranks) == {"clip", "caption", "keyword"}
        with pytest.raises(ConfigError, match="weights"):
            atlas.search_captions("x", weights={"colour": 1})


def _planted(root: Path, n_red: int = 110) -> Path:
    """Many red pictures of fire trucks and one blue picture whose caption is the only one
    naming a zeppelin: CLIP (the colour-aware fake) ranks it near the bottom for "red
    zeppelin", keyword and caption similarity rank it first."""
    rng = np.random.default_rng(3)
    (root / "Images").mkdir(parents=True)
    rows = ["image,caption"]
    for i in range(n_red):
        name = f"red_{i:03d}.png"
        rgb = (int(rng.integers(200, 240)), int(rng.integers(15, 45)), int(rng.integers(15, 45)))
        coloured_picture(rgb, (24 + i % 7, 24)).save(root / "Images" / name)
        rows.append(f'{name},"A red fire truck number {i} parked on the street ."')
    coloured_picture((30, 40, 220), (26, 26)).save(root / "Images" / "target.png")
    rows.append('target.png,"A red zeppelin drifting over the harbour ."')
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    return root


def test_an_exact_caption_hit_ranks_first_whatever_its_clip_rank(
    tmp_path: Path, settings: Settings
) -> None:
    root = _planted(tmp_path / "data")
    with Atlas.open("c", settings=settings) as atlas:
        atlas.import_captions(root)
        [target] = [it.id for page in atlas.store.iter_items(atlas.collection) for it in page
                    if it.meta.get("image") == "target.png"]  # fmt: skip
        # plain reciprocal-rank fusion buries it: its weak CLIP rank drags it down
        rrf = atlas.search_captions("red zeppelin", k=10, fusion="rrf", exact_first=False)
        assert target not in [h.hit.id for h in rrf[:5]]
        for fusion in ("weighted", "rrf"):
            hits = atlas.search_captions("red zeppelin", k=10, fusion=fusion)
            top = hits[0]
            assert top.hit.id == target and top.exact, fusion
            assert top.ranks["keyword"] == 1 and top.ranks["caption"] == 1
            assert top.ranks["clip"] is None or top.ranks["clip"] > 50  # CLIP alone: weak
            assert not any(h.exact for h in hits[1:])
        # score-normalised fusion alone (no exact tier) already keeps it near the top
        weighted = atlas.search_captions("red zeppelin", k=10, exact_first=False)
        assert target in [h.hit.id for h in weighted[:3]]
        shown = top.as_dict()  # what ``search --captions --json`` prints per hit
        assert shown["id"] == target and shown["exact"] is True
        assert set(shown["ranks"]) == {"clip", "caption", "keyword"}
        assert shown["ranks"]["keyword"] == 1 and shown["scores"]["keyword"] == 1.0
