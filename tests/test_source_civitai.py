"""The ``civitai`` source against a local fake of the CivitAI API (tests/fake_civitai.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from clipatlas.errors import CivitaiError, SourceError
from clipatlas.fetch import Fetcher
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from clipatlas.sources.base import Candidate, Source, SourceContext
from clipatlas.sources.civitai import CivitaiSource
from clipatlas.sources.civitai_api import nsfw_level, with_width
from tests.fake_civitai import FakeCivitai, FakeImage

API_KEY = "sk-civitai-TOPSECRET-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCivitai]:
    with FakeCivitai() as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: FakeCivitai) -> None:
    fake.reset()


def make_settings(tmp_path: Path, fake: FakeCivitai, key: str | None = None) -> Settings:
    return Settings(
        home=tmp_path / "home",
        allow_hosts=["127.0.0.1"],
        civitai_base_url=fake.base_url,
        civitai_api_key=key,
        fetch_retries=3,
    )


@pytest.fixture
def settings(tmp_path: Path, fake: FakeCivitai) -> Settings:
    return make_settings(tmp_path, fake)


def make_fetcher(settings: Settings) -> Fetcher:
    policy = dataclasses.replace(settings.fetch_policy(), backoff_base=0.001, backoff_cap=0.01)
    return Fetcher(policy, secrets=settings.secrets())


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with make_fetcher(settings) as client:
        yield client


def keys(candidates: list[Candidate]) -> list[str]:
    return [c.key for c in candidates]


def expected_key(fake: FakeCivitai, image: FakeImage, *, gallery: bool = False) -> str:
    if gallery and image.no_id:
        url = fake.image_url(image, gallery=True)
        return "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]
    return f"image:{image.id}"


def test_walking_models_to_the_end_offers_every_preview_once_with_full_provenance(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    source = CivitaiSource(settings, fetcher, page_limit=5, images_per_version=None)
    found = list(source.iter_candidates())
    expected = {f"image:{i.id}": i for i in fake.listed(("LORA",))}
    assert sorted(keys(found)) == sorted(expected)
    assert len(found) == len(set(keys(found)))
    assert source.pages_fetched > 8  # short pages, one empty page, number cursors walked through
    models = {m.id: m for m in fake.models}
    for candidate in found:
        image = expected[candidate.key]
        model = models[image.model_id]
        version = next(v for v in model.versions if v.id == image.version_id)
        meta = candidate.meta
        assert candidate.source == "civitai" and candidate.path is None
        assert candidate.uri == fake.image_url(image) == meta["source_url"]
        assert meta["model_id"] == model.id and meta["model_name"] == model.name
        assert meta["model_type"] == "LORA" and meta["tags"] == model.tags
        assert meta["creator"] == model.creator
        assert meta["version_id"] == version.id and meta["version_name"] == version.name
        assert meta["base_model"] == version.base_model
        assert meta["image_id"] == image.id and meta["nsfw_level"] == 1
        assert meta["api"] == "models"
        assert datetime.fromisoformat(meta["retrieved_at"]).tzinfo is not None
        json.dumps(meta)  # JSON-safe


def test_the_models_request_repeats_types_and_sends_the_page_limit(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    source = CivitaiSource(
        settings, fetcher, types=("LORA", "Checkpoint"), sort="Most Downloaded", nsfw=True,
        base_models=("SDXL 1.0", "Pony"), page_limit=50, images_per_version=None,
    )  # fmt: skip
    found = list(source.iter_candidates())
    assert sorted(keys(found)) == sorted(
        f"image:{i.id}" for i in fake.listed(("LORA", "Checkpoint"), nsfw=True)
    )
    first = fake.api_requests("/models")[0].query
    assert first["types"] == ["LORA", "Checkpoint"]
    assert first["baseModels"] == ["SDXL 1.0", "Pony"]
    assert first["limit"] == ["50"] and first["nsfw"] == ["true"]
    assert first["sort"] == ["Most Downloaded"]
    assert all("cursor" in r.query for r in fake.api_requests("/models")[1:])


def test_int_and_string_nsfw_levels_normalise_to_bits_and_keep_the_original(
    settings: Settings, fetcher: Fetcher
) -> None:
    found = list(
        CivitaiSource(settings, fetcher, nsfw=True, images_per_version=None).iter_candidates()
    )
    raws = {type(c.meta["nsfw_level_raw"]) for c in found}
    assert raws == {int, str}
    for candidate in found:
        raw = candidate.meta["nsfw_level_raw"]
        assert candidate.meta["nsfw_level"] == nsfw_level(raw)
        assert candidate.meta["nsfw_level"] in (1, 2, 4, 8, 16)
    assert nsfw_level("Mature") == 4 and nsfw_level("3") == 3 and nsfw_level(True) is None


def test_limit_caps_the_images_offered_and_stops_paging_early(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    source = CivitaiSource(settings, fetcher, limit=7, page_limit=3)
    assert len(list(source.iter_candidates())) == 7
    assert len(fake.api_requests("/models")) < 6


def test_images_per_version_caps_the_previews_of_each_version(
    settings: Settings, fetcher: Fetcher
) -> None:
    found = list(CivitaiSource(settings, fetcher, images_per_version=1).iter_candidates())
    versions = [c.meta["version_id"] for c in found]
    assert len(versions) == len(set(versions)) > 5


def test_model_mode_reads_one_model_and_ids_from_image_urls(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    model = max((m for m in fake.models if not m.hidden and m.index != 9), key=lambda m: sum(
        len(v.images) for v in m.versions
    ))  # fmt: skip
    source = CivitaiSource(
        settings, fetcher, mode="model", model_id=model.id, images_per_version=None
    )
    found = list(source.iter_candidates())
    expected = [i for v in model.versions for i in v.images if not i.no_url]
    assert sorted(keys(found)) == sorted(f"image:{i.id}" for i in expected)
    assert {c.meta["model_name"] for c in found} == {model.name}
    assert [r.path for r in fake.api_requests()] == [f"/api/v1/models/{model.id}"]


def test_version_mode_carries_prompt_metadata(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    version, model = next(
        (v, m) for m in fake.models if not m.hidden for v in m.versions
        if any(i.meta and not i.no_url for i in v.images[:4])
    )  # fmt: skip
    source = CivitaiSource(settings, fetcher, mode="version", version_id=version.id)
    found = list(source.iter_candidates())
    assert found and all(c.meta["api"] == "model-versions" for c in found)
    assert {c.meta["model_id"] for c in found} == {model.id}
    with_prompt = [c for c in found if "prompt" in c.meta]
    assert with_prompt
    image = next(i for i in version.images if f"image:{i.id}" == with_prompt[0].key)
    assert with_prompt[0].meta["generation"]["seed"] == image.meta["seed"]  # type: ignore[index]
    assert with_prompt[0].meta["steps"] in (20, "28")


def test_images_mode_walks_the_gallery_despite_a_null_cursor_and_wrapped_meta(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    model = next(m for m in fake.models if len(fake.gallery(nsfw="X", model_id=m.id)) > 4)
    source = CivitaiSource(
        settings, fetcher, mode="images", model_id=model.id, nsfw=True, page_limit=2
    )
    found = list(source.iter_candidates())
    expected = fake.gallery(nsfw="X", model_id=model.id)
    assert sorted(keys(found)) == sorted(expected_key(fake, i, gallery=True) for i in expected)
    assert all(c.meta["api"] == "images" and c.meta["model_id"] == model.id for c in found)
    assert {c.meta["nsfw_level"] for c in found} <= {1, 2, 4, 8}
    assert any("prompt" in c.meta for c in found)  # unwrapped from {"id", "meta"}
    queries = [r.query for r in fake.api_requests("/images")]
    assert queries[0]["modelId"] == [str(model.id)] and queries[0]["nsfw"] == ["X"]
    assert queries[0]["withMeta"] == ["true"] and len(queries) > 2


def test_images_mode_pages_the_whole_public_gallery_newest_first(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    source = CivitaiSource(settings, fetcher, mode="images", sort="Newest", page_limit=10)
    found = list(source.iter_candidates())
    assert sorted(keys(found)) == sorted(
        expected_key(fake, i, gallery=True) for i in fake.gallery()
    )


def test_rate_limits_and_outages_are_retried_and_the_result_is_complete(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    fake.inject("models", "429", "429-retry-after", "503")
    found = list(
        CivitaiSource(settings, fetcher, page_limit=10, images_per_version=None).iter_candidates()
    )
    assert sorted(keys(found)) == sorted(f"image:{i.id}" for i in fake.listed())
    assert len(fake.api_requests("/models")) >= 3 + 5


def test_an_html_challenge_page_raises_a_civitai_error(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    fake.inject("models", "html-200")
    with pytest.raises(CivitaiError, match="HTML") as caught:
        list(CivitaiSource(settings, fetcher).iter_candidates())
    assert isinstance(caught.value, SourceError) and caught.value.status == 200
    fake.inject("models", "html-403")
    with pytest.raises(CivitaiError, match="Cloudflare") as caught:
        list(CivitaiSource(settings, fetcher).iter_candidates())
    assert caught.value.status == 403


@pytest.mark.parametrize(("fault", "status"), [("json-error", None), ("404", 404), ("500", 500)])
def test_api_errors_become_civitai_errors(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai, fault: str, status: int | None
) -> None:
    fake.inject("models", *([fault] * 4))
    with pytest.raises(CivitaiError) as caught:
        list(CivitaiSource(settings, fetcher).iter_candidates())
    assert caught.value.status == status


def test_unknown_model_and_version_ids_raise_not_found(
    settings: Settings, fetcher: Fetcher
) -> None:
    for options in ({"mode": "model", "model_id": 5}, {"mode": "version", "version_id": 5}):
        with pytest.raises(CivitaiError, match="not found") as caught:
            list(CivitaiSource(settings, fetcher, **options).iter_candidates())  # type: ignore[arg-type]
        assert caught.value.status == 404


def test_the_api_key_travels_as_a_bearer_header_and_nowhere_else(
    tmp_path: Path, fake: FakeCivitai
) -> None:
    settings = make_settings(tmp_path, fake, API_KEY)
    with make_fetcher(settings) as fetcher:
        found = list(CivitaiSource(settings, fetcher, page_limit=20).iter_candidates())
        fake.inject("models", "html-403")
        with pytest.raises(CivitaiError) as caught:
            list(CivitaiSource(settings, fetcher).iter_candidates())
    requests = fake.api_requests()
    assert requests and all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in requests)
    assert all("token" not in r.query and API_KEY not in r.path for r in requests)
    assert found and all(API_KEY not in c.uri and API_KEY not in json.dumps(c.meta) for c in found)
    assert API_KEY not in str(caught.value) and API_KEY not in caught.value.detail


def test_without_a_key_no_authorization_header_is_sent(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    list(CivitaiSource(settings, fetcher, limit=3).iter_candidates())
    assert all("authorization" not in r.headers for r in fake.api_requests())


def test_image_width_rewrites_the_options_segment_of_image_urls(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    found = list(CivitaiSource(settings, fetcher, image_width=320, limit=20).iter_candidates())
    assert all("/width=320/" in c.uri for c in found)
    assert all("/width=320/" not in c.meta["source_url"] for c in found)
    assert with_width("https://x/a/u/original=true/1.jpeg", 450) == "https://x/a/u/width=450/1.jpeg"
    assert with_width("https://x/a/u/width=96,anim=false/1.jpeg", 800) == (
        "https://x/a/u/width=800/1.jpeg"
    )
    assert with_width("https://x/plain/picture.jpeg", 450) == "https://x/plain/picture.jpeg"


def test_candidate_urls_download_as_pictures_even_when_png_hides_under_jpeg(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    found = list(CivitaiSource(settings, fetcher, images_per_version=None).iter_candidates())
    by_key = {f"image:{i.id}": i for i in fake.listed()}
    png = next(c for c in found if by_key[c.key].png_original and not by_key[c.key].legacy_url)
    assert fetcher.get(png.uri, expect="image").data.startswith(b"\x89PNG")
    fake.inject("cdn", "corrupt")
    corrupt = fetcher.get(found[0].uri, expect="image").data  # JPEG magic, garbage after it
    with pytest.raises(OSError):
        Image.open(io.BytesIO(corrupt)).load()


def test_incremental_sync_stops_at_the_first_page_of_known_images(
    settings: Settings, fetcher: Fetcher, fake: FakeCivitai
) -> None:
    def run(known: set[str]) -> tuple[list[str], int]:
        fake.reset()
        source = CivitaiSource(
            settings, fetcher, sort="Newest", page_limit=4, images_per_version=None, known=known
        )
        found = keys(list(source.iter_candidates()))
        return found, len(fake.api_requests("/models"))

    everything, full_pages = run(set())
    newest_first = everything[:3]
    fresh, pages = run(set(everything[3:]))
    assert set(newest_first) <= set(fresh) and not set(fresh) & set(everything[3:])
    assert pages < full_pages / 2


def test_the_registry_builds_the_source_from_options(settings: Settings, fetcher: Fetcher) -> None:
    context = SourceContext(settings, lambda: fetcher)
    source = default_registry(with_entry_points=False).create_source(
        "civitai", context, types="LORA,LoCon", limit=2
    )
    assert isinstance(source, CivitaiSource) and isinstance(source, Source)
    assert source.types == ("LORA", "LoCon") and len(list(source.iter_candidates())) == 2
