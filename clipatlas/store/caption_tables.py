"""Tables of captioned collections (migration 4): captions per item and their text vectors."""

from __future__ import annotations

from sqlalchemy import Table

from clipatlas.store.schema import metadata

__all__ = ["TABLES", "metadata"]

TABLES: list[Table] = []
