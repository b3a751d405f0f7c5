"""The prompt budget: every neighbour is represented within it (round-robin, best caption
first, deduplicated), and the stored provenance is exactly the lines the prompt carried."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.captions.prompt import (
    Neighbour,
    PromptTemplate,
    compose_prompt,
    examples,
)
from clipatlas.errors import ConfigError
from clipatlas.settings import Settings
from tests.corpus import coloured_picture
from tests.fake_openai import FakeOpenAI

_LINE = re.compile(r"^- \((?P<score>-?[0-9.]+)\) (?P<caption>.+)$", re.MULTILINE)
NOUNS = ("dog", "child", "cyclist", "boat", "horse", "kite", "truck", "surfer")
PLACES = ("on a sandy beach", "across a snowy field", "down a busy city street", "by a lake")


def _captions(rng: np.random.Generator, n: int, tag: str) -> tuple[str, ...]:
    """Flickr8k-length captions (50-110 characters), distinct per neighbour."""
    out = []
    for j in range(n):
        noun, place = rng.choice(NOUNS), rng.choice(PLACES)
        tail = " while people watch from far away" * int(rng.integers(0, 2))
        out.append(f"A {noun} ({tag}{j}) moving {place} in the afternoon light{tail} .")
    return tuple(out)


def _prompt_lines(text: str) -> list[tuple[float, str]]:
    return [(float(m["score"]), m["caption"]) for m in _LINE.finditer(text)]


def test_with_k5_and_5_captions_each_every_prompt_shows_all_neighbours_within_the_budget() -> None:
    rng = np.random.default_rng(0)
    template = PromptTemplate.load("en")
    for trial in range(120):
        near = [
            Neighbour(i, float(0.9 - 0.05 * i), _captions(rng, 5, f"n{trial}.{i}."))
            for i in range(5)
        ]
        prompt = compose_prompt(template, near, budget=1500)
        lines = _prompt_lines(prompt.text)
        assert {line.item_id for line in prompt.lines} == {0, 1, 2, 3, 4}
        assert len("\n".join(f"- ({s:.2f}) {c}" for s, c in lines)) <= 1500
        assert prompt.used <= 1500 and prompt.lent == 25
        # the provenance is the prompt's lines, no more
        shown = [(n["item_id"], c) for n in prompt.neighbours() for c in n["captions"]]  # type: ignore[attr-defined]
        assert [c for _, c in shown] == [c for _, c in lines]
        assert [i for i, _ in shown] == [line.item_id for line in prompt.lines]
        assert "5 most similar" in prompt.text


def test_round_robin_gives_every_neighbour_a_line_before_a_second_and_skips_what_cannot_fit() -> (
    None
):
    near = [
        Neighbour(1, 0.9, ("a dog on the grass", "a brown dog", "x" * 200)),
        Neighbour(2, 0.8, ("a dog running on grass",)),
        Neighbour(3, 0.7, ("a dog on grass in the sun", "A dog on the grass.")),
    ]
    lines = examples(near, budget=100)
    assert [line.item_id for line in lines] == [1, 2, 3]  # one each: the budget holds three
    # a neighbour whose line does not fit leaves room for the others' second lines
    assert [line.item_id for line in examples(near, budget=80)] == [1, 1, 2]
    wide = examples(near, budget=10_000)
    # grouped by neighbour, most similar first; the duplicate stays with neighbour 1 only
    assert [(x.item_id, x.caption) for x in wide][:3] == [
        (1, "a dog on the grass"),
        (1, "a brown dog"),
        (1, "x" * 200),
    ]
    assert [x.caption for x in wide if x.item_id == 3] == ["a dog on grass in the sun"]
    tight = examples(near, budget=len("- (0.90) a brown dog"))
    assert [x.caption for x in tight] == ["a brown dog"]  # the only line that fits
    with pytest.raises(ConfigError, match="budget"):
        compose_prompt(PromptTemplate.load("en"), near, budget=0)


def test_best_captions_first_means_the_one_the_neighbourhood_agrees_with() -> None:
    near = [
        Neighbour(1, 0.9, ("an unusual photograph", "a dog catching a frisbee in a park")),
        Neighbour(2, 0.8, ("a dog jumps for a frisbee",)),
        Neighbour(3, 0.7, ("frisbee dog park",)),
    ]
    lines = examples(near, budget=70)
    assert [x.caption for x in lines if x.item_id == 1] == ["a dog catching a frisbee in a park"]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("tiny-vlm") as fake:
        yield fake


def test_a_captioning_run_stores_exactly_the_lines_each_prompt_carried(
    tmp_path: Path, settings: Settings, server: FakeOpenAI
) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    (root / "Images").mkdir(parents=True)
    rows = ["image,caption"]
    for i in range(12):
        name = f"p{i:02d}.png"
        coloured_picture((200 - 6 * i, 30 + 4 * i, 40), (40, 40)).save(root / "Images" / name)
        rows += [f'{name},"{c}"' for c in _captions(rng, 5, f"p{i}.")]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    cap = settings.model_copy(
        update={
            "caption_model": "openai-compatible:tiny-vlm",
            "caption_base_url": server.base_url,
            "caption_retries": 0,
        }
    )
    with Atlas.open("c", settings=cap) as atlas:
        atlas.import_captions(root)
        run = atlas.caption(k=5, prompt_chars=1200)
        assert run.captioned == 12 and run.failed == 0
        prompts = {r.prompt for r in server.received}
        for item_id in run.captions:
            [stored] = [c for c in atlas.captions().of_item(item_id) if c.kind == "generated"]
            prov = stored.provenance
            assert prov["prompt"] in prompts
            lines = [c for _, c in _prompt_lines(prov["prompt"])]
            assert [c for n in prov["neighbours"] for c in n["captions"]] == lines
            assert len(prov["neighbours"]) == 5  # every neighbour reached the prompt
            assert prov["budget"]["chars"] == 1200 and prov["budget"]["used"] <= 1200
            assert prov["budget"]["lent"] == 25 and prov["budget"]["shown"] == len(lines) < 25
            assert prov["budget"]["left_out"] == []
