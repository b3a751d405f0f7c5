"""User tags on items: a list of short strings in ``items.meta["tags"]``.

    add_tags(atlas, [3, 5, 8], "keep")          # -> 3 items changed
    remove_tags(atlas, [5], "keep")
    ids_with_tag(atlas, "keep")                  # -> [3, 8]
    tag_counts(atlas)                            # -> {"keep": 2}

Tags are metadata, not content: the item's row version (and so the search index's
fingerprint) is left alone. A tag is trimmed, whitespace-collapsed, 1-64 characters, without
control characters; anything else is a :class:`~clipatlas.errors.ConfigError` naming it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, select, text, update

from clipatlas.errors import ConfigError
from clipatlas.store.schema import items
from clipatlas.store.sql import transaction

if TYPE_CHECKING:
    from clipatlas.atlas import Atlas

__all__ = ["MAX_TAG", "add_tags", "check_tag", "ids_with_tag", "remove_tags", "tag_counts"]

MAX_TAG = 64
MAX_ITEMS = 100_000  # one request tags at most this many items
_CHUNK = 500


def check_tag(tag: str) -> str:
    """The tag, normalised; ConfigError when it cannot be one."""
    if not isinstance(tag, str):
        raise ConfigError(f"a tag must be text, got {tag!r}")
    clean = " ".join(tag.split())
    if not clean:
        raise ConfigError("a tag cannot be empty")
    if len(clean) > MAX_TAG:
        raise ConfigError(f"a tag is at most {MAX_TAG} characters, got {len(clean)}: {clean!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in clean):
        raise ConfigError(f"a tag cannot hold control characters: {clean!r}")
    return clean


def _tags_of(meta: Any) -> list[str]:
    tags = (meta or {}).get("tags") if isinstance(meta, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _change(atlas: Atlas, item_ids: Sequence[int], tag: str, add: bool) -> int:
    tag = check_tag(tag)
    wanted = sorted({int(i) for i in item_ids})
    if len(wanted) > MAX_ITEMS:
        raise ConfigError(f"tag at most {MAX_ITEMS} items at once, got {len(wanted)}")
    changed = 0
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        with transaction(atlas.store.engine) as conn:
            rows = conn.execute(
                select(items.c.id, items.c.meta).where(
                    items.c.collection_id == atlas.collection.id, items.c.id.in_(chunk)
                )
            ).all()
            for row in rows:
                meta = dict(row.meta or {})
                tags = _tags_of(meta)
                if add == (tag in tags):
                    continue
                tags = [*tags, tag] if add else [t for t in tags if t != tag]
                if tags:
                    meta["tags"] = tags
                else:
                    meta.pop("tags", None)
                conn.execute(update(items).where(items.c.id == row.id).values(meta=meta))
                changed += 1
    if changed:  # tag edits do not bump the version (the search index stays valid)
        atlas.store.forget_summary("tags", atlas.collection)
    return changed


def add_tags(atlas: Atlas, item_ids: Sequence[int], tag: str) -> int:
    """Add ``tag`` to the items (ids of other collections are ignored); how many changed."""
    return _change(atlas, item_ids, tag, True)


def remove_tags(atlas: Atlas, item_ids: Sequence[int], tag: str) -> int:
    """Remove ``tag`` from the items; how many changed."""
    return _change(atlas, item_ids, tag, False)


def _tagged_rows(atlas: Atlas, needle: str) -> Iterable[Any]:
    # a text prefilter (the JSON as stored contains the encoded tag), then an exact check
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with transaction(atlas.store.engine) as conn:
        return conn.execute(
            select(items.c.id, items.c.meta)
            .where(
                items.c.collection_id == atlas.collection.id,
                cast(items.c.meta, String).like(pattern, escape="\\"),
            )
            .order_by(items.c.id)
        ).all()


def ids_with_tag(atlas: Atlas, tag: str) -> list[int]:
    """Ids (ascending) of the collection's items that carry ``tag``."""
    tag = check_tag(tag)
    encoded = json.dumps(tag)[1:-1]  # how the JSON column spells it (ASCII escapes)
    out = [int(r.id) for r in _tagged_rows(atlas, encoded) if tag in _tags_of(r.meta)]
    if not out and encoded != tag:  # a backend storing the JSON text unescaped
        out = [int(r.id) for r in _tagged_rows(atlas, tag) if tag in _tags_of(r.meta)]
    return out


# counting reads every tagged item's metadata (100k rows: seconds), so pages reuse the last
# count (SqlStore.cached_summary) until the collection is written, a tag changes through this
# store, or COUNTS_TTL passes (tags changed by another process)
COUNTS_TTL = 10.0


def tag_counts(atlas: Atlas, limit: int = 200) -> dict[str, int]:
    """The collection's tags with their item counts, most used first."""
    counts: Counter[str] = atlas.store.cached_summary(
        "tags", atlas.collection, lambda _: _count_tags(atlas), atlas.summary_lag(), ttl=COUNTS_TTL
    )
    return dict(counts.most_common(limit))


def _count_tags(atlas: Atlas) -> Counter[str]:
    """Tag -> items, counted by the database (JSON functions) where it can."""
    dialect = atlas.store.dialect
    if dialect in ("sqlite", "postgresql"):
        sql = (
            "SELECT t.value, count(*) FROM items, json_each(items.meta, '$.tags') AS t "
            "WHERE items.collection_id = :c AND json_type(items.meta, '$.tags') = 'array' "
            "AND t.type = 'text' GROUP BY t.value"
            if dialect == "sqlite"
            else "SELECT t.value, count(*) FROM items, "
            "json_array_elements_text(items.meta -> 'tags') AS t(value) "
            "WHERE items.collection_id = :c AND json_typeof(items.meta -> 'tags') = 'array' "
            "GROUP BY t.value"
        )
        with transaction(atlas.store.engine) as conn:
            rows = conn.execute(text(sql), {"c": atlas.collection.id}).all()
        return Counter({str(tag): int(n) for tag, n in rows})
    counts: Counter[str] = Counter()
    for row in _tagged_rows(atlas, '"tags"'):
        counts.update(set(_tags_of(row.meta)))
    return counts
