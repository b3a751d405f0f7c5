"""The records the caption store hands out: :class:`Caption` and :class:`KeyState`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect

from clipatlas.store.caption_tables import TABLES, metadata
from clipatlas.store.sql import SqlStore, transaction

__all__ = ["Caption", "KeyState", "caption_from_row", "ensure_tables"]


@dataclass(frozen=True)
class Caption:
    id: int
    item_id: int
    kind: str
    status: str
    text: str | None
    model: str
    prompt_version: str
    language: str | None
    reason: str | None
    detail: str | None
    created_at: float
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self, *, provenance: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "item_id": self.item_id,
            "kind": self.kind,
            "status": self.status,
            "text": self.text,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "language": self.language,
            "reason": self.reason,
            "detail": self.detail,
            "created_at": self.created_at,
        }
        if provenance:
            out["provenance"] = dict(self.provenance)
        return out


@dataclass(frozen=True)
class KeyState:
    """What became of one imported picture: its item row (stored, or rejected and why)."""

    item_id: int
    status: str
    reason: str | None
    detail: str | None
    duplicate_of: int | None


def ensure_tables(store: SqlStore) -> None:
    """Create the caption tables if missing (idempotent; a no-op once migration 4 made them)."""
    missing = [t for t in TABLES if not inspect(store.engine).has_table(t.name)]
    if missing:
        with transaction(store.engine) as conn:
            metadata.create_all(conn, tables=missing, checkfirst=True)


def caption_from_row(r: Any) -> Caption:
    return Caption(
        r.id,
        r.item_id,
        r.kind,
        r.status,
        r.text,
        r.model,
        r.prompt_version or "",
        r.language,
        r.reason,
        r.detail,
        r.created_at,
        r.provenance or {},
    )
