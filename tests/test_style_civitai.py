"""The style atlas over CivitAI provenance, against the local fake CivitAI: a model id is
classified from its preview images, recommendations name the LoRA models to try, cluster
names use the models' tags, and an unknown model id is a clear error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.errors import CivitaiError
from clipatlas.settings import Settings
from clipatlas.store.runs import ClusterRun
from tests.fake_civitai import FakeCivitai, FakeModel
from tests.test_cli import run as run_cli


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCivitai]:
    with FakeCivitai() as running:
        yield running


def civitai_settings(home: Path, fake: FakeCivitai) -> Settings:
    return Settings(
        home=home, model="fake:64", workers=-1, batch_size=8, database_url=None,
        allow_hosts=["127.0.0.1"], civitai_base_url=fake.base_url, fetch_retries=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def atlas_run(
    fake: FakeCivitai, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Atlas, ClusterRun]]:
    home = tmp_path_factory.mktemp("civitai-style") / "home"
    atlas = Atlas.open("loras", settings=civitai_settings(home, fake))
    atlas.ingest(atlas.source("civitai", mode="models", images_per_version=None))
    yield atlas, atlas.cluster("kmeans", k=4)
    atlas.close()


def richest(fake: FakeCivitai) -> FakeModel:
    """The listed model with the most usable preview images."""
    listed = {i.model_id for i in fake.listed()}
    return max(
        (m for m in fake.models if m.id in listed),
        key=lambda m: sum(
            1 for v in m.versions for i in v.images if not i.no_url and not i.corrupt
        ),
    )


def test_a_model_id_is_classified_from_its_previews_with_votes(
    atlas_run: tuple[Atlas, ClusterRun], fake: FakeCivitai
) -> None:
    atlas, run = atlas_run
    model = richest(fake)
    answer = atlas.classify(run.id, civitai_model=model.id, images=4)
    assert answer.subject["civitai_model"] == model.id
    assert answer.subject["model_name"] == model.name and answer.subject["tags"] == model.tags
    assert 2 <= len(answer.inputs) <= 4 and all(
        i["input"].startswith("image:") for i in answer.inputs
    )
    assert "Aggregated from" in answer.explanation
    assert answer.scores[0].label in {c.label for c in run.clusters}
    # the previews are in the collection already: their own clusters are where the votes go
    assert {i["nearest"] for i in answer.inputs} <= {c.label for c in run.clusters}


def test_an_unknown_model_id_is_a_clear_error(
    atlas_run: tuple[Atlas, ClusterRun], fake: FakeCivitai
) -> None:
    atlas, run = atlas_run
    with pytest.raises(CivitaiError, match="no CivitAI model with id 424242") as err:
        atlas.classify(run.id, civitai_model=424242)
    assert err.value.status == 404
    empty = next(m for m in fake.models if m.index == 8)  # a model without versions
    with pytest.raises(CivitaiError, match="lists no preview images"):
        atlas.classify(run.id, civitai_model=empty.id)


def test_recommendations_name_the_models_to_try_and_names_use_tags(
    atlas_run: tuple[Atlas, ClusterRun], fake: FakeCivitai
) -> None:
    atlas, run = atlas_run
    found = atlas.recommend("watercolor painting", run.id, top=2, items=3)
    assert [c["rank"] for c in found["clusters"]] == [1, 2]
    names = {m.id: m.name for m in fake.models}
    for cluster in found["clusters"]:
        assert cluster["models"], cluster
        for model in cluster["models"]:
            assert names[model["model_id"]] == model["model_name"] and model["images"] >= 1
        cosines = [m["cosine"] for m in cluster["models"]]
        assert cosines == sorted(cosines, reverse=True)
    tagged = [c for c in atlas.run(run.id).clusters if c.meta.get("tags")]
    assert tagged, "CivitAI tags should reach the cluster evidence"
    assert all(" · " in (c.name or "") for c in tagged)


def test_classify_a_model_from_the_command_line(
    atlas_run: tuple[Atlas, ClusterRun], fake: FakeCivitai
) -> None:
    atlas = atlas_run[0]
    home = atlas.settings.home
    env = {"CLIPATLAS_ALLOW_HOSTS": '["127.0.0.1"]', "CLIPATLAS_CIVITAI_BASE_URL": fake.base_url}
    model = richest(fake)
    out = run_cli(home, "classify", "--civitai-model", str(model.id), "-c", "loras", "--json",
                  env=env)  # fmt: skip
    assert json.loads(out.stdout)["subject"]["civitai_model"] == model.id
    missing = run_cli(
        home, "classify", "--civitai-model", "424242", "-c", "loras", check=1, env=env
    )
    assert "no CivitAI model with id 424242" in missing.stderr
