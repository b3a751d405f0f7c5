"""A reproducible train/test split of captioned items.

An item's side depends only on the seed and the picture's name within its dataset (its
relative path or row; the source key for pictures not imported with captions): the same
dataset gets the same held-out set in any collection, on any machine, whatever the import
order, and items added later keep the split of the items already there.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from clipatlas.captions.store import CaptionStore
from clipatlas.errors import ConfigError

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["assign_split", "side_of"]


def side_of(key: str, seed: int, test_fraction: float) -> str:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if position < test_fraction else "train"


def assign_split(
    engine: Engine,
    cstore: CaptionStore,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    redo: bool = False,
) -> dict[str, int]:
    """Give every stored item with a reference caption a side; returns counts per side.

    Items that already have a side keep it unless ``redo`` (a new seed or fraction)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in [0, 1), got {test_fraction}")
    known = {} if redo else cstore.splits()
    seed = seed if redo else (cstore.split_seed() if known else None) or seed
    captioned = list(cstore.captions_of(cstore.stored_item_ids(), kinds=("reference",)))
    todo = [i for i in captioned if i not in known]
    items = {it.id: it for it in engine.store.get_items(engine.collection, todo)}
    assignment = {
        i: side_of(str(it.meta.get("image") or it.source_key), seed, test_fraction)
        for i, it in items.items()
    }
    if assignment or redo:
        cstore.set_split(assignment, seed, replace=redo)
    counts = {"train": 0, "test": 0}
    for side in cstore.splits().values():
        counts[side] = counts.get(side, 0) + 1
    return counts
