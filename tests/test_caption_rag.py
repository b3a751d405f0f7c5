"""The whole loop, offline: import a captioned dataset, caption new and stored pictures
through the fake OpenAI-compatible server with the neighbours' captions in the prompt, store
the caption with its provenance, find it by text search; bad items fail alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from clipatlas import Atlas
from clipatlas.captions.prompt import Neighbour, PromptTemplate, compose_prompt
from clipatlas.settings import Settings
from tests.caption_data import CAPTIONS, solid, write_dataset
from tests.fake_openai import FakeOpenAI, follow_examples


def _with_zeppelin(prompt: str, picture: Image.Image) -> str:
    """The example-following fake, plus a word no reference caption has."""
    return follow_examples(prompt, picture).rstrip(" .") + " beside a zeppelin"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("tiny-vlm", answer=_with_zeppelin) as fake:
        yield fake


@pytest.fixture
def cap_settings(settings: Settings, server: FakeOpenAI) -> Settings:
    return settings.model_copy(
        update={
            "caption_model": "openai-compatible:tiny-vlm",
            "caption_base_url": server.base_url,
            "caption_retries": 0,
            "caption_neighbours": 3,
        }
    )


def test_a_new_picture_is_captioned_from_its_neighbours_and_found_by_text(
    tmp_path: Path, cap_settings: Settings, server: FakeOpenAI
) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    new = tmp_path / "new" / "reddish.png"
    new.parent.mkdir()
    solid((225, 35, 40)).save(new)
    with Atlas.open("c", settings=cap_settings) as atlas:
        atlas.import_captions(root)
        run, problems = atlas.captions().caption_files([new, tmp_path / "gone.png"])
        assert [(p["file"], p["reason"]) for p in problems] == [
            (str(tmp_path / "gone.png"), "missing")
        ]
        assert run.captioned == 1 and run.failed == 0
        [item_id] = run.captions
        assert atlas.stats().stored == len(CAPTIONS) + 1  # the new picture was added
        [got] = server.received
        # the prompt holds the red neighbours' captions, deduplicated, best first
        red = [c for n, (_, caps) in CAPTIONS.items() if n.startswith("red") for c in caps]
        shown = [c for c in dict.fromkeys(red) if c in got.prompt]
        assert len(shown) >= 3
        assert got.prompt.count("A red fire truck parked on the street .") == 1
        assert "blue" not in got.prompt and "yellow" not in got.prompt
        assert abs(got.picture.getpixel((5, 5))[0] - 225) < 12  # our picture arrived
        [stored] = [c for c in atlas.captions().of_item(item_id) if c.kind == "generated"]
        assert stored.text == run.captions[item_id] and "zeppelin" in stored.text
        assert stored.model == "openai-compatible:tiny-vlm"
        assert stored.prompt_version.startswith("rag-en-")
        prov = stored.provenance
        assert prov["prompt"] == got.prompt and len(prov["neighbours"]) == 3
        scores = [n["score"] for n in prov["neighbours"]]
        assert scores == sorted(scores, reverse=True)
        assert all(n["captions"] for n in prov["neighbours"])
        # the generated caption is findable by text: "zeppelin" is in no reference
        hits = atlas.search_captions("zeppelin", k=3)
        assert hits[0].hit.id == item_id
        assert hits[0].ranks["keyword"] == 1 and hits[0].ranks["caption"] == 1
        assert "zeppelin" in (hits[0].caption or "")


def test_batch_captioning_resumes_and_records_each_failure(
    tmp_path: Path, cap_settings: Settings, server: FakeOpenAI
) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    events = []
    with Atlas.open("c", settings=cap_settings) as atlas:
        atlas.import_captions(root)
        items = {
            it.meta["image"]: it for page in atlas.store.iter_items(atlas.collection) for it in page
        }
        broken = items["blue_2.png"]
        (atlas.media_root / str(broken.media_path)).write_bytes(b"\xff\xd8\xff\xe0 truncated")
        server.fail_next("empty")
        model = atlas.captions().backend()
        model.batch_size = 1  # type: ignore[misc]
        first = atlas.caption(model=model, progress=events.append)
        assert first.total == len(CAPTIONS)
        assert first.captioned == len(CAPTIONS) - 2 and first.failed == 2
        assert first.reasons == {"decode_error": 1, "empty_output": 1}
        errors = {e["item_id"]: e for e in first.errors}
        assert errors[broken.id]["reason"] == "decode_error"
        stored_errors = atlas.captions().store.generated(status="error")
        assert {c.reason for c in stored_errors} == {"decode_error", "empty_output"}
        assert all(c.detail for c in stored_errors)
        assert events[-1].stage == "embed captions" or events[-1].stage == "caption"
        assert any(e.stage == "caption" and e.done == e.total for e in events)
        # rerun: only the failed ones are tried again; the broken picture fails again
        sent = len(server.received)
        second = atlas.caption(model=model)
        assert second.skipped == len(CAPTIONS) - 2
        assert second.captioned == 1 and second.failed == 1
        assert len(server.received) == sent + 1
        # a new prompt version (no retrieval) is a different run: everything is redone
        third = atlas.caption(model=model, retrieval=False)
        assert third.skipped == 0 and third.prompt_version.startswith("plain-en-")


def test_an_unreachable_backend_fails_every_item_but_the_batch_finishes(
    tmp_path: Path, settings: Settings
) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    down = settings.model_copy(
        update={
            "caption_base_url": "http://127.0.0.1:9/v1",
            "caption_retries": 0,
            "caption_model": "openai-compatible:m",
            "text_model": "fake:32",
        }
    )
    with Atlas.open("c", settings=down) as atlas:
        atlas.import_captions(root)
        report = atlas.caption()
    assert report.captioned == 0 and report.failed == len(CAPTIONS)
    assert report.reasons == {"unreachable": len(CAPTIONS)}


def test_the_prompt_orders_deduplicates_and_speaks_korean() -> None:
    near = [
        Neighbour(2, 0.71, ("a dog on grass", "A dog on grass.")),
        Neighbour(1, 0.93, ("a dog running", "a dog on grass")),
    ]
    text = compose_prompt(PromptTemplate.load("en"), near).text
    lines = [ln for ln in text.splitlines() if ln.startswith("- (")]
    assert lines == ["- (0.93) a dog running", "- (0.93) a dog on grass"]
    ko = PromptTemplate.load("ko")
    assert "한국어" in compose_prompt(ko, near).text
    assert "a dog running" in compose_prompt(ko, near).text
    assert compose_prompt(ko, []).text == ko.plain
    assert ko.version(True) != PromptTemplate.load("en").version(True)


def test_a_custom_template_is_versioned_by_its_text(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Neighbours:\n{examples}\nCaption it.")
    custom = PromptTemplate.load("en", path)
    assert custom.version(True) != PromptTemplate.load("en").version(True)
    shown = compose_prompt(custom, [Neighbour(1, 0.5, ("x y",))]).text
    assert shown.startswith("Neighbours:\n- (0.50)")


@pytest.mark.postgres
def test_the_loop_runs_on_postgresql(
    tmp_path: Path, cap_settings: Settings, server: FakeOpenAI, postgres_url: str
) -> None:
    pg = cap_settings.model_copy(update={"database_url": postgres_url, "text_model": "fake:32"})
    root = write_dataset(tmp_path / "data", "jsonl")
    with Atlas.open("pg", settings=pg) as atlas:
        imported = atlas.import_captions(root)
        again = atlas.import_captions(root)
        run = atlas.caption()
        hits = atlas.search_captions("zeppelin", k=len(CAPTIONS))
        assert atlas.store.dialect == "postgresql"
    assert imported.items == len(CAPTIONS) and again.ingest["stored"] == 0
    assert run.captioned == len(CAPTIONS) and run.failed == 0
    assert {h.hit.id for h in hits} == set(run.captions)
    assert all(h.ranks["keyword"] is not None for h in hits)
