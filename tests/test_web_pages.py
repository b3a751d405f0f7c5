"""Server-rendered pages: overview, gallery, item, search, atlas, jobs; English and Korean."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from clipatlas.atlas import Atlas
from clipatlas.settings import Settings
from tests.web_helpers import client_fixture, web_settings_fixture  # noqa: F401

HTML = {"Accept": "text/html"}


def test_the_overview_lists_collections_with_counts_and_reasons(client: TestClient) -> None:
    page = client.get("/", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    body = page.text
    assert 'href="/c/photos"' in body and "fake:64" in body
    assert "Rejection reasons" in body and 'data-job-form="ingest"' in body
    assert '<link rel="stylesheet" href="/static/app.css">' in body
    assert (
        "http://" not in body.replace("http://127.0.0.1", "") and "https://" not in body
    )  # no CDN


def test_static_assets_are_local(client: TestClient) -> None:
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "X-Clipatlas-Token" in js.text
    assert "innerHTML" not in js.text  # upstream text only ever goes in as textContent
    assert client.get("/static/app.css").status_code == 200


def test_korean_interface_is_switchable_and_remembered(client: TestClient) -> None:
    ko = client.get("/?lang=ko", headers=HTML)
    assert "컬렉션" in ko.text and 'lang="ko"' in ko.text
    assert "clipatlas_lang=ko" in ko.headers["set-cookie"]
    again = client.get("/jobs", headers=HTML)  # the cookie keeps it
    assert "작업" in again.text and "기록 지우기" in again.text
    en = client.get("/jobs?lang=en", headers=HTML)
    assert "Clear history" in en.text
    fresh = TestClient(client.app, base_url="http://127.0.0.1")
    assert "컬렉션" in fresh.get("/", headers={"Accept-Language": "ko-KR,ko;q=0.9"}).text


def test_the_gallery_pages_through_thumbnails_and_filters(client: TestClient) -> None:
    body = client.get("/c/photos", headers=HTML).text
    thumbs = re.findall(r'<img src="(/api/collections/photos/items/\d+/thumbnail\?v=\w+)"', body)
    assert len(thumbs) == 20  # 20 stored pictures; the rejected one has none
    assert client.get(thumbs[0]).status_code == 200
    rejected = client.get("/c/photos?status=rejected", headers=HTML).text
    assert "/thumbnail" not in rejected and "1–1" in rejected


def test_item_page_shows_provenance_quality_and_similar_pictures(client: TestClient) -> None:
    first = client.get("/api/collections/photos/items", params={"status": "ok"}).json()["items"][0]
    body = client.get(f"/c/photos/items/{first['id']}", headers=HTML).text
    assert first["sha256"] in body and "sharpness" in body and "Similar pictures" in body
    assert body.count('class="thumb"') == 12


def test_search_page_renders_text_results(client: TestClient) -> None:
    body = client.get("/c/photos/search", params={"q": "blue"}, headers=HTML).text
    assert body.count('class="thumb"') == 20 and 'data-search="image"' in body
    first_key = re.search(r'title="#\d+ ([^"]+)"', body)
    assert first_key and first_key.group(1).startswith("c2-")


def test_atlas_page_embeds_the_runs_map_and_lists_clusters(
    client: TestClient, web_settings: Settings
) -> None:
    with Atlas.open("photos", settings=web_settings) as atlas:
        run = atlas.cluster("kmeans", k_range=(3, 6))  # auto-K: the run gets its folder
    before = client.get(f"/c/photos/runs/{run.id}", headers=HTML).text
    assert 'data-job-form="map"' in before and "<iframe" not in before
    with Atlas.open("photos", settings=web_settings) as atlas:
        atlas.map(run.id)
    body = client.get(f"/c/photos/runs/{run.id}", headers=HTML).text
    assert f'src="/c/photos/runs/{run.id}/map.html"' in body
    assert body.count('class="cluster"') == len(run.clusters)
    biggest = max(run.clusters, key=lambda c: c.size)
    members = client.get(f"/c/photos?run={run.id}&cluster={biggest.label}", headers=HTML).text
    assert f'href="/c/photos?run={run.id}&amp;cluster={biggest.label}"' in body
    assert members.count('class="thumb"') == biggest.size
    the_map = client.get(f"/c/photos/runs/{run.id}/map.html")
    assert the_map.status_code == 200 and "plotly" in the_map.text.lower()
    csp = the_map.headers["content-security-policy"]
    assert "sandbox allow-scripts" in csp and "connect-src" not in csp  # no network from it
    assert client.get("/c/photos/runs/99", headers=HTML).status_code == 404


def test_unknown_pages_render_an_error_page(client: TestClient) -> None:
    res = client.get("/c/nope", headers=HTML)
    assert res.status_code == 404 and "no collection named" in res.text
    assert res.headers["content-type"].startswith("text/html")
