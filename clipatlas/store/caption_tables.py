"""Tables of captioned collections (migration 4): captions per item and their text vectors.

* ``captions``: one row per caption of an item. ``kind`` is ``reference`` (imported with the
  dataset; ``model`` names the dataset) or ``generated`` (``model`` = the caption backend,
  ``prompt_version`` = the prompt template version). A generated caption that failed is kept
  as ``status = "error"`` with the reason and detail, so a batch records it and goes on and a
  rerun retries it. ``provenance`` holds the prompt, the neighbours and their scores.
* ``caption_vectors``: the text-model vector of a caption (embedder id and dim beside it).
* ``caption_splits``: the seeded train/test split of a collection's captioned items.
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
)

from clipatlas.store.metadata import metadata

__all__ = ["TABLES", "caption_splits", "caption_vectors", "captions", "metadata"]

captions = Table(
    "captions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),  # "reference" | "generated"
    Column("status", String(10), nullable=False),  # "ok" | "error"
    Column("text", Text),  # null for errors
    Column("model", String(500), nullable=False),  # backend spec, or dataset label
    Column("prompt_version", String(100), nullable=False, default=""),
    Column("language", String(10)),
    Column("reason", String(40)),  # error reason code
    Column("detail", Text),  # error detail (never holds a secret)
    Column("provenance", JSON, nullable=False, default=dict),
    Column("created_at", Float, nullable=False),
)
Index("ix_captions_item", captions.c.item_id, captions.c.kind)
Index(
    "ix_captions_model",
    captions.c.collection_id,
    captions.c.kind,
    captions.c.model,
    captions.c.prompt_version,
)

caption_vectors = Table(
    "caption_vectors",
    metadata,
    Column("caption_id", Integer, ForeignKey("captions.id", ondelete="CASCADE"), primary_key=True),
    Column("embedder_id", String(500), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("dtype", String(10), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

caption_splits = Table(
    "caption_splits",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("split", String(10), nullable=False),  # "train" | "test"
    Column("seed", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_caption_splits", caption_splits.c.collection_id, caption_splits.c.split)

TABLES: list[Table] = [captions, caption_vectors, caption_splits]
