"""Stored clustering runs: persistence (SQLite and PostgreSQL), evaluation, typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text, update

from clipatlas import Atlas
from clipatlas.analysis.clustering import density
from clipatlas.analysis.clustering.synthetic import Synthetic, make_groups
from clipatlas.errors import (
    ClusterParameterError,
    EmptyCollectionError,
    GroundTruthError,
    MixedEmbeddersError,
    RunNotFoundError,
    TooFewItemsError,
    TooManyItemsError,
)
from clipatlas.settings import Settings
from clipatlas.store.schema import SCHEMA_VERSION, embeddings
from tests.test_cluster_quality import load_synthetic


def _data(groups: int = 4) -> Synthetic:
    return make_groups(groups, dim=32, sizes=(20, 40), spread=0.05, noise_share=0.0, seed=3)


def _small(settings: Settings, tmp_path: Path, name: str = "small", groups: int = 4) -> Atlas:
    atlas = Atlas.open(name, settings=settings)
    load_synthetic(atlas, _data(groups), tmp_path / name)
    return atlas


def test_runs_persist_across_reopening_the_collection(settings: Settings, tmp_path: Path) -> None:
    with _small(settings, tmp_path) as atlas:
        first = atlas.cluster("kmeans", k=4)
        second = atlas.cluster("hdbscan", min_cluster_size=8)
    with Atlas.open("small", settings=settings, create=False) as atlas:
        listed = atlas.runs()
        again = atlas.run(first.id)
    assert [r["id"] for r in listed] == [second.id, first.id]
    assert listed[1]["method"] == "kmeans" and listed[1]["clusters"] == 4
    assert listed[1]["params"]["k"] == 4 and listed[1]["embedder"] == "synth:64"
    np.testing.assert_array_equal(again.item_ids, first.item_ids)
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_allclose(again.centroids()[1], first.centroids()[1])
    assert [c.as_dict() for c in again.clusters] == [c.as_dict() for c in first.clusters]
    assert again.metrics == first.metrics and again.explanation == first.explanation


def test_eval_clusters_takes_source_keys_or_item_ids_and_scores_noise_as_a_group(
    settings: Settings, tmp_path: Path
) -> None:
    data = _data()
    with _small(settings, tmp_path) as atlas:
        run = atlas.cluster("kmeans", k=4)
        by_key = dict(zip(data.keys, data.labels, strict=True))
        perfect = atlas.eval_clusters(run.id, by_key)
        assert perfect["run"] == run.id and perfect["n"] == len(data.keys)
        assert (perfect["ari"], perfect["nmi"], perfect["purity"]) == (1.0, 1.0, 1.0)
        ids = atlas.store.find_items(atlas.collection, source_keys=data.keys)
        by_id = {ids[k]: "same" for k in data.keys[:50]}
        lumped = atlas.eval_clusters(run.id, {**by_id, "not-an-item": "x"})
        assert lumped["n"] == 50 and lumped["unmatched"] == 1 and lumped["ari"] == 0.0
        with pytest.raises(GroundTruthError):
            atlas.eval_clusters(run.id, {"nothing-here": "x"})


def test_an_empty_collection_cannot_be_clustered(settings: Settings) -> None:
    with Atlas.open("empty", settings=settings) as atlas, pytest.raises(EmptyCollectionError):
        atlas.cluster()


def test_fewer_items_than_k_or_the_minimum_cluster_size_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    with _small(settings, tmp_path, groups=1) as atlas:
        n = atlas.stats().vectors
        with pytest.raises(TooFewItemsError, match=f"k={n + 1}"):
            atlas.cluster("kmeans", k=n + 1)
        with pytest.raises(TooFewItemsError, match="min_cluster_size"):
            atlas.cluster("hdbscan", min_cluster_size=n + 1)
        with pytest.raises(TooFewItemsError):
            atlas.cluster("dbscan", min_samples=n + 1)


def test_a_collection_holding_vectors_of_two_embedders_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    with _small(settings, tmp_path) as atlas:
        with atlas.store.engine.begin() as conn:  # e.g. a database written before the guard
            first = int(atlas.store.load_vectors(atlas.collection)[0][0])
            conn.execute(
                update(embeddings)
                .where(embeddings.c.item_id == first)
                .values(embedder_id="other:64")
            )
        with pytest.raises(MixedEmbeddersError) as err:
            atlas.cluster("kmeans", k=2)
    assert err.value.embedder_ids == ["other:64", "synth:64"]


def test_an_unknown_run_id_raises_run_not_found(settings: Settings, tmp_path: Path) -> None:
    with _small(settings, tmp_path) as atlas, pytest.raises(RunNotFoundError, match="run 99"):
        atlas.run(99)
    with Atlas.open("other", settings=settings) as other, pytest.raises(RunNotFoundError):
        other.eval_clusters(1, {"x": "y"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "spectral"},
        {"k": 1},
        {"k_range": (5, 3)},
        {"k_range": (1, 4)},
        {"method": "dbscan", "eps": 0.0},
        {"method": "dbscan", "min_samples": 0},
        {"method": "hdbscan", "min_cluster_size": 1},
        {"method": "hdbscan", "pca_dims": 1},
        {"sample": 10},
    ],
)
def test_bad_parameters_raise_a_cluster_parameter_error(
    settings: Settings, tmp_path: Path, kwargs: dict[str, object]
) -> None:
    with _small(settings, tmp_path) as atlas, pytest.raises(ClusterParameterError):
        atlas.cluster(**kwargs)  # type: ignore[arg-type]


def test_dbscan_refuses_more_items_than_its_limit_and_suggests_hdbscan(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(density, "DBSCAN_MAX_ITEMS", 50)
    with _small(settings, tmp_path) as atlas, pytest.raises(TooManyItemsError, match="hdbscan"):
        atlas.cluster("dbscan")


@pytest.mark.postgres
def test_clustering_runs_are_stored_and_read_back_on_postgresql(
    settings: Settings, postgres_url: str, tmp_path: Path
) -> None:
    pg = settings.model_copy(update={"database_url": postgres_url})
    with _small(pg, tmp_path, name="pgc") as atlas:
        run = atlas.cluster("kmeans")
    with Atlas.open("pgc", settings=pg, create=False) as atlas:
        again = atlas.run(run.id)
        listed = atlas.runs()
    assert again.selection is not None and again.selection.chosen_k == 4
    np.testing.assert_array_equal(again.labels, run.labels)
    assert listed[0]["id"] == run.id and atlas.store.dialect == "postgresql"


def test_a_version_1_database_gains_the_run_tables_when_opened(
    settings: Settings, tmp_path: Path
) -> None:
    with _small(settings, tmp_path) as atlas, atlas.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE cluster_assignments"))
        conn.execute(text("DROP TABLE clusters"))
        conn.execute(text("DROP TABLE cluster_runs"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    with Atlas.open("small", settings=settings, create=False) as atlas:
        assert atlas.runs() == [] and atlas.cluster("kmeans", k=4).n_clusters == 4
        with atlas.store.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT version FROM schema_version")).scalar_one()
                == SCHEMA_VERSION
            )
