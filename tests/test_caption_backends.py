"""Caption backends: the OpenAI-compatible client against a local fake server that checks
what it receives, every failure mode as a per-request error, and a tiny local BLIP."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from clipatlas.captions.backends import CaptionRequest, create_caption_model
from clipatlas.captions.backends.openai_compat import OpenAICompatibleModel
from clipatlas.errors import CaptionBackendError, ConfigError, UnknownPluginError
from clipatlas.settings import Settings
from tests.caption_data import build_tiny_blip, picture
from tests.fake_openai import FakeOpenAI, colour_name


def _settings(base_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {"caption_retries": 2, "caption_timeout": 10, **extra}
    return Settings(caption_base_url=base_url, **values)  # type: ignore[arg-type]


def test_the_request_carries_model_prompt_and_the_picture_inline() -> None:
    red = picture("red_1.png")
    with FakeOpenAI("llava:7b") as server:
        model = create_caption_model("openai-compatible:llava:7b", _settings(server.base_url))
        [answer] = model.caption([CaptionRequest("item-1", red, "Describe it, please.")])
    assert answer == "a red picture"
    [got] = server.received
    assert got.model == "llava:7b" and got.prompt == "Describe it, please."
    assert got.data_url_type == "image/jpeg"
    assert got.picture.size == red.size
    sent = np.asarray(red, np.float32)
    assert np.abs(np.asarray(got.picture, np.float32) - sent).mean() < 4  # JPEG, same picture
    assert "authorization" not in got.headers


def test_the_api_key_is_sent_as_bearer_and_never_shown_in_errors() -> None:
    key = "sk-test-SECRET-123456"
    with FakeOpenAI("m", api_key=key) as server:
        good = create_caption_model(
            "openai-compatible:m", _settings(server.base_url, caption_api_key=SecretStr(key))
        )
        assert good.caption([CaptionRequest("a", picture("blue_1.png"), "p")]) == ["a blue picture"]
        assert server.received[0].headers["authorization"] == f"Bearer {key}"
        assert key not in repr(good.__dict__.get("url")) and key not in str(_settings("x"))
        server.fail_next("500", "500", "500")
        [error] = good.caption([CaptionRequest("b", picture("blue_1.png"), "p")])
    assert isinstance(error, CaptionBackendError) and error.reason == "http_error"
    assert key not in str(error)


def test_an_unknown_model_is_a_clear_http_error() -> None:
    with FakeOpenAI("served") as server:
        model = create_caption_model("openai-compatible:other", _settings(server.base_url))
        [error] = model.caption([CaptionRequest("x", picture("red_1.png"), "p")])
    assert isinstance(error, CaptionBackendError)
    assert error.reason == "http_error" and "404" in error.detail and "other" in error.detail


def test_overload_is_retried_then_answered() -> None:
    with FakeOpenAI("m") as server:
        server.fail_next("503", "503")
        model = create_caption_model("openai-compatible:m", _settings(server.base_url))
        [answer] = model.caption([CaptionRequest("x", picture("green_1.png"), "p")])
    assert answer == "a green picture"
    assert len(server.received) == 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("empty", "empty_output"),
        ("null", "non_text_output"),
        ("image_part", "non_text_output"),
        ("not_json", "bad_response"),
    ],
)
def test_a_bad_answer_fails_only_its_own_request(fault: str, reason: str) -> None:
    with FakeOpenAI("m") as server:
        # one request at a time, so the scripted fault hits the first one
        model = OpenAICompatibleModel("m", _settings(server.base_url), concurrency=1)
        server.fail_next(fault)
        first, second = model.caption(
            [
                CaptionRequest("bad", picture("red_1.png"), "p"),
                CaptionRequest("good", picture("yellow_1.png"), "p"),
            ]
        )
    assert isinstance(first, CaptionBackendError) and first.reason == reason
    assert first.item == "bad"
    assert second == "a yellow picture"


def test_an_unreachable_server_is_an_error_per_request() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = create_caption_model(
        "openai-compatible:m", _settings(f"http://127.0.0.1:{port}/v1", caption_retries=0)
    )
    results = model.caption([CaptionRequest(str(i), picture("red_1.png"), "p") for i in range(3)])
    assert [r.reason for r in results if isinstance(r, CaptionBackendError)] == ["unreachable"] * 3
    assert f"127.0.0.1:{port}" in str(results[0])


def test_backend_names_are_checked() -> None:
    with pytest.raises(UnknownPluginError, match="caption backend"):
        create_caption_model("nope:x", Settings())
    with pytest.raises(ConfigError):
        create_caption_model("openai-compatible:", Settings())
    with pytest.raises(ConfigError, match="http"):
        create_caption_model("openai-compatible:m", Settings(caption_base_url="file:///etc"))


@pytest.mark.slow
def test_a_tiny_local_blip_captions_a_batch(tmp_path: Path) -> None:
    directory = build_tiny_blip(tmp_path / "blip")
    model = create_caption_model(f"hf:{directory}", Settings(device="cpu", caption_max_tokens=8))
    names = ["red_1.png", "blue_1.png", "green_1.png"]
    answers = model.caption([CaptionRequest(n, picture(n), "ignored by BLIP") for n in names])
    assert model.id == f"hf:{directory.resolve()}"
    assert all(isinstance(a, str) and a.split() for a in answers)
    vocabulary = set((directory / "tokenizer.json").read_text().split('"'))
    assert all(w in vocabulary for a in answers if isinstance(a, str) for w in a.split())
    assert model.prompt_used is False  # no chat template: captions unconditionally


def test_colour_names_of_the_fake_are_right() -> None:
    assert colour_name(picture("red_2.png")) == "red"
    assert colour_name(picture("yellow_2.png")) == "yellow"


@pytest.mark.slow
def test_a_collection_is_captioned_by_the_tiny_local_model_and_searchable(
    tmp_path: Path, settings: Settings
) -> None:
    from clipatlas import Atlas
    from tests.caption_data import CAPTIONS, write_dataset

    directory = build_tiny_blip(tmp_path / "blip")
    local = settings.model_copy(
        update={"text_model": "fake:32", "device": "cpu", "caption_max_tokens": 6}
    )
    with Atlas.open("c", settings=local) as atlas:
        atlas.import_captions(write_dataset(tmp_path / "data", "csv"))
        run = atlas.caption(model=f"hf:{directory}")
        assert run.captioned == len(CAPTIONS) and run.failed == 0
        item_id, text = next(iter(run.captions.items()))
        [stored] = [c for c in atlas.captions().of_item(item_id) if c.kind == "generated"]
        assert stored.text == text and stored.provenance["prompt_used"] is False
        assert stored.provenance["neighbours"]  # the prompt was still built and kept
        word = max(text.split(), key=len)
        hits = atlas.search_captions(word, k=len(CAPTIONS), weights={"clip": 0})
        assert item_id in {h.hit.id for h in hits}
        assert all(word in (h.caption or "").split() for h in hits[:1])
