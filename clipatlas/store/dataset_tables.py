"""Tables of dataset builds (migration 6): one row per build and per candidate stage outcome."""

from __future__ import annotations

from sqlalchemy import Table

from clipatlas.store.schema import metadata

__all__ = ["TABLES", "metadata"]

TABLES: list[Table] = []
