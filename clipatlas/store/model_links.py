"""Which models a picture belongs to: the links in ``items.meta["models"]``.

A CivitAI picture can be a preview of several models (or versions). Every candidate of the
CivitAI source carries its model as a one-element list of links ``{"model_id", "model_name",
"version_id", "tags"}``; the top-level ``model_id``/``model_name``/``tags`` keep the first
model, as before. When the same picture turns up again for another model (the same source key
later in a walk or in a later run, or the same bytes under another key: a duplicate), its link
is *added* to the stored item's list rather than dropped or written over.

Links are provenance, not content: the item's row version (and so the search index's
fingerprint) is left alone, as for user tags (:mod:`clipatlas.tagging`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, select, update

from clipatlas.store.base import CollectionInfo
from clipatlas.store.schema import items
from clipatlas.store.sql import transaction

__all__ = ["LINK_FIELDS", "add_links", "links_of", "merge_links"]

LINK_FIELDS = ("model_id", "model_name", "version_id", "tags")
_CHUNK = 500


def _key(link: Mapping[str, Any]) -> tuple[Any, Any]:
    return link.get("model_id"), link.get("version_id")


def links_of(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model links of an item's meta; an item stored before links existed has one, made
    of its top-level fields (none without a ``model_id``)."""
    found = meta.get("models")
    if isinstance(found, list):
        return [dict(link) for link in found if isinstance(link, dict)]
    if meta.get("model_id") is None:
        return []
    return [{name: meta.get(name) for name in LINK_FIELDS}]


def merge_links(meta: Mapping[str, Any], links: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``meta`` with every link of ``links`` it does not hold yet (same model and version)
    appended to ``meta["models"]``; the same mapping's content when nothing is new."""
    current = links_of(meta)
    seen = {_key(link) for link in current}
    for link in links:
        if _key(link) not in seen and link.get("model_id") is not None:
            current.append(dict(link))
            seen.add(_key(link))
    out = dict(meta)
    if current:
        out["models"] = current
    return out


def add_links(
    engine: Engine,
    collection: CollectionInfo,
    *,
    by_key: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]] | None = None,
    by_id: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
) -> int:
    """Add model links to stored items, found by (source, source key) or by item id; returns
    how many items gained a link."""
    changed = 0
    wanted_keys = dict(by_key or {})
    wanted_ids = dict(by_id or {})
    keys = list(wanted_keys)
    ids = list(wanted_ids)
    with transaction(engine) as conn:
        for start in range(0, max(len(keys), len(ids)), _CHUNK):
            rows: list[Any] = []
            key_chunk = keys[start : start + _CHUNK]
            if key_chunk:
                rows += conn.execute(
                    select(items.c.id, items.c.source, items.c.source_key, items.c.meta).where(
                        items.c.collection_id == collection.id,
                        items.c.source_key.in_([k for _, k in key_chunk]),
                    )
                ).all()
            id_chunk = ids[start : start + _CHUNK]
            if id_chunk:
                rows += conn.execute(
                    select(items.c.id, items.c.source, items.c.source_key, items.c.meta).where(
                        items.c.collection_id == collection.id, items.c.id.in_(id_chunk)
                    )
                ).all()
            for row in rows:
                links = [
                    *wanted_keys.get((row.source, row.source_key), ()),
                    *wanted_ids.get(int(row.id), ()),
                ]
                meta = dict(row.meta or {})
                merged = merge_links(meta, links)
                if len(links_of(merged)) > len(links_of(meta)):
                    conn.execute(update(items).where(items.c.id == row.id).values(meta=merged))
                    changed += 1
    return changed
