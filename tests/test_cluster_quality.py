"""Clustering recovers known groups (the "Done means" of issue 4, clustering part).

Ground truth: 20 well-separated groups of 15..120 items in 64-d plus 5 % uniform noise,
loaded through ``import_embeddings``. KMeans assigns every item (it has no noise), so its ARI is
measured on the grouped items only; HDBSCAN and DBSCAN are measured on all items, noise
counted as one group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clipatlas import Atlas
from clipatlas.analysis.clustering.synthetic import Synthetic, make_groups
from clipatlas.settings import Settings
from clipatlas.store.base import NewItem


def load_synthetic(atlas: Atlas, data: Synthetic, folder: Path, embedder: str = "synth:64") -> None:
    """Store one item per vector (no pictures needed) and import the vectors by source key."""
    atlas.store.write_batch(
        atlas.collection,
        [NewItem(source="synthetic", source_key=k, uri=k, sha256=f"{i:064x}")
         for i, k in enumerate(data.keys)],
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "v.npy", data.vectors)
    (folder / "ids.txt").write_text("\n".join(data.keys) + "\n")
    atlas.import_embeddings(folder / "v.npy", folder / "ids.txt", embedder_id=embedder)


def truth_of(atlas: Atlas, data: Synthetic, item_ids: np.ndarray) -> np.ndarray:
    by_key = atlas.store.find_items(atlas.collection, source_keys=data.keys)
    label_of = {by_key[k]: lab for k, lab in zip(data.keys, data.labels, strict=True)}
    return np.asarray([label_of[int(i)] for i in item_ids])


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> tuple[Atlas, Synthetic]:
    base = tmp_path_factory.mktemp("groups")
    settings = Settings(home=base / "home", model="fake:64", workers=-1, database_url=None)
    data = make_groups(20, dim=64, sizes=(15, 120), spread=0.07, noise_share=0.05, seed=0)
    atlas = Atlas.open("groups", settings=settings)
    load_synthetic(atlas, data, base / "vectors")
    yield atlas, data
    atlas.close()


def test_automatic_k_finds_about_twenty_groups_and_kmeans_reaches_ari_0_9_on_grouped_items(
    groups: tuple[Atlas, Synthetic],
) -> None:
    atlas, data = groups
    run = atlas.cluster("kmeans")
    # KMeans has no noise label: the 5 % uniform noise may take a few clusters of its own
    assert run.selection is not None and 18 <= run.selection.chosen_k == run.n_clusters <= 24
    truth = truth_of(atlas, data, run.item_ids)
    grouped = truth != "noise"
    assert adjusted_rand_score(truth[grouped], run.labels[grouped]) >= 0.9
    assert atlas.eval_clusters(run.id, dict(zip(data.keys, data.labels, strict=True)))["n"] == len(
        data.keys
    )


def test_automatic_k_explains_its_choice_and_saves_the_curves_next_to_the_run(
    groups: tuple[Atlas, Synthetic],
) -> None:
    atlas, _ = groups
    run = atlas.cluster("kmeans", k_range=(10, 25))
    sel = run.selection
    assert sel is not None and sel.ks == list(range(10, 26))
    assert len(sel.inertia) == len(sel.silhouette) == len(sel.davies_bouldin) == 16
    assert sel.inertia[0] > sel.inertia[-1] > 0
    assert f"K={sel.chosen_k}" in run.explanation and "silhouette" in sel.reason
    assert {sel.elbow_k, sel.silhouette_k, sel.davies_bouldin_k} <= set(sel.ks)
    curves = json.loads((Path(run.directory or "") / "curves.json").read_text())
    assert curves["chosen_k"] == sel.chosen_k and curves["ks"] == sel.ks


def test_hdbscan_recovers_the_groups_and_reports_the_uniform_noise_as_its_own_group(
    groups: tuple[Atlas, Synthetic],
) -> None:
    atlas, data = groups
    run = atlas.cluster("hdbscan", min_cluster_size=10)
    scores = atlas.eval_clusters(run.id, dict(zip(data.keys, data.labels, strict=True)))
    assert scores["ari"] >= 0.9 and run.n_clusters == 20
    noise = [c for c in run.clusters if c.label == -1]
    assert noise and noise[0].size == run.n_noise >= 0.8 * data.labels.count("noise")
    assert noise[0].centroid is None and noise[0].medoid_id is None


def test_hdbscan_fitted_on_a_sample_assigns_the_other_items_to_the_nearest_cluster(
    groups: tuple[Atlas, Synthetic],
) -> None:
    atlas, data = groups
    run = atlas.cluster("hdbscan", min_cluster_size=5, min_samples=3, sample=700)
    assert "700 of" in run.explanation and "nearest centroid" in run.explanation
    truth = truth_of(atlas, data, run.item_ids)
    assert adjusted_rand_score(truth, run.labels) >= 0.8


def test_dbscan_with_a_suitable_eps_recovers_the_groups(groups: tuple[Atlas, Synthetic]) -> None:
    atlas, data = groups
    run = atlas.cluster("dbscan", eps=0.3, min_samples=5)
    truth = truth_of(atlas, data, run.item_ids)
    assert adjusted_rand_score(truth, run.labels) >= 0.95 and run.n_clusters == 20


def test_centroids_are_unit_vectors_and_medoids_are_the_members_nearest_them(
    groups: tuple[Atlas, Synthetic],
) -> None:
    atlas, _ = groups
    run = atlas.cluster("kmeans", k=20)
    labels, centroids = run.centroids()
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    ids, matrix = atlas.store.load_vectors(atlas.collection)
    row_of = {int(i): r for r, i in enumerate(ids)}
    for c, centroid in zip(run.clusters, centroids, strict=True):
        members = run.item_ids[run.labels == c.label]
        cos = matrix[[row_of[int(i)] for i in members]] @ centroid
        assert c.medoid_id == int(members[int(np.argmax(cos))]) and c.size == len(members)
        assert c.cohesion == pytest.approx(float(cos.mean()), abs=1e-4)
        assert c.separation is not None and c.separation < c.cohesion
    assert list(labels) == sorted(labels) and [c.size for c in run.clusters] == sorted(
        (c.size for c in run.clusters), reverse=True
    )
    assert run.metrics["silhouette"] > 0.5 and run.metrics["davies_bouldin"] > 0
