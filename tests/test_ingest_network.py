"""End to end: network sources through the ingest pipeline (fake servers on 127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from clipatlas import Atlas
from clipatlas.settings import Settings
from tests.fake_civitai import FakeCivitai
from tests.hostile_server import HostileServer


def _cli(home: Path, base_url: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "CLIPATLAS_HOME": str(home), "CLIPATLAS_MODEL": "fake:64",
           "CLIPATLAS_WORKERS": "1", "CLIPATLAS_CIVITAI_BASE_URL": base_url}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "clipatlas", *args, "--allow-host", "127.0.0.1", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_civitai_loras_are_stored_once_with_provenance_and_a_second_run_fetches_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with FakeCivitai() as fake:
        fake.inject("models", "429", "503")
        fake.inject("cdn", "429-retry-after", "corrupt")  # a rate limit, then a broken body
        offered = fake.listed()
        first = _cli(home, fake.base_url, "ingest", "civitai", "--types", "LORA",
                     "--limit", "300", "-c", "loras")  # fmt: skip
        cdn_hits = len(fake.api_requests("/images-cdn/"))
        second = _cli(home, fake.base_url, "ingest", "civitai", "--types", "LORA",
                      "--limit", "300", "-c", "loras")  # fmt: skip
        cdn_hits_after = len(fake.api_requests("/images-cdn/"))
    expected = min(300, len(offered))
    assert first["stored"] + first["rejected"] == expected  # type: ignore[operator]
    reasons = first["reasons"]
    assert isinstance(reasons, dict) and sum(reasons.values()) == 1
    assert set(reasons) <= {"decode_error", "truncated"}, reasons
    assert second["stored"] == 0 and second["skipped"] == expected
    assert cdn_hits_after == cdn_hits, "the second run must download nothing"
    settings = Settings(home=home, model="fake:64")
    with Atlas.open("loras", settings=settings, create=False) as atlas:
        items = [i for i in atlas.store.get_items(atlas.collection, range(1, 10_000))]
        stats = atlas.stats()
    assert len(items) == expected and stats.vectors == stats.stored == first["stored"]
    by_id = {i.id: i for m in fake.models for v in m.versions for i in v.images}
    for item in items:
        assert item.source == "civitai" and item.source_key.startswith(("image:", "url:"))
        meta = item.meta
        for key in ("model_id", "model_name", "model_type", "version_id", "source_url",
                    "retrieved_at", "nsfw_level"):  # fmt: skip
            assert key in meta, (key, meta)
        assert meta["model_type"] == "LORA"
        if item.status == "ok":
            assert item.media_path and (atlas.media_root / item.media_path).is_file()
            image = (
                by_id.get(int(item.source_key.split(":")[1]))
                if item.source_key.startswith("image:")
                else None
            )
            if image is not None:
                assert meta["model_id"] == image.model_id and meta["version_id"] == image.version_id


def test_a_url_list_stores_good_pictures_and_records_each_failure_with_its_reason(
    tmp_path: Path,
) -> None:
    with HostileServer() as host:
        lines = {
            "good": host.url("/img.png"),
            "png_as_jpeg": host.url("/photo.jpeg"),  # same bytes: an exact duplicate
            "html": host.url("/html"),
            "missing": host.url("/status/404"),
            "bomb": host.url("/gzip-bomb"),
            "to_private": host.url("/redirect-to?to=" + quote("http://10.20.30.40/x.png")),
        }
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(lines.values()) + "\nftp://example.invalid/nope.png\n")
        settings = Settings(
            home=tmp_path / "home", model="fake:64", workers=-1, min_side=4,
            allow_hosts=["127.0.0.1"], fetch_max_bytes=1024 * 1024, fetch_retries=0,
        )  # fmt: skip
        with Atlas.open("web", settings=settings) as atlas:
            source = atlas.source("urls", path=urls)
            report = atlas.ingest(source)
            items = {i.uri: i for i in atlas.store.get_items(atlas.collection, range(1, 100))}
            hits = sum(host.hits.values())
            again = atlas.ingest(atlas.source("urls", path=urls))
            assert (again.skipped, again.stored, again.rejected) == (6, 0, 0)
            assert sum(host.hits.values()) == hits, "a second run downloads nothing"
    assert report.stored == 1
    assert dict(report.reasons) == {
        "duplicate": 1, "not_an_image": 1, "http_error": 1, "too_large": 1,
        "blocked_address": 1,
    }  # fmt: skip
    assert items[lines["missing"]].detail and "404" in items[lines["missing"]].detail
    assert items[lines["good"]].status == "ok" and items[lines["good"]].media_path
    assert source.invalid_urls == [(7, "ftp://example.invalid/nope.png")]  # type: ignore[attr-defined]


def test_naver_results_are_ingested_from_the_command_line_and_not_fetched_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_naver import FakeNaver

    home = tmp_path / "home"
    with FakeNaver() as naver:
        monkeypatch.setenv("CLIPATLAS_NAVER_BASE_URL", naver.api_url)
        monkeypatch.setenv("CLIPATLAS_NAVER_CLIENT_ID", "fake-client-id")
        monkeypatch.setenv("CLIPATLAS_NAVER_CLIENT_SECRET", "fake-client-secret")
        args = ("ingest", "naver", "-q", "고양이", "--limit", "30", "-c", "cats")
        first = _cli(home, "", *args)
        second = _cli(home, "", *args)
    assert first["stored"] == 30 and first["rejected"] == 0
    assert second["stored"] == 0 and second["skipped"] == 30
    with Atlas.open("cats", settings=Settings(home=home), create=False) as atlas:
        items = atlas.store.get_items(atlas.collection, range(1, 100))
    assert len(items) == 30
    assert all(i.meta["query"] == "고양이" and "<b>" not in i.meta["title"] for i in items)
    assert not any("fake-client-secret" in json.dumps(dict(i.meta)) for i in items)


def test_sync_fetches_only_what_is_new_and_stops_paging_at_known_pictures(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with FakeCivitai(loras=250) as fake:  # several pages of models
        first = _cli(home, fake.base_url, "sync", "civitai", "--types", "LORA", "-c", "s")
        pages_first = len(fake.api_requests("/api/v1/models"))
        fake.reset()
        second = _cli(home, fake.base_url, "sync", "civitai", "--types", "LORA", "-c", "s")
        pages_second = len(fake.api_requests("/api/v1/models"))
        cdn_second = len(fake.api_requests("/images-cdn/"))
    # up to 4 previews per version (the default) of every listed model
    assert first["stored"] == first["scanned"] > 700 and first["rejected"] == 0
    assert second["stored"] == 0 and second["scanned"] == 0 and cdn_second == 0
    assert 1 <= pages_second < pages_first
