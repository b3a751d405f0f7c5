"""In real headless Chromium (Debian's, launched by path): ingest through the UI, search by
text and by picture, open the atlas and hover a point, cancel a running job, and find the job
history again after a server restart."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clipatlas.atlas import Atlas
from clipatlas.jobs import JobContext, JobKind, default_kinds
from clipatlas.progress import ProgressEvent
from clipatlas.settings import Settings
from tests.corpus import coloured_picture
from tests.dataset_planted import PlantedNaver, planted_catalogue, planted_settings
from tests.web_helpers import write_colour_folder
from tests.web_live import CHROMIUM, LiveApp

# CI installs chromium and sets CLIPATLAS_REQUIRE_BROWSER=1: there a missing browser fails
_REQUIRED = bool(os.environ.get("CLIPATLAS_REQUIRE_BROWSER"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _REQUIRED and not os.path.exists(CHROMIUM), reason="Debian chromium not installed"
    ),
]
if _REQUIRED:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")


def _slow(ctx: JobContext) -> dict[str, Any]:
    for i in range(3000):
        time.sleep(0.01)
        ctx.progress(ProgressEvent("count", i + 1, 3000))
    return {}


def _kinds() -> Any:
    kinds = default_kinds()
    kinds.add(JobKind("slow", _slow))
    return kinds


def _wait_until(pred: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert errors == []


def test_ingest_through_the_ui_then_search_by_text_and_picture(
    page: Any, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=3)
    with LiveApp(settings, _kinds()) as live:
        page.goto(live.url + "/")
        page.fill("#ingest-form input[name=collection]", "ui")
        page.select_option("#ingest-form select[name=source]", "folder")
        page.fill("#ingest-form input[name=root]", str(folder))
        page.click("#ingest-form button[type=submit]")
        page.wait_for_url("**/jobs/ui/1")
        page.locator("#job .status", has_text="done").wait_for(timeout=30_000)
        assert '"stored": 15' in page.text_content("#job .result")
        page.goto(live.url + "/c/ui")
        thumbs = page.locator(".thumbs img")
        assert thumbs.count() == 15
        _wait_until(
            lambda: all(
                img.evaluate("i => i.complete && i.naturalWidth > 0") for img in thumbs.all()
            )
        )
        page.goto(live.url + "/c/ui/search")
        page.fill("#text-search input[name=q]", "green")
        page.click("#text-search button")
        first = page.locator("#results .thumb").first
        assert first.get_attribute("title").split(" ", 1)[1].startswith("c1-")
        before = first.get_attribute("title")
        buf = io.BytesIO()
        coloured_picture((230, 220, 30), (40, 40)).save(buf, "PNG")
        page.set_input_files(
            "#image-search input[type=file]",
            {"name": "q.png", "mimeType": "image/png", "buffer": buf.getvalue()},
        )
        page.click("#image-search button")
        _wait_until(
            lambda: (
                page.locator("#results .thumb").count() == 15
                and page.locator("#results .thumb").first.get_attribute("title") != before
            )
        )
        title = page.locator("#results .thumb").first.get_attribute("title")
        assert title.split(" ", 1)[1].startswith("c3-")
        page.click("#lang-switch")
        assert "검색" in page.text_content("h1")


def test_open_the_atlas_and_hover_a_point(page: Any, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=4)
    with Atlas.open("maps", settings=settings) as atlas:
        atlas.ingest(folder)
        run = atlas.cluster("kmeans", k_range=(3, 6))
        atlas.map(run.id)
    with LiveApp(settings, _kinds(), worker=False) as live:
        page.goto(f"{live.url}/c/maps/runs/{run.id}")
        assert page.locator("section.cluster").count() == run.n_clusters
        frame = page.frame_locator("#atlas-map")
        point = frame.locator(".scatterlayer .trace .points path").first
        point.wait_for(timeout=30_000)
        info = frame.locator("#clipatlas-info")
        assert info.text_content() == "Hover a point."
        page.locator("#atlas-map").scroll_into_view_if_needed()
        box = point.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 15, y - 15)
        page.mouse.move(x, y, steps=8)
        _wait_until(lambda: info.text_content() != "Hover a point.")
        assert "item: #" in info.text_content()  # the item's provenance is shown
        thumb = frame.locator("#clipatlas-thumb")
        assert (thumb.get_attribute("src") or "").startswith("data:image/jpeg;base64,")
        # box-select every point: the sandboxed map posts coordinates, the page gets item ids
        frame.locator('.modebar-btn[data-val="select"]').click(force=True)
        area = frame.locator(".nsewdrag").first.bounding_box()
        page.mouse.move(area["x"] + 3, area["y"] + 3)
        page.mouse.down()
        page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2, steps=5)
        page.mouse.move(area["x"] + area["width"] - 3, area["y"] + area["height"] - 3, steps=5)
        page.mouse.up()
        _wait_until(lambda: page.text_content("#selection-count") == "20")
        page.fill("#selection-tag input[name=tag]", "boxed")
        page.click("#selection-tag button[type=submit]")
        page.locator("#flash", has_text="boxed: 20 / 20").wait_for(timeout=5_000)
        with page.expect_download() as download:
            page.click("#selection-export")
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 21 and lines[0].startswith("id,cluster,")
        page.goto(f"{live.url}/c/maps?tag=boxed")
        assert page.locator(".thumbs .thumb").count() == 20
        # rename a cluster from its form: the new name is shown and kept
        page.goto(f"{live.url}/c/maps/runs/{run.id}")
        form = page.locator("form.rename").first
        form.locator("input[name=name]").fill("Mine")
        form.locator("button").click()
        page.locator("section.cluster .cluster-name", has_text="Mine").first.wait_for(
            timeout=10_000
        )
        page.reload()
        assert page.locator("section.cluster .cluster-name", has_text="Mine").count() == 1


def test_cancel_a_running_job_from_the_jobs_page_and_see_history_after_restart(
    page: Any, settings: Settings
) -> None:
    from clipatlas.jobs import JobBoard

    board = JobBoard(settings, _kinds())
    job = board.submit("hist", "slow", {})
    board.close()
    with LiveApp(settings, _kinds()) as live:
        page.goto(live.url + "/jobs")
        row = page.locator('tr[data-key="hist/1"]')
        row.locator("td.status", has_text="running").wait_for(timeout=10_000)
        started = time.monotonic()
        row.locator('button[data-action="cancel"]').click()
        page.locator('tr[data-key="hist/1"] td.status', has_text="cancelled").wait_for(
            timeout=5_000
        )
        assert time.monotonic() - started < 3.0  # 2 s to stop + up to 1 s until the next poll
    with LiveApp(settings, _kinds(), worker=False) as live:  # a restarted server
        page.goto(live.url + "/jobs")
        row = page.locator('tr[data-key="hist/1"]')
        assert row.locator("td.status").text_content() == "cancelled"
        row.locator('button[data-action="resume"]').click()
        page.locator('tr[data-key="hist/1"] td.status', has_text="queued").wait_for(timeout=5_000)
        page.goto(f"{live.url}/jobs/hist/{job.id}")
        logs = page.text_content("ol.logs")
        assert "cancel requested" in logs and "resumed (was cancelled)" in logs


def test_classify_an_uploaded_picture_and_get_recommendations_from_the_browser(
    page: Any, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=4)
    with Atlas.open("styles", settings=settings) as atlas:
        atlas.ingest(folder)
        run = atlas.cluster("kmeans", k=5)
        members = atlas.store.get_items(atlas.collection, [int(i) for i in run.item_ids])
        label_of = dict(zip(run.item_ids.tolist(), run.labels.tolist(), strict=True))
        greens = {label_of[it.id] for it in members if Path(it.source_key).name.startswith("c1-")}
        (green,) = greens  # the green pictures form one cluster
    with LiveApp(settings, _kinds(), worker=False) as live:
        page.goto(f"{live.url}/c/styles/classify")
        buf = io.BytesIO()
        coloured_picture((30, 200, 40), (40, 40)).save(buf, "PNG")
        page.set_input_files(
            "#classify-form input[type=file]",
            {"name": "q.png", "mimeType": "image/png", "buffer": buf.getvalue()},
        )
        page.click("#classify-form button[type=submit]")
        result = page.locator("#classify-result")
        result.locator(".nearest tbody tr").first.wait_for(timeout=15_000)
        assert result.locator(".nearest tbody tr").first.get_attribute("data-label") == str(green)
        assert "inside" in result.locator(".explanation").text_content()
        page.goto(f"{live.url}/c/styles/recommend?lang=ko")
        page.fill("#recommend-form input[name=prompt]", "blue")
        page.click("#recommend-form button")
        section = page.locator("#recommendations section").first
        section.wait_for(timeout=15_000)
        assert page.locator("#recommendations section").count() == 3
        imgs = section.locator("img")
        assert imgs.count() > 0
        _wait_until(lambda: imgs.first.evaluate("i => i.complete && i.naturalWidth > 0"))
        assert "추천" in page.text_content("h1")


def test_start_a_dataset_build_against_the_local_fakes_and_cancel_it(
    page: Any, tmp_path: Path
) -> None:
    with PlantedNaver(planted_catalogue(60), "고양이", picture_delay=0.25) as naver:
        settings = planted_settings(tmp_path / "home", naver, model="fake:64")
        with LiveApp(settings, _kinds()) as live:
            page.goto(live.url + "/dataset?collection=cats")
            page.fill("#dataset-form input[name=query]", "고양이")
            page.select_option("#dataset-form select[name=source]", "naver")
            page.fill("#dataset-form input[name=limit]", "30")
            page.fill("#dataset-form input[name=min_side]", "200")
            page.click("#dataset-form button[type=submit]")
            page.wait_for_url("**/jobs/cats/1")
            page.locator("#job .status", has_text="running").wait_for(timeout=20_000)
            _wait_until(lambda: naver.picture_requests > 0, timeout=20)
            started = time.monotonic()
            page.click('#job button[data-action="cancel"]')
            page.locator("#job .status", has_text="cancelled").wait_for(timeout=10_000)
            assert time.monotonic() - started < 4.0
            assert naver.picture_requests < 60  # stopped before fetching everything
            assert page.locator("#job-report").is_hidden()
            logs = page.text_content("ol.logs")
            # pictures are fetched (and committed one by one) before the ingest embeds them
            assert "cancel requested" in logs and "cancelled during fetch" in logs
            builds = page.request.get(live.url + "/api/collections/cats/datasets").json()
            assert builds[0]["status"] == "cancelled"  # the build's own row agrees
