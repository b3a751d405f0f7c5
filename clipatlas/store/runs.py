"""Clustering runs in the database: the records and the :class:`RunStore` that keeps them.

A run is addressed by its id within a collection. It keeps the item set it saw (item ids and
one label each, -1 = noise), one :class:`Cluster` row per cluster (centroid, medoid, size,
cohesion, separation, and a ``name`` that naming/renaming fill in later) and the metrics and
auto-K curves that explain it. Arrays are stored as little-endian bytes, so SQLite and
PostgreSQL hold the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, insert, select

from clipatlas.store.base import CollectionInfo
from clipatlas.store.schema import (
    cluster_assignments,
    cluster_runs,
    clusters,
    collections,
    embeddings,
    items,
)
from clipatlas.store.sql import transaction

__all__ = ["NOISE", "Cluster", "ClusterRun", "KSelection", "RunStore"]

NOISE = -1


@dataclass(frozen=True)
class Cluster:
    """One cluster of a run (``label == -1`` is the noise group: no centroid or medoid)."""

    label: int
    size: int
    medoid_id: int | None
    cohesion: float | None  # mean cosine of members to the centroid
    separation: float | None  # cosine to the nearest other centroid (lower = better separated)
    centroid: np.ndarray | None
    name: str | None = None
    # calibration and naming: "cos_threshold" (members' low-percentile cosine to the centroid),
    # "representatives" (item ids nearest the centroid), "terms"/"tags" (naming evidence),
    # "named_by" ("auto" or "user")
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "medoid_id": self.medoid_id,
            "cohesion": self.cohesion,
            "separation": self.separation,
            "name": self.name,
            "cos_threshold": self.meta.get("cos_threshold"),
            "representatives": self.meta.get("representatives", []),
            "terms": self.meta.get("terms", []),
            "tags": self.meta.get("tags", []),
            "named_by": self.meta.get("named_by"),
        }


@dataclass(frozen=True)
class KSelection:
    """How automatic K was chosen: one curve value per K and the rule's verdict."""

    ks: list[int]
    inertia: list[float]
    silhouette: list[float]
    davies_bouldin: list[float]
    elbow_k: int
    silhouette_k: int
    davies_bouldin_k: int
    chosen_k: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KSelection:
        return cls(**dict(data))


