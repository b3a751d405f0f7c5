"""The REST API: collections, gallery pages, items and their files, search, runs, errors."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from clipatlas.atlas import Atlas
from clipatlas.settings import Settings
from tests.corpus import coloured_picture
from tests.web_helpers import client_fixture, web_settings_fixture, write_headers  # noqa: F401

RED = (220, 30, 30)


def _png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    coloured_picture(rgb, (48, 40)).save(buf, "PNG")
    return buf.getvalue()


def test_collections_list_counts_embedder_and_reasons(client: TestClient) -> None:
    res = client.get("/api/collections")
    assert res.status_code == 200
    [photos] = res.json()
    assert photos["name"] == "photos" and photos["embedder"] == "fake:64"
    assert photos["stored"] == 20 and photos["rejected"] == 1
    assert list(photos["reasons"]) == ["truncated"] or list(photos["reasons"]) == ["not_an_image"]
    assert photos["sources"] == {"folder": 21}
    assert "database" not in photos


def test_gallery_pages_and_filters(client: TestClient) -> None:
    page = client.get("/api/collections/photos/items", params={"limit": 8}).json()
    assert page["total"] == 21 and len(page["items"]) == 8
    second = client.get("/api/collections/photos/items", params={"limit": 8, "offset": 8}).json()
    assert {i["id"] for i in page["items"]}.isdisjoint(i["id"] for i in second["items"])
    rejected = client.get("/api/collections/photos/items", params={"status": "rejected"}).json()
    assert rejected["total"] == 1 and rejected["items"][0]["thumbnail_url"] is None
    reason = rejected["items"][0]["reason"]
    by_reason = client.get("/api/collections/photos/items", params={"reason": reason}).json()
    assert by_reason["total"] == 1
    assert (
        client.get("/api/collections/photos/items", params={"source": "urls"}).json()["total"] == 0
    )
    assert client.get("/api/collections/photos/items", params={"limit": 999}).status_code == 422


def test_item_detail_and_files_are_served_by_id_with_nosniff(client: TestClient) -> None:
    first = client.get("/api/collections/photos/items", params={"status": "ok"}).json()["items"][0]
    detail = client.get(f"/api/collections/photos/items/{first['id']}").json()
    assert detail["sha256"] and detail["width"] and detail["sharpness"] is not None
    thumb = client.get(detail["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["x-content-type-options"] == "nosniff"
    Image.open(io.BytesIO(thumb.content)).verify()
    original = client.get(detail["original_url"])
    assert original.headers["cache-control"] == "private, max-age=3600"
    assert original.status_code == 200 and original.headers["content-type"] == "image/png"
    missing = client.get("/api/collections/photos/items/99999/thumbnail")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "detail": "no item 99999 in collection 'photos'",
    }


def test_a_thumbnail_is_named_by_its_content_so_pages_may_cache_it(client: TestClient) -> None:
    """The page links a thumbnail with ``?v=`` its content address: that answer may be cached
    for a year; the ETag (the content address) answers a revalidation with 304 and no body."""
    first = client.get("/api/collections/photos/items", params={"status": "ok"}).json()["items"][0]
    url = first["thumbnail_url"]
    assert url.endswith("/thumbnail?v=" + first["sha256"][:16])  # thumbs/<sha256>.jpg
    linked = client.get(url)
    assert linked.headers["cache-control"] == "private, max-age=31536000, immutable"
    tag = linked.headers["etag"]
    assert tag == f'"{first["sha256"]}"'
    plain = client.get(url.split("?")[0])
    assert plain.headers["cache-control"] == "private, max-age=3600"  # no name: an hour
    assert plain.content == linked.content and plain.headers["etag"] == tag
    other = client.get(url.split("?")[0] + "?v=0123456789abcdef")
    assert other.headers["cache-control"] == "private, max-age=3600"  # an old link: an hour
    again = client.get(url, headers={"If-None-Match": f'"x", {tag}'})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    changed = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == linked.content
    for sent in (f"W/{tag}", "*"):  # a weak validator of the same tag, or any
        assert client.get(url, headers={"If-None-Match": sent}).status_code == 304
    assert again.headers["x-content-type-options"] == "nosniff"


def test_no_route_takes_a_path_from_the_request(client: TestClient) -> None:
    for url in (
        "/api/collections/photos/items/..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/api/collections/..%2F..%2Fetc/items/1/thumbnail",
        "/static/..%2F..%2Fapp.py",
    ):
        res = client.get(url)
        assert res.status_code in (400, 404, 422), url
        assert b"root:" not in res.content and b"def create_app" not in res.content


def test_text_search_finds_the_named_colour_first(client: TestClient) -> None:
    res = client.get("/api/collections/photos/search", params={"q": "red", "k": 4})
    assert res.status_code == 200
    hits = res.json()["hits"]
    assert len(hits) == 4 and hits[0]["source_key"].startswith("c0-")
    assert "/thumbnail?v=" in hits[0]["thumbnail_url"]  # named by content, like item pages
    assert hits[0]["score"] >= hits[-1]["score"]


def test_image_upload_search_returns_the_most_similar_colour(client: TestClient) -> None:
    res = client.post(
        "/api/collections/photos/search/image?k=3",
        files={"file": ("q.png", _png((30, 40, 220)), "image/png")},
        headers=write_headers(client),
    )
    assert res.status_code == 200, res.text
    assert res.json()["hits"][0]["source_key"].startswith("c2-")


def test_a_non_image_upload_is_a_typed_422(client: TestClient) -> None:
    res = client.post(
        "/api/collections/photos/search/image",
        files={"file": ("q.png", b"<html>nope</html>", "image/png")},
        headers=write_headers(client),
    )
    assert res.status_code == 422 and res.json()["error"] in ("image_decode", "image")


def test_url_search_fetches_through_the_safe_fetcher(web_settings: Settings) -> None:
    from tests.web_helpers import SlowImageServer, client_for

    with SlowImageServer(delay=0) as server:
        blocked = web_settings
        with client_for(blocked) as c:
            res = c.post(
                "/api/collections/photos/search/url",
                json={"url": f"{server.origin}/img/1.png"},
                headers=write_headers(c),
            )
            assert res.status_code == 422 and res.json()["error"] == "fetch"  # not public
        allowed = web_settings.model_copy(update={"allow_hosts": ["127.0.0.1"]})
        with client_for(allowed) as c:
            res = c.post(
                "/api/collections/photos/search/url",
                json={"url": f"{server.origin}/img/1.png", "k": 2},
                headers=write_headers(c),
            )
            assert res.status_code == 200, res.text
            assert len(res.json()["hits"]) == 2


def test_runs_list_clusters_with_sizes_and_representatives(
    client: TestClient, web_settings: Settings
) -> None:
    with Atlas.open("photos", settings=web_settings) as atlas:
        run = atlas.cluster("kmeans", k=5)
    runs = client.get("/api/collections/photos/runs").json()
    assert [r["id"] for r in runs] == [run.id]
    view = client.get(f"/api/collections/photos/runs/{run.id}").json()
    sizes = [c["size"] for c in view["clusters"]]
    assert sum(sizes) == 20 and sizes == sorted(sizes, reverse=True)
    for c in view["clusters"]:
        assert c["representatives"] and c["representatives"][0] == c["medoid_id"]
        assert len(c["representatives"]) == min(6, c["size"])
    assert view["has_map"] is False
    assert client.get("/api/collections/photos/runs/77").json()["error"] == "run_not_found"


def test_errors_are_json_with_error_and_detail(client: TestClient) -> None:
    res = client.get("/api/collections/nope")
    assert res.status_code == 404
    assert res.json() == {"error": "collection_not_found", "detail": "no collection named 'nope'"}
    res = client.get("/api/collections/photos/search")
    assert res.status_code == 422 and res.json()["error"] == "invalid_request"
    assert "q" in res.json()["detail"]
    res = client.get("/api/nothing-here")
    assert res.status_code == 404 and set(res.json()) == {"error", "detail"}


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec: dict[str, Any] = client.get("/api/openapi.json").json()
    for path in (
        "/api/collections",
        "/api/jobs",
        "/api/collections/{name}/search",
        "/api/jobs/{collection}/{job_id}/cancel",
    ):
        assert path in spec["paths"]
    assert not any(p.startswith("/c/") for p in spec["paths"])  # pages are not API
