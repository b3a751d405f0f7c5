"""Safety rules of the web app: token on every route when exposed, Host allow-list, write
token for state changes (never only a cookie), no CORS, body cap before parsing, escaping."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clipatlas.atlas import Atlas
from clipatlas.errors import WebConfigError
from clipatlas.settings import Settings
from clipatlas.web.config import TOKEN_HEADER, WebConfig
from tests.web_helpers import client_fixture, client_for, web_settings_fixture, write_headers  # noqa: F401

TOKEN = "correct-horse-battery-staple"


def test_a_non_loopback_bind_without_a_token_is_refused() -> None:
    with pytest.raises(WebConfigError, match="give a token"):
        WebConfig.build(host="0.0.0.0")
    with pytest.raises(WebConfigError, match="at least 16"):
        WebConfig.build(host="0.0.0.0", token="short")
    assert WebConfig.build(host="::1").token is None  # loopback is fine without one


def _stored_id(c: TestClient, headers: dict[str, str]) -> int:
    page = c.get("/api/collections/photos/items", params={"status": "ok"}, headers=headers)
    return int(page.json()["items"][0]["id"])


def _exposed(settings: Settings) -> TestClient:
    config = WebConfig.build(host="0.0.0.0", token=TOKEN, allowed_hosts=["atlas.lan"], workers=0)
    return client_for(settings, config)


def test_with_a_token_every_route_needs_it_including_images_and_logs(
    web_settings: Settings,
) -> None:
    with _exposed(web_settings) as c:
        job = c.post(
            "/api/jobs",
            json={"collection": "photos", "kind": "cluster"},
            headers={TOKEN_HEADER: TOKEN},
        ).json()
        item = _stored_id(c, {TOKEN_HEADER: TOKEN})
        routes = [
            "/api/collections",
            f"/api/collections/photos/items/{item}/thumbnail",
            f"/api/collections/photos/items/{item}/original",
            f"/api/jobs/photos/{job['id']}",
            f"/api/jobs/photos/{job['id']}/events",
            "/api/openapi.json",
            "/api/docs",
            "/jobs",
            "/c/photos",
        ]
        for url in routes:
            res = c.get(url, headers={"Accept": "application/json"})
            assert res.status_code == 401, url
            assert res.json()["error"] == "unauthorized"
        assert (
            c.get(
                f"/api/collections/photos/items/{item}/thumbnail",
                headers={TOKEN_HEADER: "wrong-token-wrong-token"},
            ).status_code
            == 401
        )
        ok = c.get(f"/api/collections/photos/items/{item}/thumbnail", headers={TOKEN_HEADER: TOKEN})
        assert ok.status_code == 200
        assert c.get("/api/collections", headers={"Authorization": f"Bearer {TOKEN}"}).is_success
        # a browser is sent to the sign-in page, which sets an HttpOnly cookie
        page = c.get("/jobs", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert c.get("/static/app.css").status_code == 200  # the app's own assets are open
        bad = c.post("/login", data={"token": "nope"})
        assert bad.status_code == 401
        signed = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert signed.status_code == 303
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        assert c.get("/jobs", headers={"Accept": "text/html"}).status_code == 200  # cookie
        # ...but the cookie alone never changes state
        res = c.post(f"/api/jobs/photos/{job['id']}/cancel")
        assert res.status_code == 403 and res.json()["error"] == "write_token_required"
        res = c.post(f"/api/jobs/photos/{job['id']}/cancel", headers={TOKEN_HEADER: TOKEN})
        assert res.status_code == 200 and res.json()["status"] == "cancelled"


def test_the_host_header_must_be_allowed(web_settings: Settings) -> None:
    with _exposed(web_settings) as c:
        headers = {TOKEN_HEADER: TOKEN}
        assert c.get("/api/collections", headers={**headers, "Host": "atlas.lan:8000"}).is_success
        res = c.get("/api/collections", headers={**headers, "Host": "evil.example"})
        assert res.status_code == 400 and res.json()["error"] == "bad_host"
    with client_for(web_settings) as c:
        assert c.get("/api/collections", headers={"Host": "localhost:8000"}).is_success
        assert (
            c.get("/api/collections", headers={"Host": "rebind.attacker.test"}).status_code == 400
        )


def test_on_loopback_reads_are_open_but_writes_need_the_page_token(client: TestClient) -> None:
    assert client.get("/api/collections").is_success
    res = client.post("/api/jobs", json={"collection": "photos", "kind": "cluster"})
    assert res.status_code == 403
    res = client.post(
        "/api/jobs",
        json={"collection": "photos", "kind": "cluster"},
        headers={TOKEN_HEADER: "guess"},
    )
    assert res.status_code == 403
    token = write_headers(client)[TOKEN_HEADER]
    page = client.get("/").text
    assert f'content="{token}"' in page
    res = client.post(
        "/api/jobs", json={"collection": "photos", "kind": "cluster"}, headers=write_headers(client)
    )
    assert res.status_code == 201


def test_no_cors_headers_are_ever_sent(client: TestClient) -> None:
    res = client.get("/api/collections", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in res.headers
    pre = client.options(
        "/api/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers and not pre.is_success


def test_bodies_over_the_cap_are_refused_before_parsing(web_settings: Settings) -> None:
    config = WebConfig.build(max_body=50_000, workers=0)
    with client_for(web_settings, config) as c:
        big = b"\x89PNG" + b"0" * 60_000
        res = c.post(
            "/api/collections/photos/search/image",
            files={"file": ("a.png", big, "image/png")},
            headers=write_headers(c),
        )
        assert res.status_code == 413 and res.json()["error"] == "too_large"

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b"x" * 10_000

        res = c.post(
            "/api/jobs",
            content=chunks(),
            headers={**write_headers(c), "Content-Type": "application/json"},
        )
        assert res.status_code == 413


def test_default_cap_is_20_mb() -> None:
    assert WebConfig.build().max_body == 20 * 1024 * 1024


def test_upstream_text_is_escaped_in_pages(web_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    evil = '<script>alert("x")</script>'
    with Atlas.open("photos", settings=web_settings) as atlas:
        first = next(iter(atlas.store.iter_items(atlas.collection, status="ok")))[0]
        atlas.store.reject_items(
            atlas.collection, [(first.id, "blurry", {"title": evil, "url": "javascript:x"})]
        )
    with client_for(web_settings) as c:
        page = c.get(f"/c/photos/items/{first.id}").text
        assert evil not in page and "&lt;script&gt;alert(" in page
        assert "default-src 'self'" in c.get("/").headers["content-security-policy"]


def test_security_headers_on_pages_and_images(client: TestClient) -> None:
    page = client.get("/")
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    thumb = client.get(f"/api/collections/photos/items/{_stored_id(client, {})}/thumbnail")
    assert thumb.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in thumb.headers["content-security-policy"]
