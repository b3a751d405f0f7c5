"""The clustering runs of one collection: create (check, fit, store, save curves), list, read,
evaluate. :class:`clipatlas.analysis.runs.Runs` (behind ``atlas.cluster``/``runs``/``run``/
``eval_clusters``) works through it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipatlas.errors import (
    EmptyCollectionError,
    GroundTruthError,
    MixedEmbeddersError,
    RunNotFoundError,
)
from clipatlas.progress import ProgressCallback
from clipatlas.store.base import CollectionInfo
from clipatlas.store.runs import ClusterRun, RunStore
from clipatlas.store.sql import SqlStore

if TYPE_CHECKING:
    from clipatlas.analysis.clustering.runner import ClusterParams
    from clipatlas.engine import Engine

__all__ = ["CollectionRuns", "collection_runs"]


class CollectionRuns:
    """Clustering runs of ``collection``; artefacts go to ``directory/<run id>/``."""

    def __init__(self, store: SqlStore, collection: CollectionInfo, directory: Path) -> None:
        self.store, self.collection, self.directory = store, collection, directory
        self.runs = RunStore(store.engine)

    def create(self, params: ClusterParams, progress: ProgressCallback | None) -> ClusterRun:
        # scikit-learn / FAISS load here, not when runs are only listed (every ingest does)
        from clipatlas.analysis.clustering.runner import cluster_vectors, write_artifacts

        name = self.collection.name
        embedders = self.runs.embedder_ids(self.collection)
        if len(embedders) > 1:
            raise MixedEmbeddersError(name, embedders)
        version = self.runs.collection_version(self.collection)
        ids, matrix = self.store.load_vectors(self.collection)
        if not len(ids):
            raise EmptyCollectionError(name)
        checked = params.check(name, len(ids))
        started = time.perf_counter()
        fitted = cluster_vectors(ids, matrix, checked, progress)
        run = ClusterRun(
            id=0,
            collection=name,
            method=fitted.method,
            params=checked.as_dict(),
            embedder_id=embedders[0] if embedders else str(self.collection.embedder_id),
            dim=int(matrix.shape[1]),
            item_ids=ids,
            labels=fitted.labels,
            clusters=fitted.clusters,
            metrics=fitted.metrics,
            selection=fitted.selection,
            explanation=fitted.explanation,
            seconds=time.perf_counter() - started,
            created_at=time.time(),
            collection_version=version,
        )
        run_id = self.runs.save(self.collection, run)
        run = replace(run, id=run_id, directory=str(self.directory / str(run_id)))
        write_artifacts(run, self.directory / str(run_id))
        return run

    def discard(self, run_id: int) -> None:
        """Remove a run that could not be finished (e.g. naming failed) and its folder."""
        import shutil

        self.runs.delete(self.collection, run_id)
        shutil.rmtree(self.directory / str(run_id), ignore_errors=True)

    def list(self) -> list[dict[str, Any]]:
        return self.runs.list(self.collection)

    def get(self, run_id: int) -> ClusterRun:
        run = self.runs.get(self.collection, run_id)
        if run is None:
            raise RunNotFoundError(self.collection.name, run_id)
        # the run's folder (curves, map) is created by whatever writes there first
        return replace(run, directory=str(self.directory / str(run_id)))

    def evaluate(self, run_id: int, labels: Mapping[str | int, Any]) -> dict[str, Any]:
        """ARI/NMI/purity of run ``run_id`` against ``labels`` (item id or source key -> label).

        Integer keys (and digit strings that are not a stored source key) are item ids.
        """
        from clipatlas.analysis.clustering.evaluate import align, score_labels

        run = self.get(run_id)
        if not labels:
            raise GroundTruthError("<mapping>", "no labels given")
        text_keys = [k for k in labels if isinstance(k, str)]
        by_key = self.store.find_items(self.collection, source_keys=text_keys)
        truth: dict[int, str] = {}
        for key, label in labels.items():
            if isinstance(key, str) and key in by_key:
                truth[by_key[key]] = str(label)
            elif isinstance(key, int) or key.lstrip("-").isdigit():
                truth[int(key)] = str(label)
        scores = score_labels(*align(run.label_of(), truth))
        return {"run": run_id, **scores, "unmatched": len(labels) - scores["n"]}


def collection_runs(engine: Engine) -> CollectionRuns:
    """The runs of the engine's collection, their artefacts in its ``runs/`` folder."""
    return CollectionRuns(engine.store, engine.collection, engine.directory / "runs")
