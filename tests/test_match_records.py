"""Record import: validation, typed errors per record, photos through the ingest pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.errors import (
    DuplicateRecordError,
    RecordFieldError,
    RecordPhotoError,
    SourceError,
)
from clipatlas.matching import RecordSpec, read_records
from clipatlas.matching.repository import RecordRepository
from clipatlas.settings import Settings
from tests.corpus import coloured_picture
from tests.hostile_server import HostileServer


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        model="fake:64",
        match_text_model="fake:32",
        workers=-1,
        batch_size=8,
        **extra,
    )


def test_each_bad_row_gets_its_own_typed_error_and_the_good_rows_are_read(
    tmp_path: Path,
) -> None:
    path = _write_jsonl(
        tmp_path / "r.jsonl",
        [
            {
                "id": "a",
                "description": "black wallet",
                "time": "2026-03-01T10:00:00",
                "lat": "37.5",
                "lon": "127.0",
                "category": " Wallet ",
                "colour": "black",
            },
            {"description": "no id here"},
            {"id": "b"},
            {"id": "c", "description": "bad time", "time": "yesterday-ish"},
            {"id": "d", "description": "bad coordinate", "lat": "91", "lon": "0"},
            {"id": "e", "description": "only a latitude", "lat": "10"},
            "not json at all",
            "[1, 2]",
            {"id": "a", "description": "the same id again"},
            {"id": "f", "photo": "pics/f.png"},
        ],
    )
    good, errors = read_records(path)
    assert [r.key for r in good] == ["a", "f"]
    a = good[0]
    assert a.category == "wallet" and a.meta == {"colour": "black"}
    assert a.lat == 37.5 and a.lon == 127.0 and a.time == 1772359200.0
    assert good[1].photo == str(tmp_path / "pics" / "f.png") and good[1].text == ""
    by_line = {e.line: e for e in errors}
    assert sorted(n or 0 for n in by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert isinstance(by_line[2], RecordFieldError) and by_line[2].reason == "missing_field"
    assert by_line[3].record == "b" and "description" in by_line[3].detail
    assert by_line[4].reason == "invalid_field" and "time" in by_line[4].detail
    assert "lat" in by_line[5].detail and "both lat and lon" in by_line[6].detail
    assert by_line[7].reason == by_line[8].reason == "invalid_field"
    assert isinstance(by_line[9], DuplicateRecordError) and "line 1" in str(by_line[9])


def test_csv_records_take_the_configured_text_fields_joined(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("key,title,body,kind\nx1,Black wallet,Lost near the station,lost\nx2,,,found\n")
    good, errors = read_records(path, RecordSpec(id_field="key", text_fields=("title", "body")))
    assert [(r.key, r.text, r.kind) for r in good] == [
        ("x1", "Black wallet. Lost near the station", "lost")
    ]
    assert len(errors) == 1 and errors[0].record == "x2" and errors[0].line == 3


def test_an_unknown_extension_or_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "r.xml").write_text("<r/>")
    with pytest.raises(SourceError, match="unknown extension"):
        read_records(tmp_path / "r.xml")


def test_import_keeps_every_good_record_when_photos_fail_and_ids_repeat(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    coloured_picture((200, 20, 20)).save(pics / "red.png")
    coloured_picture((20, 20, 200)).save(pics / "blue.png")
    (pics / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with HostileServer() as host:
        rows = [
            {"id": "r1", "description": "red bag", "photo": "pics/red.png"},
            {"id": "r2", "description": "blue bag", "photo": str(pics / "blue.png")},
            {
                "id": "r3",
                "description": "bag whose photo URL fails",
                "photo": host.url("/status/404"),
            },
            {
                "id": "r4",
                "description": "bag with a photo on the web",
                "photo": host.url("/img.png"),
            },
            {"id": "r5", "description": "bag whose photo is missing", "photo": "pics/none.png"},
            {"id": "r6", "description": "bag whose photo is broken", "photo": "pics/broken.png"},
            {"id": "r7", "description": "the same red picture", "photo": "pics/red.png"},
            {"id": "r1", "description": "duplicate id"},
            {"description": "no id"},
            {"id": "r8", "description": "text only"},
        ]
        path = _write_jsonl(tmp_path / "records.jsonl", rows)
        settings = _settings(tmp_path, allow_hosts=["127.0.0.1"], fetch_retries=0, min_side=4)
        with Atlas.open("lf", settings=settings) as atlas:
            report = atlas.import_records(path)
            again = atlas.import_records(
                _write_jsonl(
                    tmp_path / "more.jsonl",
                    [
                        {"id": "r8", "description": "already stored"},
                        {"id": "r9", "description": "new one"},
                    ],
                )
            )
            rs = atlas.records().load()
            repo = RecordRepository(atlas.store.engine, atlas.collection)
            rows_by_key = repo.record_rows(["r3", "r5", "r6"])
    assert report.imported == 8 and report.with_photo == 4 and report.failed == 2
    photo_errors = {e.record: e for e in report.errors if isinstance(e, RecordPhotoError)}
    assert set(photo_errors) == {"r3", "r5", "r6"}
    assert photo_errors["r3"].image_reason == "http_error" and "404" in photo_errors["r3"].detail
    assert photo_errors["r5"].image_reason == "unreadable"
    assert photo_errors["r6"].image_reason in ("truncated", "decode_error")
    assert rows_by_key["r3"].photo_reason == "http_error" and rows_by_key["r3"].text
    assert report.as_dict()["reasons"] == {"duplicate_id": 1, "missing_field": 1, "photo_failed": 3}
    assert again.imported == 1 and isinstance(again.errors[0], DuplicateRecordError)
    assert again.import_id == report.import_id + 1
    where = rs.index()
    assert len(rs) == 9
    has_photo = {k for k in rs.keys if rs.has_photo[where[k]]}
    assert has_photo == {"r1", "r2", "r4", "r7"}
    # r7 shows the same picture as r1: stored once, both records link it
    assert rs.photo_item_ids[where["r7"]] == rs.photo_item_ids[where["r1"]]
    assert np.allclose(rs.photo[where["r7"]], rs.photo[where["r1"]])
    assert rs.has_text.all() and np.allclose(np.linalg.norm(rs.text, axis=1), 1, atol=1e-2)


def test_reimporting_with_replace_updates_the_record_and_its_vectors(tmp_path: Path) -> None:
    first = _write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "description": "red umbrella"}])
    second = _write_jsonl(
        tmp_path / "b.jsonl", [{"id": "x", "description": "green scarf", "place": "Gangnam"}]
    )
    with Atlas.open("lf", settings=_settings(tmp_path)) as atlas:
        atlas.import_records(first)
        before = atlas.records().load()
        report = atlas.import_records(second, replace=True)
        after = atlas.records().load()
    assert report.imported == 1 and not report.errors
    assert after.texts == ["green scarf"] and after.has_place.tolist() == [True]
    assert not np.allclose(before.text[0], after.text[0])


def test_records_vectors_and_calibrations_work_the_same_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    coloured_picture((200, 20, 20)).save(tmp_path / "red.png")
    rows = [
        {"id": f"{kind}-{i}", "kind": kind, "description": f"{kind} {colour} umbrella",
         "time": f"2026-03-0{i + 1}T10:00:00", "place": "Gangnam station"}
        for i, colour in enumerate(["red", "blue", "green", "yellow"])
        for kind in ("lost", "found")
    ]  # fmt: skip
    rows[0]["photo"] = "red.png"
    path = _write_jsonl(tmp_path / "r.jsonl", rows)
    settings = _settings(tmp_path, database_url=postgres_url)
    with Atlas.open("pg", settings=settings) as atlas:
        report = atlas.import_records(path)
        pairs = [(f"lost-{i}", f"found-{j}", i == j) for i in range(4) for j in range(4)]
        from clipatlas.matching import LabelledPair

        cal = atlas.calibrate_match([LabelledPair(*p) for p in pairs])
    with Atlas.open("pg", settings=settings, create=False) as atlas:
        rs = atlas.records().load()
        saved = atlas.records().calibration()
        top = atlas.match("lost-2", against_kind="found", threshold=0.0, k=1)
    assert report.imported == 8 and report.with_photo == 1
    assert len(rs) == 8 and rs.has_photo.sum() == 1 and rs.has_place.all()
    assert saved.id == cal.id and saved.params() == cal.params()
    assert top[0].key == "found-2"
