"""A picture shared by several CivitAI models records every model (issue 22), and the CivitAI
page size is an option the CLI passes on within the API's limits."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.errors import ConfigError
from clipatlas.sources.base import Candidate
from clipatlas.sources.civitai import CivitaiSource
from clipatlas.store.model_links import links_of, merge_links
from tests.corpus import write_good_jpegs
from tests.fake_civitai import FakeCivitai
from tests.test_cli import run as run_cli
from tests.test_style_civitai import civitai_settings


@pytest.fixture
def shared() -> Iterator[tuple[FakeCivitai, int, int, int]]:
    """A fake CivitAI where one preview of model A is also a preview of model B."""
    with FakeCivitai(loras=6, others=0) as fake:
        listed = [i for i in fake.listed() if not (i.no_url or i.no_id or i.corrupt)]
        image = listed[0]
        a = next(m for m in fake.models if m.id == image.model_id)
        b = next(
            m for m in fake.models
            if m.id != a.id and not m.hidden and any(v.images for v in m.versions)
        )  # fmt: skip
        target = next(v for v in b.versions if v.images)
        target.images.insert(0, dataclasses.replace(image, model_id=b.id, version_id=target.id))
        yield fake, image.id, a.id, b.id


def _item(atlas: Atlas, key: str) -> dict[str, object]:
    found = atlas.store.find_items(atlas.collection, source_keys=[key])
    return dict(atlas.store.get_items(atlas.collection, [found[key]])[0].meta)


def test_an_image_shared_by_two_models_is_stored_once_and_counts_for_both_models(
    shared: tuple[FakeCivitai, int, int, int], tmp_path: Path
) -> None:
    from clipatlas.analysis.clustering.naming import _tag_doc

    fake, image_id, a, b = shared
    with Atlas.open("links", settings=civitai_settings(tmp_path / "home", fake)) as atlas:
        atlas.ingest(atlas.source("civitai", images_per_version=None))
        meta = _item(atlas, f"image:{image_id}")
        run = atlas.cluster(k=2)
        found = atlas.recommend("a picture", run.id, top=2, items=200)
    assert {link["model_id"] for link in links_of(meta)} == {a, b}
    assert meta["model_id"] == a  # the first model stays the top-level one
    # recommendations and cluster tags count the shared picture for each of its models
    assert {a, b} <= {m["model_id"] for c in found["clusters"] for m in c["models"]}
    assert _tag_doc([meta])[1] == 2


def test_a_model_ingested_later_adds_its_link_to_a_picture_already_stored(
    shared: tuple[FakeCivitai, int, int, int], tmp_path: Path
) -> None:
    fake, image_id, a, b = shared
    with Atlas.open("later", settings=civitai_settings(tmp_path / "home", fake)) as atlas:
        atlas.ingest(atlas.source("civitai", mode="model", model_id=a, images_per_version=None))
        assert [link["model_id"] for link in links_of(_item(atlas, f"image:{image_id}"))] == [a]
        report = atlas.ingest(
            atlas.source("civitai", mode="model", model_id=b, images_per_version=None)
        )
        assert report.skipped >= 1
        again = atlas.ingest(
            atlas.source("civitai", mode="model", model_id=b, images_per_version=None)
        )
        meta = _item(atlas, f"image:{image_id}")
    assert [link["model_id"] for link in links_of(meta)] == [a, b]  # added once, not twice
    assert again.stored == 0


class _Listed:
    """A local source whose two files are the same picture, offered for two models."""

    name = "listed"

    def __init__(self, paths: list[Path], first_model: int = 10) -> None:
        self.paths, self.first_model = paths, first_model

    def iter_candidates(self) -> Iterator[Candidate]:
        for n, path in enumerate(self.paths):
            model = self.first_model + n
            link = {"model_id": model, "model_name": f"M{model}", "version_id": None, "tags": []}
            stat = path.stat()
            meta = {"model_id": model, "models": [link]}
            yield Candidate(self.name, path.name, str(path), path=path, size=stat.st_size,
                            mtime=stat.st_mtime, meta=meta)  # fmt: skip


def test_the_same_bytes_offered_for_another_model_add_a_link_to_the_kept_item(
    settings: object, tmp_path: Path
) -> None:
    first = write_good_jpegs(tmp_path / "in", 1, size=(64, 64))[0]
    copies = [first, tmp_path / "in" / "copy.jpg", tmp_path / "in" / "late.jpg"]
    shutil.copy(first, copies[1])
    shutil.copy(first, copies[2])
    with Atlas.open("bytes", settings=settings) as atlas:  # type: ignore[arg-type]
        report = atlas.ingest(_Listed(copies[:2]))  # a duplicate within one batch
        assert (report.stored, report.reasons["duplicate"]) == (1, 1)
        atlas.ingest(_Listed([copies[2]], 20))  # a duplicate of a stored item, in a later run
        meta = _item(atlas, first.name)
    assert [link["model_id"] for link in links_of(meta)] == [10, 11, 20]


def test_links_merge_by_model_and_version_and_start_from_the_fields_of_older_items() -> None:
    old = {"model_id": 1, "model_name": "A", "version_id": 5, "tags": ["x"]}
    merged = merge_links(old, [{"model_id": 1, "version_id": 5}, {"model_id": 2, "version_id": 7}])
    assert [(m["model_id"], m["version_id"]) for m in merged["models"]] == [(1, 5), (2, 7)]
    assert merged["models"][0]["tags"] == ["x"] and links_of({"uri": "x"}) == []
    assert merge_links(merged, [{"model_id": 2, "version_id": 7}]) == merged


def test_the_civitai_page_size_is_passed_on_and_refused_beyond_the_api_limit(
    shared: tuple[FakeCivitai, int, int, int], tmp_path: Path
) -> None:
    fake = shared[0]
    settings = civitai_settings(tmp_path / "home", fake)
    with Atlas.open("pages", settings=settings) as atlas:
        with pytest.raises(ConfigError, match=r"1\.\.100 in mode 'models'"):
            atlas.source("civitai", page_limit=101)
        assert isinstance(atlas.source("civitai", mode="images", page_limit=200), CivitaiSource)
    env = {"CLIPATLAS_ALLOW_HOSTS": '["127.0.0.1"]', "CLIPATLAS_CIVITAI_BASE_URL": fake.base_url}
    home = tmp_path / "cli"
    refused = run_cli(home, "ingest", "civitai", "--page-size", "150", check=1, env=env)
    assert "1..100" in refused.stderr and "Traceback" not in refused.stderr
    fake.reset()
    run_cli(home, "ingest", "civitai", "--page-size", "2", "--limit", "5", env=env)
    limits = {r.query.get("limit", ["?"])[-1] for r in fake.api_requests("/api/v1/models")}
    assert limits == {"2"}
    fake.reset()
    run_cli(home, "ingest", "civitai", "--mode", "images", "--page-size", "200", "--limit", "3",
            env=env)  # fmt: skip
    assert {r.query["limit"][-1] for r in fake.api_requests("/api/v1/images")} == {"200"}
