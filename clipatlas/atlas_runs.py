"""The style-atlas half of :class:`clipatlas.Atlas`: clustering runs, their map and names,
classifying new things against a run, prompt recommendations and later arrivals.

A mixin so that ``atlas.cluster(...)``, ``atlas.classify(...)`` and friends stay methods of
the one library object while the logic lives in :mod:`clipatlas.analysis`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PIL import Image

from clipatlas.errors import ConfigError, RunNotFoundError
from clipatlas.progress import ProgressCallback

if TYPE_CHECKING:
    from clipatlas.analysis.clustering.classify import Classification
    from clipatlas.analysis.clustering.runs import CollectionRuns
    from clipatlas.analysis.run_map import RunMap
    from clipatlas.analysis.style import ArrivalReport
    from clipatlas.atlas import Atlas
    from clipatlas.embedders.base import Embedder
    from clipatlas.fetch import Fetcher
    from clipatlas.index.exact import ExactIndex
    from clipatlas.settings import Settings
    from clipatlas.sources.base import Source
    from clipatlas.store.base import CollectionInfo
    from clipatlas.store.runs import ClusterRun
    from clipatlas.store.sql import SqlStore

__all__ = ["RunsMixin"]


class RunsMixin:
    """Clustering runs and everything read from them (mixed into :class:`clipatlas.Atlas`)."""

    if TYPE_CHECKING:
        name: str
        settings: Settings
        store: SqlStore
        collection: CollectionInfo
        directory: Path
        media_root: Path

        def embedder(self) -> Embedder: ...
        def index(self) -> ExactIndex: ...
        def fetcher(self) -> Fetcher: ...
        def source(self, kind: str, **options: Any) -> Source: ...

    def _atlas(self) -> Atlas:
        return cast("Atlas", self)

    def _cluster_runs(self) -> CollectionRuns:
        from clipatlas.analysis.clustering.runs import CollectionRuns

        return CollectionRuns(self.store, self.collection, self.directory / "runs")

    def cluster(
        self,
        method: str = "kmeans",
        *,
        k: int | None = None,
        k_range: tuple[int, int] = (2, 30),
        eps: float = 0.2,
        min_samples: int = 5,
        min_cluster_size: int = 10,
        pca_dims: int = 50,
        sample: int = 20_000,
        seed: int = 0,
        name: bool = True,
        progress: ProgressCallback | None = None,
    ) -> ClusterRun:
        """Cluster the searchable items and store the run (:mod:`clipatlas.analysis.clustering`).

        ``method``: "kmeans" (``k`` or automatic K in ``k_range``), "dbscan" (cosine ``eps``,
        ``min_samples``) or "hdbscan" (``min_cluster_size``, ``min_samples``, on PCA-``pca_dims``
        vectors of at most ``sample`` items). With ``name`` the clusters are named at once
        (:meth:`name_clusters`). Returns the stored run with its id.
        """
        from clipatlas.analysis.clustering.runner import ClusterParams

        params = ClusterParams(
            method, k, (int(k_range[0]), int(k_range[1])), eps, min_samples,
            min_cluster_size, pca_dims, sample, seed,
        )  # fmt: skip
        self.collection = self.store.get_collection(self.name)
        run = self._cluster_runs().create(params, progress)
        if name:
            self.name_clusters(run.id)
            run = self.run(run.id)
        return run

    def runs(self) -> list[dict[str, Any]]:
        """Summaries of this collection's clustering runs, newest first."""
        return self._cluster_runs().list()

    def run(self, run_id: int | None = None) -> ClusterRun:
        """A stored run (labels, clusters, centroids, metrics; the newest when ``run_id`` is
        None); RunNotFoundError if there is none."""
        if run_id is None:
            listed = self.runs()
            if not listed:
                raise RunNotFoundError(self.name, None, "cluster it first (clipatlas cluster)")
            run_id = int(listed[0]["id"])
        return self._cluster_runs().get(run_id)

    def map(
        self,
        run_id: int,
        *,
        sample: int = 50_000,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> RunMap:
        """Lay a run out in 2-D (PCA -> UMAP, fitted on ``sample`` items, the rest placed) and
        write its coordinates, an offline interactive HTML map and a PNG to the run's folder."""
        from clipatlas.analysis.run_map import draw_run_map  # umap/plotly load only here

        return draw_run_map(self.store, self.collection, self.run(run_id), self.media_root,
                            sample=sample, seed=seed, progress=progress)  # fmt: skip

    def eval_clusters(self, run_id: int, labels: Mapping[Any, Any]) -> dict[str, Any]:
        """ARI, NMI and purity of a run against ground truth (item id or source key -> label)."""
        return self._cluster_runs().evaluate(run_id, labels)

    # -- names ---------------------------------------------------------------------------

    def name_clusters(
        self,
        run_id: int | None = None,
        *,
        vocabulary: Sequence[str] | None = None,
        templates: Sequence[str] | None = None,
        force: bool = False,
    ) -> list[dict[str, Any]]:
        """Name a run's clusters: zero-shot style words (CLIP text tower against centroids,
        ``vocabulary`` defaults to a built-in list of art/photo styles) plus the members'
        distinctive tags. Names given by :meth:`rename_cluster` are kept unless ``force``."""
        from clipatlas.analysis.style import cluster_names

        return cluster_names(self._atlas(), self.run(run_id), vocabulary=vocabulary,
                             templates=templates, force=force)  # fmt: skip

    def rename_cluster(self, run_id: int, label: int, name: str) -> dict[str, Any]:
        """Set a user's name for one cluster of a run."""
        from clipatlas.analysis.style import rename_cluster

        return rename_cluster(self._atlas(), self.run(run_id), label, name)

    # -- classify, recommend, arrivals ---------------------------------------------------

    def classify(
        self,
        run_id: int | None = None,
        *,
        image: str | os.PathLike[str] | bytes | Image.Image | None = None,
        url: str | None = None,
        civitai_model: int | None = None,
        images: int = 8,
        top: int = 3,
    ) -> Classification:
        """Which cluster of a run (the newest by default) a new thing belongs to.

        Give exactly one of ``image`` (path, bytes or PIL image), ``url`` (fetched safely) or
        ``civitai_model`` (an id: up to ``images`` preview images, embedded and averaged). The
        answer has the nearest clusters with cosines, the margin to the runner-up, "unknown"
        when farther than the cluster's own members, and an explanation.
        """
        from clipatlas.analysis.clustering.classify import RunModel
        from clipatlas.analysis.probe import civitai_model_pictures, picture_from, url_picture

        given = [x is not None for x in (image, url, civitai_model)]
        if sum(given) != 1:
            raise ConfigError("classify needs exactly one of image, url or civitai_model")
        if top < 1 or images < 1:
            raise ConfigError("top and images must be at least 1")
        run = self.run(run_id)
        model = RunModel(run)  # checks the run has clusters before any download
        failed: list[dict[str, str]] = []
        names: list[str] | None = None
        if civitai_model is not None:
            probe = civitai_model_pictures(self._atlas(), civitai_model, images=images)
            pictures, names, subject, failed = (
                probe.pictures, probe.names, probe.subject, probe.failed,
            )  # fmt: skip
        elif url is not None:
            pictures, subject = [url_picture(self._atlas(), url)], {"url": url}
        else:
            assert image is not None
            shown = "<bytes>" if isinstance(image, bytes | Image.Image) else str(image)
            pictures, subject = [picture_from(self._atlas(), image)], {"image": shown}
        vectors = self.embedder().embed_images(pictures)
        if vectors.shape[1] != run.dim:
            raise ConfigError(f"the embedder gives {vectors.shape[1]}-d vectors, run has {run.dim}")
        answer = model.classify(vectors, top=top, subject=subject, input_names=names)
        if failed:
            answer.subject["failed_inputs"] = failed
        return answer

    def recommend(
        self, prompt: str, run_id: int | None = None, *, top: int = 3, items: int = 5
    ) -> dict[str, Any]:
        """The clusters of a run that best fit a text prompt, each with its name, cosine, the
        members nearest the prompt and (with CivitAI provenance) the models to try."""
        from clipatlas.analysis.style import recommend

        return recommend(self._atlas(), self.run(run_id), prompt, top=top, items=items)

    def assign_new(self, run_id: int | None = None) -> ArrivalReport:
        """Place items stored after a run on its clusters (no refit), with re-cluster advice."""
        from clipatlas.analysis.style import assign_new

        return assign_new(self._atlas(), self.run(run_id))
