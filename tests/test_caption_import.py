"""Importing captioned datasets: every layout, several captions per picture, missing and
broken pictures reported one by one, idempotent reruns, a reproducible seeded split."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.captions.readers import read_captions
from clipatlas.errors import CaptionImportError
from clipatlas.settings import Settings
from tests.caption_data import CAPTIONS, write_dataset

MINILM = "sentence-transformers:sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Caption text vectors from the fake embedder: import tests check rows, not meaning."""
    return settings.model_copy(update={"text_model": "fake:32"})


def _references(atlas: Atlas) -> dict[str, list[str]]:
    cstore = atlas.captions().store
    by_item = cstore.captions_of(cstore.stored_item_ids(), kinds=("reference",))
    items = atlas.store.get_items(atlas.collection, list(by_item))
    return {
        it.meta["image"].rsplit("/", 1)[-1]: [c.text or "" for c in by_item[it.id]] for it in items
    }


@pytest.mark.parametrize("layout", ["csv", "token", "jsonl", "tsv"])
def test_every_layout_imports_pictures_with_all_their_captions(
    tmp_path: Path, fast: Settings, layout: str
) -> None:
    path = write_dataset(tmp_path / "data", layout)
    with Atlas.open("c", settings=fast) as atlas:
        report = atlas.import_captions(path)
        refs = _references(atlas)
        assert atlas.stats().vectors == len(CAPTIONS)
    assert report.items == len(CAPTIONS) and not report.errors
    expected = {
        n: list(dict.fromkeys(" ".join(c.split()) for c in caps))
        for n, (_, caps) in CAPTIONS.items()
    }
    assert refs == expected
    assert report.captions == sum(len(v) for v in expected.values())
    assert report.embedded == report.captions


def test_a_missing_or_broken_picture_is_reported_and_the_rest_is_imported(
    tmp_path: Path, fast: Settings
) -> None:
    root = write_dataset(tmp_path / "data", "csv", missing=("blue_2.png",))
    (root / "Images" / "green_2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with Atlas.open("c", settings=fast) as atlas:
        report = atlas.import_captions(root)
    by_image = {e["image"]: e for e in report.errors}
    assert by_image["blue_2.png"]["reason"] == "missing_image"
    assert "blue_2.png" in by_image["blue_2.png"]["detail"]
    assert by_image["green_2.png"]["reason"] in ("truncated", "decode_error", "not_an_image")
    assert report.items == len(CAPTIONS) - 2


def test_rerunning_an_import_duplicates_nothing(tmp_path: Path, fast: Settings) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    with Atlas.open("c", settings=fast) as atlas:
        first = atlas.import_captions(root)
        second = atlas.import_captions(root)
        counts = atlas.captions().store.counts()
    assert second.ingest["skipped"] == len(CAPTIONS) and second.ingest["stored"] == 0
    assert counts == {"reference_ok": first.captions}
    assert second.embedded == 0  # same texts were re-written: vectors of new rows only
    assert first.split == second.split


def test_a_picture_already_in_the_collection_gets_the_captions(
    tmp_path: Path, fast: Settings
) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    with Atlas.open("c", settings=fast) as atlas:
        atlas.ingest(root / "Images")  # same bytes, another source: imports become duplicates
        report = atlas.import_captions(root)
        assert atlas.stats().stored == len(CAPTIONS)
    assert report.items == len(CAPTIONS) and not report.errors


def test_the_split_is_reproducible_and_depends_on_the_seed(tmp_path: Path, fast: Settings) -> None:
    root = write_dataset(tmp_path / "data", "csv")
    sides = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        with Atlas.open(name, settings=fast) as atlas:
            atlas.import_captions(root, test_fraction=0.4, seed=seed)
            keys = {
                it.id: it.source_key
                for it in atlas.store.get_items(
                    atlas.collection, atlas.captions().store.stored_item_ids()
                )
            }
            sides.append({keys[i]: s for i, s in atlas.captions().store.splits().items()})
    assert sides[0] == sides[1]
    assert sides[0] != sides[2]
    assert set(sides[0].values()) == {"train", "test"}


def test_a_hugging_face_dataset_saved_to_disk_imports(tmp_path: Path, fast: Settings) -> None:
    datasets = pytest.importorskip("datasets")
    from tests.caption_data import picture

    names = list(CAPTIONS)[:4]
    ds = datasets.Dataset.from_dict(
        {"image": [picture(n) for n in names], "caption": [CAPTIONS[n][1] for n in names]},
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Sequence(datasets.Value("string"))}
        ),
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    with Atlas.open("c", settings=fast) as atlas:
        report = atlas.import_captions(tmp_path / "hf")
        again = atlas.import_captions(tmp_path / "hf")
    assert report.items == 4 and report.captions == 8 and not report.errors
    assert again.ingest["stored"] == 0


def test_unusable_caption_files_raise_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("picture,words\nx.jpg,hello\n")
    with pytest.raises(CaptionImportError, match="no image column"):
        read_captions(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaptionImportError, match="no captions file"):
        read_captions(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"image": "a.jpg", "caption": "x"}\n{not json\n')
    with pytest.raises(CaptionImportError, match="line 2"):
        read_captions(broken)


def test_a_database_made_before_the_caption_tables_existed_gains_them(
    tmp_path: Path, fast: Settings
) -> None:
    from sqlalchemy import text

    with Atlas.open("c", settings=fast) as atlas, atlas.store.engine.begin() as conn:
        for table in ("caption_vectors", "caption_splits", "captions"):
            conn.execute(text(f"DROP TABLE {table}"))
    with Atlas.open("c", settings=fast) as atlas:
        report = atlas.import_captions(write_dataset(tmp_path / "data", "csv"))
    assert report.items == len(CAPTIONS)
