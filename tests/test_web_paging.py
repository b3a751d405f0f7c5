"""Keyset paging of galleries and item lists: walking the cursors returns every item once, in
order, with filters; a page deep in a large collection costs what the first one does."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnElement

from clipatlas.atlas import Atlas
from clipatlas.settings import Settings
from clipatlas.store.schema import items
from clipatlas.store.sql import transaction
from clipatlas.tagging import add_tags
from clipatlas.web.browse import page_query
from tests.web_helpers import client_fixture, web_settings_fixture  # noqa: F401

URL = "/api/collections/photos/items"
HTML = {"Accept": "text/html"}


def _walk(client: TestClient, **params: Any) -> list[int]:
    seen: list[int] = []
    page = client.get(URL, params={**params, "limit": 3}).json()
    while True:
        seen += [i["id"] for i in page["items"]]
        if page["next_after"] is None:
            return seen
        assert page["offset"] is None or page["offset"] == 0
        page = client.get(URL, params={**params, "limit": 3, "after": page["next_after"]}).json()


def _walk_back(client: TestClient, last: int, **params: Any) -> list[int]:
    seen: list[int] = []
    before: int | None = last + 1
    while before is not None:
        page = client.get(URL, params={**params, "limit": 3, "before": before}).json()
        seen = [i["id"] for i in page["items"]] + seen
        before = page["prev_before"]
    return seen


def test_walking_the_cursors_returns_every_item_once_in_order(client: TestClient) -> None:
    everything = [i["id"] for i in client.get(URL, params={"limit": 200}).json()["items"]]
    assert len(everything) == 21
    for filters in ({}, {"status": "ok"}, {"status": "rejected"}, {"source": "folder"}):
        expected = [
            i["id"] for i in client.get(URL, params={**filters, "limit": 200}).json()["items"]
        ]
        walked = _walk(client, **filters)
        assert walked == expected == sorted(expected) and len(set(walked)) == len(walked)
        assert _walk_back(client, everything[-1], **filters) == expected
    assert _walk(client, status="ok") == [i for i in everything if i in _walk(client, status="ok")]
    assert len(_walk(client, status="ok")) == 20
    end = client.get(URL, params={"after": everything[-1]}).json()
    assert end["items"] == [] and end["next_after"] is None and end["prev_before"] is None
    assert client.get(URL, params={"after": 2**64}).status_code == 422
    assert client.get(URL, params={"before": -1}).status_code == 422
    # an offset page still works and hands out the cursors too
    old = client.get(URL, params={"limit": 5, "offset": 5}).json()
    assert [i["id"] for i in old["items"]] == everything[5:10] and old["offset"] == 5
    assert old["next_after"] == everything[9] and old["prev_before"] == everything[5]


def test_tagged_and_cluster_pages_walk_by_cursor(
    client: TestClient, web_settings: Settings
) -> None:
    ok = [i["id"] for i in client.get(URL, params={"status": "ok", "limit": 200}).json()["items"]]
    with Atlas.open("photos", settings=web_settings) as atlas:
        add_tags(atlas, ok[::2], "pick")
    assert _walk(client, tag="pick") == ok[::2]
    assert _walk_back(client, ok[-1], tag="pick") == ok[::2]
    assert _walk(client, tag="pick", source="folder") == ok[::2]  # tag and a column filter
    assert _walk(client, tag="pick", status="rejected") == []


def _add_rows(atlas: Atlas, n: int, status: str = "ok") -> None:
    """``n`` bare item rows (no file behind them): enough for paging, quick to make."""
    cid, now = atlas.collection.id, time.time()
    rows = [
        {"collection_id": cid, "source": "bulk", "source_key": f"k{i}", "uri": f"u{i}",
         "status": status if i % 10 else "rejected", "meta": {}, "version": 1, "created_at": now}
        for i in range(n)
    ]  # fmt: skip
    with transaction(atlas.store.engine) as conn:
        conn.execute(insert(items), rows)


def test_the_gallery_pager_follows_cursor_links(client: TestClient, web_settings: Settings) -> None:
    with Atlas.open("photos", settings=web_settings) as atlas:
        _add_rows(atlas, 130)
    everything = [i["id"] for i in client.get(URL, params={"limit": 200}).json()["items"]]
    assert len(everything) == 151
    seen: list[int] = []
    url: str | None = "/c/photos"
    pages = 0
    while url:
        html = client.get(url, headers=HTML).text
        ids = [int(m) for m in re.findall(r'href="/c/photos/items/(\d+)"', html)]
        seen += list(dict.fromkeys(ids))
        nxt = re.search(r'<a href="([^"]+)">[^<]*Next', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        assert url is None or ("after=" in url and "offset=" not in url)
        pages += 1
    assert seen == everything and pages == 3
    back = client.get(f"/c/photos?source=bulk&after={everything[-40]}", headers=HTML).text
    assert 'href="/c/photos?source=bulk&amp;before=' in back  # a way back, filters kept
    assert "Next" not in back.split('class="pager"')[1]


def _steps(db: str, query: Any) -> int:
    """The SQLite VM instructions a query takes: the work it does, free of machine load."""
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    with sqlite3.connect(db) as conn:
        conn.set_progress_handler(tick, 1)
        conn.execute(sql).fetchall()
    return count


def test_a_deep_page_costs_what_the_first_does(settings: Settings) -> None:
    n = 20_000
    with Atlas.open("big", settings=settings) as atlas:
        _add_rows(atlas, n)
        cid = atlas.collection.id
        db = str(atlas.store.engine.url.database)
    ok: list[ColumnElement[bool]] = [items.c.collection_id == cid, items.c.status == "ok"]
    first = _steps(db, page_query(ok, None, None, 0, 60))
    deep_id = n - 200  # about page 300 of 60
    deep = _steps(db, page_query(ok, deep_id, None, 0, 60))
    back = _steps(db, page_query(ok, None, deep_id, 0, 60))
    by_offset = _steps(db, page_query(ok, None, None, 17_700, 60))
    assert deep <= first * 1.2 and back <= first * 1.2, (first, deep, back)
    assert by_offset > 50 * first  # what the cursor saves
    print(f"VM steps: first {first}, deep cursor {deep}, before {back}, offset 17700 {by_offset}")
