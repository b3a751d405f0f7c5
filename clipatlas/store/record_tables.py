"""Tables of multimodal record matching (migration 5): records and their per-field vectors.

* ``records``: one row per record of a collection, unique by (collection, key). Text fields
  are kept as given (``fields``) and joined (``text``); ``photo_item_id`` links the record's
  photo, stored as an ordinary item through the ingest pipeline (its CLIP vector lives in
  ``embeddings``); a failed photo keeps its reason in ``photo_reason``/``photo_detail``.
* ``record_vectors``: one vector per (record, field): ``text`` (text model over the joined
  text), ``clip_text`` (the CLIP text tower, for cross-modal scores) and ``place`` (text
  model over the place name). Each names its embedder.
* ``match_calibrations``: fitted (or default) fusion parameters, newest wins.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from clipatlas.store.metadata import metadata

__all__ = ["TABLES", "match_calibrations", "metadata", "record_vectors", "records"]

records = Table(
    "records",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("key", String(500), nullable=False),
    Column("kind", String(100)),
    Column("text", Text, nullable=False, default=""),
    Column("fields", JSON, nullable=False, default=dict),
    Column("category", String(200)),
    Column("place", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("time", Float),  # seconds since the epoch (UTC)
    Column("photo_uri", Text),
    Column("photo_item_id", Integer, ForeignKey("items.id", ondelete="SET NULL")),
    Column("photo_reason", String(40)),
    Column("photo_detail", Text),
    Column("meta", JSON, nullable=False, default=dict),
    Column("import_id", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("collection_id", "key", name="uq_records_key"),
)
Index("ix_records_import", records.c.collection_id, records.c.import_id)

record_vectors = Table(
    "record_vectors",
    metadata,
    Column("record_id", Integer, ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
    Column("field", String(40), primary_key=True),
    Column("embedder_id", String(500), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("dtype", String(10), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

match_calibrations = Table(
    "match_calibrations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("params", JSON, nullable=False),
    Column("report", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

TABLES: list[Table] = [records, record_vectors, match_calibrations]
