"""The style-atlas half of :class:`clipatlas.Atlas`: clustering runs, their map and names,
classifying new things against a run, prompt recommendations and later arrivals.

``Runs`` takes the collection's :class:`~clipatlas.engine.Engine`; the Atlas delegates
``atlas.cluster(...)``, ``atlas.classify(...)`` and friends here, and the logic lives in
:mod:`clipatlas.analysis.clustering`, :mod:`~clipatlas.analysis.style` and
:mod:`~clipatlas.analysis.probe`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from clipatlas.errors import ConfigError, RunNotFoundError
from clipatlas.progress import ProgressCallback

if TYPE_CHECKING:
    from clipatlas.analysis.clustering.classify import Classification
    from clipatlas.analysis.clustering.runs import CollectionRuns
    from clipatlas.analysis.run_map import RunMap
    from clipatlas.analysis.style import ArrivalReport
    from clipatlas.engine import Engine
    from clipatlas.store.runs import ClusterRun

__all__ = ["Runs"]


class Runs:
    """Clustering runs of one collection and everything read from them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _cluster_runs(self) -> CollectionRuns:
        from clipatlas.analysis.clustering.runs import collection_runs

        return collection_runs(self.engine)

    def cluster(
        self,
        method: str = "auto",
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

        ``method``: "auto" (the default: HDBSCAN when it finds clean, stable groups, else KMeans
        with automatic K; the winner and why are in ``run.explanation`` and
        ``run.metrics["method_choice"]``; with ``k`` given it is KMeans with that K), "kmeans"
        (``k`` or automatic K in ``k_range``), "dbscan" (cosine ``eps``, ``min_samples``) or
        "hdbscan" (``min_cluster_size``, ``min_samples``, on PCA-``pca_dims`` vectors of at most
        ``sample`` items). With ``name`` the clusters are named at once (:meth:`name_clusters`).
        Returns the stored run with its id; a run that fails (naming included) is not kept.
        """
        from clipatlas.analysis.clustering.runner import ClusterParams

        params = ClusterParams(
            method, k, (int(k_range[0]), int(k_range[1])), eps, min_samples,
            min_cluster_size, pca_dims, sample, seed,
        )  # fmt: skip
        self.engine.refresh_collection()
        runs = self._cluster_runs()
        run = runs.create(params, progress)
        if name:
            try:
                self.name_clusters(run.id)
            except BaseException:
                runs.discard(run.id)
                raise
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
                raise RunNotFoundError(
                    self.engine.name, None, "cluster it first (clipatlas cluster)"
                )
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

        e = self.engine
        return draw_run_map(e.store, e.collection, self.run(run_id), e.media_root,
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

        return cluster_names(self.engine, self.run(run_id), vocabulary=vocabulary,
                             templates=templates, force=force)  # fmt: skip

    def rename_cluster(self, run_id: int, label: int, name: str) -> dict[str, Any]:
        """Set a user's name for one cluster of a run."""
        from clipatlas.analysis.style import rename_cluster

        return rename_cluster(self.engine, self.run(run_id), label, name)

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
            probe = civitai_model_pictures(self.engine, civitai_model, images=images)
            pictures, names, subject, failed = (
                probe.pictures, probe.names, probe.subject, probe.failed,
            )  # fmt: skip
        elif url is not None:
            pictures, subject = [url_picture(self.engine, url)], {"url": url}
        else:
            assert image is not None
            shown = "<bytes>" if isinstance(image, bytes | Image.Image) else str(image)
            pictures, subject = [picture_from(self.engine, image)], {"image": shown}
        vectors = self.engine.embedder().embed_images(pictures)
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

        return recommend(self.engine, self.run(run_id), prompt, top=top, items=items)

    def assign_new(self, run_id: int | None = None) -> ArrivalReport:
        """Place items stored after a run on its clusters (no refit), with re-cluster advice."""
        from clipatlas.analysis.style import assign_new

        return assign_new(self.engine, self.run(run_id))

    def place_arrivals(self) -> dict[str, Any] | None:
        """After an ingest: :meth:`assign_new` on the newest run, as a dict (None: no run)."""
        return self.assign_new().as_dict() if self.runs() else None