@dataclass(frozen=True)
class ClusterRun:
    """A stored clustering run: parameters, assignment, clusters, metrics, explanation."""

    id: int
    collection: str
    method: str
    params: dict[str, Any]
    embedder_id: str
    dim: int
    item_ids: np.ndarray  # int64
    labels: np.ndarray  # int32, -1 = noise, aligned with item_ids
    clusters: list[Cluster]
    metrics: dict[str, Any]
    selection: KSelection | None
    explanation: str
    seconds: float
    created_at: float
    collection_version: int = 0
    directory: str | None = None  # runs/<id>/ under the collection dir (curves, plots)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return sum(1 for c in self.clusters if c.label != NOISE)

    @property
    def n_noise(self) -> int:
        return int(np.count_nonzero(self.labels == NOISE))

    def centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels int32, float32 matrix of L2-normalised centroids), noise excluded."""
        real = [c for c in self.clusters if c.centroid is not None]
        labels = np.asarray([c.label for c in real], dtype=np.int32)
        if not real:
            return labels, np.zeros((0, self.dim), np.float32)
        return labels, np.vstack([c.centroid for c in real if c.centroid is not None])

    def label_of(self) -> dict[int, int]:
        """Item id -> label."""
        return {int(i): int(lab) for i, lab in zip(self.item_ids, self.labels, strict=True)}

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "method": self.method,
            "params": self.params,
            "embedder": self.embedder_id,
            "items": len(self.item_ids),
            "clusters": self.n_clusters,
            "noise": self.n_noise,
            "metrics": self.metrics,
            "seconds": round(self.seconds, 3),
            "created_at": self.created_at,
        }

    def as_dict(self, *, labels: bool = False) -> dict[str, Any]:
        out = {
            **self.summary(),
            "chosen_k": self.selection.chosen_k if self.selection else None,
            "method_choice": self.metrics.get("method_choice"),  # method "auto": who won, why
            "selection": self.selection.as_dict() if self.selection else None,
            "explanation": self.explanation,
            "directory": self.directory,
            "cluster_stats": [c.as_dict() for c in self.clusters],
        }
        if labels:
            out["labels"] = self.label_of()
        return out


def _blob(array: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def _array(data: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class RunStore:
    """Clustering runs of one database (shares the engine of the :class:`SqlStore`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine)

    def embedder_ids(self, collection: CollectionInfo) -> list[str]:
        """Distinct embedder ids among the vectors of the collection's stored items."""
        q = (
            select(embeddings.c.embedder_id)
            .join(items, embeddings.c.item_id == items.c.id)
            .where(items.c.collection_id == collection.id, items.c.status == "ok")
            .distinct()
        )
        with self._tx() as conn:
            return sorted(str(r[0]) for r in conn.execute(q))

    def collection_version(self, collection: CollectionInfo) -> int:
        with self._tx() as conn:
            value = conn.execute(
                select(collections.c.version).where(collections.c.id == collection.id)
            ).scalar_one()
        return int(value)

    def save(self, collection: CollectionInfo, run: ClusterRun) -> int:
        """Insert ``run`` (its ``id`` is ignored) and its clusters in one transaction."""
        with self._tx() as conn:
            key = conn.execute(
                insert(cluster_runs).values(
                    collection_id=collection.id,
                    method=run.method,
                    params=run.params,
                    embedder_id=run.embedder_id,
                    dim=run.dim,
                    n_items=len(run.item_ids),
                    n_clusters=run.n_clusters,
                    n_noise=run.n_noise,
                    collection_version=run.collection_version,
                    item_ids=_blob(run.item_ids, "int64"),
                    labels=_blob(run.labels, "int32"),
                    metrics=run.metrics,
                    selection=run.selection.as_dict() if run.selection else None,
                    explanation=run.explanation,
                    seconds=run.seconds,
                    created_at=run.created_at or time.time(),
                )
            ).inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            rows: list[dict[str, Any]] = [
                {
                    "run_id": run_id,
                    "label": c.label,
                    "size": c.size,
                    "medoid_id": c.medoid_id,
                    "cohesion": c.cohesion,
                    "separation": c.separation,
                    "centroid": None if c.centroid is None else _blob(c.centroid, "float32"),
                    "name": c.name,
                    "meta": c.meta,
                }
                for c in run.clusters
            ]
            for start in range(0, len(rows), 1000):
                conn.execute(insert(clusters), rows[start : start + 1000])
        return run_id

    def delete(self, collection: CollectionInfo, run_id: int) -> bool:
        """Remove run ``run_id`` with its clusters and assignments; False if there is none."""
        with self._tx() as conn:
            found = conn.execute(
                select(cluster_runs.c.id).where(
                    cluster_runs.c.id == run_id, cluster_runs.c.collection_id == collection.id
                )
            ).first()
            if found is None:
                return False
            conn.execute(delete(cluster_assignments).where(cluster_assignments.c.run_id == run_id))
            conn.execute(delete(clusters).where(clusters.c.run_id == run_id))
            conn.execute(delete(cluster_runs).where(cluster_runs.c.id == run_id))
        return True

    def list(self, collection: CollectionInfo) -> list[dict[str, Any]]:
        """Summaries of the collection's runs, newest first (no per-item arrays)."""
        q = (
            select(
                cluster_runs.c.id,
                cluster_runs.c.method,
                cluster_runs.c.params,
                cluster_runs.c.embedder_id,
                cluster_runs.c.n_items,
                cluster_runs.c.n_clusters,
                cluster_runs.c.n_noise,
                cluster_runs.c.metrics,
                cluster_runs.c.seconds,
                cluster_runs.c.created_at,
            )
            .where(cluster_runs.c.collection_id == collection.id)
            .order_by(cluster_runs.c.id.desc())
        )
        with self._tx() as conn:
            rows = conn.execute(q).all()
        return [
            {
                "id": r.id,
                "collection": collection.name,
                "method": r.method,
                "params": r.params,
                "embedder": r.embedder_id,
                "items": r.n_items,
                "clusters": r.n_clusters,
                "noise": r.n_noise,
                "metrics": r.metrics,
                "seconds": round(float(r.seconds), 3),
                "created_at": r.created_at,
            }
            for r in rows
        ]

    def get(self, collection: CollectionInfo, run_id: int) -> ClusterRun | None:
        with self._tx() as conn:
            row = conn.execute(
                select(cluster_runs).where(
                    cluster_runs.c.id == run_id, cluster_runs.c.collection_id == collection.id
                )
            ).first()
            if row is None:
                return None
            crow = conn.execute(
                select(clusters).where(clusters.c.run_id == run_id).order_by(clusters.c.label)
            ).all()
        found = [
            Cluster(
                label=c.label,
                size=c.size,
                medoid_id=c.medoid_id,
                cohesion=c.cohesion,
                separation=c.separation,
                centroid=None if c.centroid is None else _array(c.centroid, "float32"),
                name=c.name,
                meta=dict(c.meta or {}),
            )
            for c in crow
        ]
        return ClusterRun(
            id=row.id,
            collection=collection.name,
            method=row.method,
            params=dict(row.params),
            embedder_id=row.embedder_id,
            dim=row.dim,
            item_ids=_array(row.item_ids, "int64"),
            labels=_array(row.labels, "int32"),
            clusters=found,
            metrics=dict(row.metrics),
            selection=KSelection.from_dict(row.selection) if row.selection else None,
            explanation=row.explanation,
            seconds=float(row.seconds),
            created_at=float(row.created_at),
            collection_version=int(row.collection_version),
        )
