"""Tables of a clipatlas database and the migrations that build them.

The schema version lives in ``schema_version``; :func:`ensure_schema` applies pending
migrations in order and refuses a database written by a newer clipatlas.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)

from clipatlas.errors import SchemaVersionError
from clipatlas.store.metadata import metadata

__all__ = [
    "SCHEMA_VERSION",
    "cluster_assignments",
    "cluster_runs",
    "clusters",
    "collections",
    "embeddings",
    "ensure_schema",
    "items",
    "metadata",
]

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("embedder_id", String(500)),
    Column("dim", Integer),
    Column("version", Integer, nullable=False, default=0),  # bumped by every write batch
    Column("created_at", Float, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("source", String(100), nullable=False),
    Column("source_key", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("status", String(20), nullable=False),  # "ok" | "rejected"
    Column("reason", String(40)),
    Column("detail", Text),
    Column("sha256", String(64)),
    Column("phash", String(16)),
    Column("format", String(10)),
    Column("media_path", Text),
    Column("thumb_path", Text),
    Column("size_bytes", Integer),
    Column("mtime", Float),
    Column("width", Integer),
    Column("height", Integer),
    Column("aspect", Float),
    Column("sharpness", Float),
    Column("meta", JSON, nullable=False, default=dict),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("collection_id", "source", "source_key", name="uq_items_source_key"),
)
Index(
    "uq_items_sha256_ok",
    items.c.collection_id,
    items.c.sha256,
    unique=True,
    sqlite_where=items.c.status == "ok",
    postgresql_where=items.c.status == "ok",
)
Index("ix_items_status", items.c.collection_id, items.c.status, items.c.reason)
# gallery pages walk these in id order instead of sorting the collection on every page, and
# counts by status read the narrow index instead of the wide rows (issue 10, load)
ix_items_page = Index("ix_items_page", items.c.collection_id, items.c.status, items.c.id)
ix_items_order = Index("ix_items_order", items.c.collection_id, items.c.id)

embeddings = Table(
    "embeddings",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("embedder_id", String(500), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("dtype", String(10), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)


# Clustering runs (migration 2): one row per run, with the per-item assignment as arrays
# (item ids int64, labels int32, -1 = noise) and one row per cluster (label -1 = the noise
# group, without centroid) that later features (names, classify, recommend) read and annotate.
cluster_runs = Table(
    "cluster_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("method", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("embedder_id", String(500), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("n_clusters", Integer, nullable=False),
    Column("n_noise", Integer, nullable=False),
    Column("collection_version", Integer, nullable=False),  # the item set the run saw
    Column("item_ids", LargeBinary, nullable=False),  # int64, ordered as labels
    Column("labels", LargeBinary, nullable=False),  # int32, -1 = noise
    Column("metrics", JSON, nullable=False),
    Column("selection", JSON),  # auto-K curves and choice, or null
    Column("explanation", Text, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_cluster_runs_collection", cluster_runs.c.collection_id, cluster_runs.c.id)

clusters = Table(
    "clusters",
    metadata,
    Column(
        "run_id",
        Integer,
        ForeignKey("cluster_runs.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("label", Integer, primary_key=True, autoincrement=False),  # -1 = noise group
    Column("size", Integer, nullable=False),
    Column("medoid_id", Integer),
    Column("cohesion", Float),
    Column("separation", Float),
    Column("centroid", LargeBinary),  # float32, L2-normalised; null for the noise group
    Column("name", Text),  # set by naming/renaming (later)
    Column("meta", JSON, nullable=False, default=dict),
)


# Arrivals assigned to a run without refitting (migration 3): one row per (run, item), the
# nearest cluster (or -1 when the item is farther than that cluster's own members), its cosine
# and the margin to the runner-up.
cluster_assignments = Table(
    "cluster_assignments",
    metadata,
    Column(
        "run_id",
        Integer,
        ForeignKey("cluster_runs.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column(
        "item_id",
        Integer,
        ForeignKey("items.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("label", Integer, nullable=False),  # -1 = unknown
    Column("nearest", Integer, nullable=False),  # the nearest cluster even when unknown
    Column("cosine", Float, nullable=False),
    Column("margin", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[collections, items, embeddings])


def _migration_2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[cluster_runs, clusters])


def _migration_3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[cluster_assignments])


# Feature tables live beside their feature (same ``metadata``, from store/metadata.py); each
# migration imports its module so the tables register before they are created.
def _migration_4(conn: Connection) -> None:
    from clipatlas.store import caption_tables

    metadata.create_all(conn, tables=caption_tables.TABLES)


def _migration_5(conn: Connection) -> None:
    from clipatlas.store import record_tables

    metadata.create_all(conn, tables=record_tables.TABLES)


def _migration_6(conn: Connection) -> None:
    from clipatlas.store import dataset_tables

    metadata.create_all(conn, tables=dataset_tables.TABLES)


def _migration_7(conn: Connection) -> None:
    from clipatlas.store import job_tables

    metadata.create_all(conn, tables=job_tables.TABLES)


def _migration_8(conn: Connection) -> None:
    # new databases got them with the table in migration 1
    ix_items_page.create(conn, checkfirst=True)
    ix_items_order.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,  # captions (retrieval-augmented captioning)
    _migration_5,  # records (multimodal record matching)
    _migration_6,  # dataset builds
    _migration_7,  # durable jobs
    _migration_8,  # page-order indexes on items
]
SCHEMA_VERSION = len(MIGRATIONS)


def ensure_schema(conn: Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found before."""
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(found, SCHEMA_VERSION)
    for number in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[number - 1](conn)
    if found != SCHEMA_VERSION:
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    return found
