"""What the style atlas says (issue 22): a lead is "clear" only when the margin is large and
the previews agree; tags on every model never name a cluster; counts are never "1 images"."""

from __future__ import annotations

import numpy as np

from clipatlas.analysis.clustering.classify import CLEAR_LEAD, RunModel, lead_verdict
from clipatlas.analysis.clustering.kmeans import normalise
from clipatlas.analysis.clustering.naming import distinctive_tags, name_clusters
from clipatlas.store.runs import Cluster, ClusterRun
from clipatlas.wording import counted


def _run(centroids: np.ndarray, sizes: list[int]) -> ClusterRun:
    clusters = [
        Cluster(label, size, None, 0.9, 0.1, centroid, meta={"cos_threshold": -1.0})
        for label, (size, centroid) in enumerate(zip(sizes, centroids, strict=True))
    ]
    labels = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    return ClusterRun(
        id=1, collection="c", method="kmeans", params={}, embedder_id="fake:4",
        dim=centroids.shape[1], item_ids=np.arange(len(labels), dtype=np.int64), labels=labels,
        clusters=clusters, metrics={}, selection=None, explanation="", seconds=0.0,
        created_at=0.0,
    )  # fmt: skip


def test_a_small_margin_that_most_previews_vote_against_is_not_called_a_clear_lead() -> None:
    # the case: margin 0.026, only 2 of 6 previews alone nearest the winner
    centroids = normalise(np.asarray([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    model = RunModel(_run(centroids, [30, 30]))
    votes_b = normalise(np.asarray([[0.5, 1.04, 0.0, 0.0]] * 4))
    votes_a = normalise(np.asarray([[1.0, 0.0, 0.0, 0.0]] * 2))
    answer = model.classify(np.vstack([votes_b, votes_a]))
    assert answer.label == 0 and answer.margin is not None and 0.02 < answer.margin < CLEAR_LEAD
    text = answer.explanation
    assert "clear lead" not in text and "uncertain" in text and "4 of 6 inputs" in text
    assert "2 of 6 alone are nearest to cluster 0" in text
    assert lead_verdict(0.026, 2, 6).startswith("a narrow lead of the mean vector only")
    assert lead_verdict(0.01, 6, 6) == "a close call"
    assert lead_verdict(0.03, 5, 6) == "a narrow lead"
    assert lead_verdict(0.12, 5, 6) == lead_verdict(0.12, 0, 0) == "a clear lead"
    assert "uncertain" in lead_verdict(0.12, 3, 6)  # half the previews elsewhere: not clear


def test_one_image_and_one_member_are_counted_in_the_singular() -> None:
    centroids = normalise(np.asarray([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    answer = RunModel(_run(centroids, [1, 3])).classify(np.asarray([[1.0, 0.0, 0.0, 0.0]]))
    assert "its only member is at cosine" in answer.explanation
    assert (counted(1, "image"), counted(2, "image"), counted(0, "item")) == (
        "1 image",
        "2 images",
        "0 items",
    )
    assert counted(1, "query", "queries") == "1 query" and counted(3, "query", "queries") == (
        "3 queries"
    )


def test_a_tag_on_every_model_names_no_cluster_and_distinctive_tags_still_do() -> None:
    def metas(tag: str, first: int) -> list[dict[str, object]]:
        return [{"model_id": first + i, "tags": ["style", tag]} for i in range(5)]

    tags = distinctive_tags({0: metas("anime", 0), 1: metas("photo", 10), 2: metas("ink", 20)})
    assert [[t["tag"] for t in tags[label]] for label in (0, 1, 2)] == [
        ["anime"],
        ["photo"],
        ["ink"],
    ]
    # with a single cluster there is nothing to tell apart: its tags may name it
    assert {t["tag"] for t in distinctive_tags({0: metas("anime", 0)})[0]} == {"style", "anime"}
    centroids = normalise(np.eye(3, 4))
    run = _run(centroids, [5, 5, 5])
    names = name_clusters(
        run, {0: metas("anime", 0), 1: metas("photo", 10), 2: metas("ink", 20)}, embed=None
    )
    assert [n.name for n in names] == ["anime", "photo", "ink"]
