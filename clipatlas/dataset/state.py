"""A build's state in the collection's database: its row, its listing, its outcomes.

Everything a resumed build needs is here: the listing the source gave (so the search API is
not asked again and no picture is fetched twice: ingest skips what it already stored), and
for each candidate the stage that dropped or kept it, why, and its scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from clipatlas.sources.base import Candidate
from clipatlas.store.base import CollectionInfo
from clipatlas.store.dataset_tables import dataset_builds, dataset_candidates
from clipatlas.store.sql import SqlStore, transaction

__all__ = ["BuildState", "CandidateRow", "Outcome"]


@dataclass
class CandidateRow:
    position: int
    candidate: Candidate


@dataclass
class Outcome:
    """The fate of one candidate: ``kept`` or ``dropped`` at ``stage`` for ``reason``."""

    position: int
    item_id: int | None
    outcome: str
    stage: str
    reason: str | None = None
    detail: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    file: str | None = None


class BuildState:
    """The row of one build (collection + output folder) and its candidates."""

    def __init__(self, store: SqlStore, build_id: int, listed: bool) -> None:
        self.store, self.id, self.listed = store, build_id, listed

    @classmethod
    def open(
        cls,
        store: SqlStore,
        collection: CollectionInfo,
        out: Path,
        listing: dict[str, Any],
        params: dict[str, Any],
    ) -> BuildState:
        """The build writing to ``out``: resumed when its listing is the same, else reset."""
        key = json.dumps(listing, sort_keys=True, ensure_ascii=False, default=str)
        now = time.time()
        with transaction(store.engine) as conn:
            row = conn.execute(
                select(dataset_builds).where(
                    dataset_builds.c.collection_id == collection.id,
                    dataset_builds.c.out_path == str(out),
                )
            ).first()
            values = {"query": listing["query"], "source": listing["source"], "params": params}
            values.update(status="collecting", stage="collect", error=None, updated_at=now)
            if row is None:
                build_id = conn.execute(
                    insert(dataset_builds).values(
                        collection_id=collection.id,
                        out_path=str(out),
                        listing_key=key,
                        listed=0,
                        counts={},
                        clusters=[],
                        created_at=now,
                        **values,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                return cls(store, int(build_id), False)
            build_id, listed = int(row.id), bool(row.listed) and row.listing_key == key
            if not listed:
                conn.execute(
                    delete(dataset_candidates).where(dataset_candidates.c.build_id == build_id)
                )
            conn.execute(
                update(dataset_builds)
                .where(dataset_builds.c.id == build_id)
                .values(listing_key=key, listed=int(listed), finished_at=None, **values)
            )
        return cls(store, build_id, listed)

    def add_candidates(self, rows: Sequence[CandidateRow]) -> None:
        if not rows:
            return
        with transaction(self.store.engine) as conn:
            conn.execute(
                insert(dataset_candidates),
                [
                    {
                        "build_id": self.id,
                        "position": r.position,
                        "source": r.candidate.source,
                        "source_key": r.candidate.key,
                        "uri": r.candidate.uri,
                        "path": None if r.candidate.path is None else str(r.candidate.path),
                        "size_bytes": r.candidate.size,
                        "mtime": r.candidate.mtime,
                        "meta": r.candidate.meta,
                        "outcome": "pending",
                        "scores": {},
                    }
                    for r in rows
                ],
            )

    def clear_candidates(self) -> None:
        with transaction(self.store.engine) as conn:
            conn.execute(delete(dataset_candidates).where(dataset_candidates.c.build_id == self.id))

    def mark_listed(self) -> None:
        self.listed = True
        self.update(listed=1)

    def candidates(self) -> list[CandidateRow]:
        q = (
            select(dataset_candidates)
            .where(dataset_candidates.c.build_id == self.id)
            .order_by(dataset_candidates.c.position)
        )
        with transaction(self.store.engine) as conn:
            rows = conn.execute(q).all()
        return [
            CandidateRow(
                r.position,
                Candidate(
                    source=r.source,
                    key=r.source_key,
                    uri=r.uri,
                    path=None if r.path is None else Path(r.path),
                    size=r.size_bytes,
                    mtime=r.mtime,
                    meta=dict(r.meta or {}),
                ),
            )
            for r in rows
        ]

    def set_path(self, position: int, path: Path) -> None:
        """Commit the local file holding a candidate's downloaded bytes (see ``download``)."""
        with transaction(self.store.engine) as conn:
            conn.execute(
                update(dataset_candidates)
                .where(
                    dataset_candidates.c.build_id == self.id,
                    dataset_candidates.c.position == position,
                )
                .values(path=str(path))
            )

    def save_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        stmt = (
            update(dataset_candidates)
            .where(
                dataset_candidates.c.build_id == self.id,
                dataset_candidates.c.position == bindparam("pos"),
            )
            .values(
                item_id=bindparam("item"),
                outcome=bindparam("out"),
                stage=bindparam("stg"),
                reason=bindparam("rsn"),
                detail=bindparam("dtl"),
                scores=bindparam("scr"),
                file=bindparam("fil"),
            )
        )
        params = [
            {
                "pos": o.position,
                "item": o.item_id,
                "out": o.outcome,
                "stg": o.stage,
                "rsn": o.reason,
                "dtl": o.detail,
                "scr": o.scores,
                "fil": o.file,
            }
            for o in outcomes
        ]
        with transaction(self.store.engine) as conn:
            conn.execute(stmt, params)

    def outcomes(self) -> list[dict[str, Any]]:
        """Every candidate with its outcome, in listing order (for reports and tests)."""
        q = (
            select(dataset_candidates)
            .where(dataset_candidates.c.build_id == self.id)
            .order_by(dataset_candidates.c.position)
        )
        with transaction(self.store.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def update(self, **values: Any) -> None:
        with transaction(self.store.engine) as conn:
            conn.execute(
                update(dataset_builds)
                .where(dataset_builds.c.id == self.id)
                .values(updated_at=time.time(), **values)
            )

    def row(self) -> dict[str, Any]:
        with transaction(self.store.engine) as conn:
            found = conn.execute(select(dataset_builds).where(dataset_builds.c.id == self.id)).one()
        return dict(found._mapping)
