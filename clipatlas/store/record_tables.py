"""Tables of multimodal record matching (migration 5): records and their per-field vectors."""

from __future__ import annotations

from sqlalchemy import Table

from clipatlas.store.schema import metadata

__all__ = ["TABLES", "metadata"]

TABLES: list[Table] = []
