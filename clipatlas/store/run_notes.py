"""What is written onto a run after it was fitted: cluster names and evidence, and the
assignment of items that arrived later (``cluster_assignments``, label -1 = unknown).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from clipatlas.store.runs import NOISE
from clipatlas.store.schema import cluster_assignments, clusters
from clipatlas.store.sql import transaction

__all__ = ["Assignment", "RunNotes"]


@dataclass(frozen=True)
class Assignment:
    """One later item placed on a run without refitting."""

    item_id: int
    label: int  # -1 = unknown (farther than the nearest cluster's own members)
    nearest: int
    cosine: float
    margin: float


class RunNotes:
    """Names and arrival assignments of the runs of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine)

    def set_cluster(
        self,
        run_id: int,
        label: int,
        *,
        name: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        """Set the name and/or merge ``meta`` keys into one cluster; False if it is unknown."""
        with self._tx() as conn:
            row = conn.execute(
                select(clusters.c.meta).where(
                    clusters.c.run_id == run_id, clusters.c.label == label
                )
            ).first()
            if row is None:
                return False
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if meta:
                values["meta"] = {**dict(row.meta or {}), **dict(meta)}
            if values:
                conn.execute(
                    update(clusters)
                    .where(clusters.c.run_id == run_id, clusters.c.label == label)
                    .values(**values)
                )
        return True

    def save_assignments(self, run_id: int, rows: Sequence[Assignment]) -> None:
        """Insert (or replace) assignments, in chunks, in one transaction."""
        if not rows:
            return
        now = time.time()
        ids = [r.item_id for r in rows]
        with self._tx() as conn:
            for start in range(0, len(ids), 1000):
                conn.execute(
                    delete(cluster_assignments).where(
                        cluster_assignments.c.run_id == run_id,
                        cluster_assignments.c.item_id.in_(ids[start : start + 1000]),
                    )
                )
            payload = [
                {
                    "run_id": run_id,
                    "item_id": r.item_id,
                    "label": r.label,
                    "nearest": r.nearest,
                    "cosine": r.cosine,
                    "margin": r.margin,
                    "created_at": now,
                }
                for r in rows
            ]
            for start in range(0, len(payload), 1000):
                conn.execute(insert(cluster_assignments), payload[start : start + 1000])

    def assigned_ids(self, run_id: int) -> np.ndarray:
        """Item ids already assigned to ``run_id`` (int64, sorted)."""
        with self._tx() as conn:
            found = conn.execute(
                select(cluster_assignments.c.item_id).where(cluster_assignments.c.run_id == run_id)
            ).scalars()
            return np.sort(np.fromiter(found, dtype=np.int64))

    def assignments(self, run_id: int) -> list[Assignment]:
        with self._tx() as conn:
            rows = conn.execute(
                select(cluster_assignments)
                .where(cluster_assignments.c.run_id == run_id)
                .order_by(cluster_assignments.c.item_id)
            ).all()
        return [Assignment(r.item_id, r.label, r.nearest, r.cosine, r.margin) for r in rows]

    def counts(self, run_id: int) -> dict[int, int]:
        """Assigned items per label (-1 = unknown)."""
        with self._tx() as conn:
            rows = conn.execute(
                select(cluster_assignments.c.label, func.count())
                .where(cluster_assignments.c.run_id == run_id)
                .group_by(cluster_assignments.c.label)
            ).all()
        return {int(label): int(n) for label, n in rows}

    def unknown_share(self, run_id: int) -> tuple[int, float]:
        """(number of assigned items, share of them that are unknown)."""
        counts = self.counts(run_id)
        total = sum(counts.values())
        return total, (counts.get(NOISE, 0) / total if total else 0.0)
