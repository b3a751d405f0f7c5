"""Tables of dataset builds (migration 6): one row per build and per candidate stage outcome.

A build is identified by its collection and its resolved output folder, so running the same
command again finds its row and resumes. ``dataset_candidates`` keeps the listing the source
gave (so a resumed build neither asks the search API again nor refetches a picture) and, for
every candidate, the stage that dropped it (or ``kept``), the reason and every score.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from clipatlas.store.metadata import metadata

__all__ = ["TABLES", "dataset_builds", "dataset_candidates", "metadata"]

dataset_builds = Table(
    "dataset_builds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("out_path", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("source", String(100), nullable=False),
    Column("listing_key", Text, nullable=False),  # what the listing depends on (JSON)
    Column("listed", Integer, nullable=False, default=0),  # 1 = the listing is complete
    Column("status", String(20), nullable=False),  # collecting ... done | failed | cancelled
    Column("stage", String(20), nullable=False),
    Column("params", JSON, nullable=False),  # thresholds and options of the last run
    Column("counts", JSON, nullable=False, default=dict),
    Column("clusters", JSON, nullable=False, default=list),  # per-cluster scores
    Column("chosen_cluster", Integer),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    UniqueConstraint("collection_id", "out_path", name="uq_dataset_builds_out"),
)

dataset_candidates = Table(
    "dataset_candidates",
    metadata,
    Column(
        "build_id",
        Integer,
        ForeignKey("dataset_builds.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("position", Integer, primary_key=True, autoincrement=False),  # listing order
    Column("source", String(100), nullable=False),
    Column("source_key", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("path", Text),  # local file (folder sources)
    Column("size_bytes", Integer),
    Column("mtime", Float),
    Column("meta", JSON, nullable=False, default=dict),
    Column("item_id", Integer),  # the collection item it became (no FK: items are replaceable)
    Column("outcome", String(10), nullable=False),  # pending | kept | dropped
    Column("stage", String(20)),  # fetch | decode | quality | dedupe | meaning | export
    Column("reason", String(40)),
    Column("detail", Text),
    Column("scores", JSON, nullable=False, default=dict),
    Column("file", Text),  # exported file name, for kept candidates
    UniqueConstraint("build_id", "source", "source_key", name="uq_dataset_candidates_key"),
)
Index("ix_dataset_candidates_outcome", dataset_candidates.c.build_id, dataset_candidates.c.outcome)

TABLES: list[Table] = [dataset_builds, dataset_candidates]
