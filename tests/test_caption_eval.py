"""caption-eval: held-out pictures captioned with and without retrieval, scored against
their references, written as JSON and HTML; and the metrics themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.captions.metrics import score_captions
from clipatlas.captions.split import side_of
from clipatlas.errors import CaptionError
from clipatlas.settings import Settings
from tests.caption_data import CAPTIONS, write_dataset
from tests.fake_openai import FakeOpenAI


def _seed_leaving_neighbours(root: Path) -> int:
    """A split seed whose test side has at least two pictures, each with a picture of its
    colour on the train side (as in a real dataset, where similar pictures abound)."""
    for seed in range(200):
        test = [n for n in CAPTIONS if side_of(n, seed, 0.35) == "test"]
        colours = {n.split("_")[0] for n in CAPTIONS if n not in test}
        if len(test) >= 2 and all(n.split("_")[0] in colours for n in test):
            return seed
    raise AssertionError("no such seed")


def test_caption_eval_compares_plain_and_retrieval_captions(
    tmp_path: Path, settings: Settings
) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    with FakeOpenAI("tiny-vlm") as server:
        s = settings.model_copy(
            update={
                "caption_model": "openai-compatible:tiny-vlm",
                "caption_base_url": server.base_url,
            }
        )
        with Atlas.open("c", settings=s) as atlas:
            atlas.import_captions(root, test_fraction=0.35, seed=_seed_leaving_neighbours(root))
            splits = atlas.captions().store.splits()
            test_ids = {i for i, side in splits.items() if side == "test"}
            server.fail_next("empty")  # one caption fails: recorded, the rest goes on
            report = atlas.caption_eval(n=10, k=2, out_dir=tmp_path / "eval")
            counts = atlas.captions().store.counts()
    assert counts == {"reference_ok": sum(len(set(c)) for _, c in CAPTIONS.values())}  # no writes
    assert report["n"] == len(test_ids) >= 2
    assert {it["item_id"] for it in report["items"]} == test_ids
    for it in report["items"]:
        # neighbours come from the train split only, never the picture itself
        assert it["neighbours"] and all(n["item_id"] not in test_ids for n in it["neighbours"])
        assert "- (" in it["rag"]["prompt"] and "- (" not in it["plain"]["prompt"]
    plain, rag = report["summary"]["plain"], report["summary"]["rag"]
    assert plain["failed"] + rag["failed"] == 1
    # the fake follows its examples: same-colour neighbours' captions beat a colour word
    assert rag["bleu4"] > plain["bleu4"] and rag["rougeL"] > plain["rougeL"]
    assert rag["embedding_similarity"] > plain["embedding_similarity"]
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["summary"] == report["summary"]
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "retrieval-augmented caption" in page and "data:image/jpeg;base64," in page
    assert page.count("<tr>") >= report["n"] + 3
    assert "empty_output" in page


def test_caption_eval_needs_a_split(tmp_path: Path, settings: Settings) -> None:
    with Atlas.open("c", settings=settings) as atlas, pytest.raises(CaptionError, match="split"):
        atlas.caption_eval(model="openai-compatible:m", out_dir=tmp_path)


def test_metrics_reward_the_closer_caption() -> None:
    refs = [
        ["a dog runs on the beach", "a brown dog running by the sea"],
        ["two children play football", "kids playing soccer on grass"],
    ]
    good = score_captions(["a dog running on the beach", "two children play soccer"], refs)
    bad = score_captions(["a red car in the city", "a bowl of soup"], refs)
    assert good["bleu4"] > bad["bleu4"] and good["rougeL"] > bad["rougeL"]
    assert score_captions(["a dog runs on the beach"], refs[:1])["rougeL"] == pytest.approx(1.0)
    assert good["embedding_similarity"] is None  # no text model given
    korean = score_captions(["해변에서 달리는 개"], [["해변에서 달리는 개 한 마리"]])
    assert korean["rougeL"] > 0.5  # unicode words are kept
