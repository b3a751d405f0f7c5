from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipatlas import Atlas
from clipatlas.analysis.export import BASE_COLUMNS, export_items
from clipatlas.errors import ConfigError
from clipatlas.settings import Settings
from tests.corpus import write_corpus, write_good_jpegs
from tests.test_cli import run


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    """A CLI-ingested collection ``demo``: the hostile corpus (stored and rejected items)."""
    base = tmp_path_factory.mktemp("export")
    expected = write_corpus(base / "corpus")
    run(base / "home", "ingest", str(base / "corpus"), "-c", "demo")
    return base / "home", expected


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_csv_export_has_one_row_per_item_and_every_column(
    ingested: tuple[Path, dict[str, str | None]], tmp_path: Path
) -> None:
    home, expected = ingested
    out = tmp_path / "items.csv"
    report = json.loads(run(home, "export", str(out), "-c", "demo", "--json").stdout)
    columns, rows = _read_csv(out)
    assert report["rows"] == len(rows) == len(expected)
    assert columns[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert "meta.duplicate_of" in columns and report["columns"] == columns
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    by_key = {r["source_key"]: r for r in rows}
    assert set(by_key) == set(expected)
    photo = by_key["good/photos/astronaut.jpg"]
    assert photo["status"] == "ok" and photo["has_vector"] == "True" and len(photo["phash"]) == 16
    assert int(photo["width"]) == 512 and Path(photo["thumb_path"]).is_file()
    copy = by_key["nested/deeper/astronaut-copy.jpg"]
    assert json.loads(copy["meta"])["duplicate_of"] == int(photo["id"])
    assert copy["meta.duplicate_of"] == photo["id"]


def test_export_of_rejected_items_includes_their_reasons(
    ingested: tuple[Path, dict[str, str | None]], tmp_path: Path
) -> None:
    home, expected = ingested
    out = tmp_path / "rejected.csv"
    text = run(home, "export", str(out), "-c", "demo", "--status", "rejected").stdout
    _, rows = _read_csv(out)
    assert f"wrote {len(rows)} items" in text
    rejected = {k: v for k, v in expected.items() if v is not None}
    assert {r["source_key"]: r["reason"] for r in rows} == rejected
    assert all(r["status"] == "rejected" and r["has_vector"] == "False" for r in rows)
    assert any(r["detail"] for r in rows)


def test_parquet_export_keeps_types_and_row_counts(
    ingested: tuple[Path, dict[str, str | None]], tmp_path: Path
) -> None:
    home, expected = ingested
    out = tmp_path / "stored.parquet"
    run(home, "export", str(out), "-c", "demo", "--status", "ok")
    table = pq.read_table(out)
    stored = [k for k, v in expected.items() if v is None]
    assert table.num_rows == len(stored)
    assert table.column_names[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert str(table.schema.field("id").type) == "int64"
    assert str(table.schema.field("sharpness").type) == "double"
    assert str(table.schema.field("has_vector").type) == "bool"
    assert sorted(table.column("source_key").to_pylist()) == sorted(stored)
    assert set(table.column("status").to_pylist()) == {"ok"}


def test_export_streams_in_pages_and_flattens_scalar_meta_only(
    settings: Settings, tmp_path: Path
) -> None:
    write_good_jpegs(tmp_path / "pictures", 5, size=(96, 64))
    with Atlas.open("paged", settings=settings) as atlas:
        atlas.ingest(tmp_path / "pictures")
        ids = sorted(it.id for page in atlas.store.iter_items(atlas.collection) for it in page)
        atlas.store.reject_items(
            atlas.collection,
            [(ids[0], "duplicate", {"duplicate_of": ids[1], "near": {"cosine": 0.99}})],
        )
        pages = list(atlas.store.iter_items(atlas.collection, page_size=2))
        assert [len(p) for p in pages] == [2, 2, 1]
        report = export_items(
            atlas.store, atlas.collection, tmp_path / "out.parquet", atlas.media_root, page_size=2
        )
        assert report.rows == 5
    table = pq.read_table(tmp_path / "out.parquet")
    assert "meta.duplicate_of" in table.column_names and "meta.near" not in table.column_names
    assert str(table.schema.field("meta.duplicate_of").type) == "int64"
    first = table.slice(0, 1).to_pylist()[0]
    assert first["meta.duplicate_of"] == ids[1]
    assert json.loads(first["meta"])["near"] == {"cosine": 0.99}
    assert first["status"] == "rejected" and first["reason"] == "duplicate"


def test_an_unknown_extension_or_status_is_a_config_error(
    settings: Settings, tmp_path: Path
) -> None:
    with Atlas.open("empty", settings=settings) as atlas:
        with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
            atlas.export_metadata(tmp_path / "items.xlsx")
        with pytest.raises(ConfigError, match="status"):
            atlas.export_metadata(tmp_path / "items.csv", status="maybe")
        report = atlas.export_metadata(tmp_path / "items.csv")
    assert report.rows == 0 and not list(tmp_path.glob(".*partial"))
    assert _read_csv(tmp_path / "items.csv")[0] == list(BASE_COLUMNS)


def test_export_command_fails_with_one_line_for_an_unknown_extension(
    ingested: tuple[Path, dict[str, str | None]], tmp_path: Path
) -> None:
    home, _ = ingested
    bad = run(home, "export", str(tmp_path / "items.txt"), "-c", "demo", check=1)
    assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
