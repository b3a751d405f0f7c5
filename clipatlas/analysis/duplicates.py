"""Near-duplicate pictures: pairs close in perceptual hash or in embedding, grouped.

Two stored items are near-duplicates when the Hamming distance of their 64-bit pHashes is at
most ``phash_distance`` OR the cosine of their vectors is at least ``cosine``. Pairs are joined
into connected components (so a chain a~b~c is one group) and each group keeps one
representative by :func:`keep_order`: largest pixel area, then highest sharpness, then lowest
id. Defaults come from ``bench/near_duplicates.py`` (see ``bench/RESULTS.md``).

Cost, for N items with d-dimensional vectors:

* pHash: N²/2 XOR + popcount on uint64 (``np.bitwise_count``, else a byte lookup table),
  in row blocks of at most ~4M cells, so memory stays O(N) beyond the block; like cosine,
  each row keeps at most ``max_neighbours`` pairs;
* cosine: N²·d/2 multiply-adds as blocked matrix products of the (unit-length) vectors; each
  row keeps at most ``max_neighbours`` neighbours above the threshold, so the pair list stays
  O(N·max_neighbours) even at a careless threshold;
* grouping: connected components of the sparse pair graph (scipy), O(N + pairs).

Measured on 2 cores (bench/RESULTS.md): 50k items take ~4 s (pHash) and 25-34 s (512-d
cosine), so about 16 s and 2 min for 100k. No Python loop runs over pairs of items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipatlas.errors import ConfigError
from clipatlas.store.base import Item

__all__ = [
    "DEFAULT_COSINE",
    "DEFAULT_PHASH_DISTANCE",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicateReport",
    "cosine_pairs",
    "find_duplicate_groups",
    "keep_order",
    "phash_pairs",
    "phash_to_uint64",
]

DEFAULT_PHASH_DISTANCE = 10  # measured: bench/RESULTS.md "near_duplicates"
DEFAULT_COSINE = 0.99  # measured with fake:64 only; measure real CLIP models with their weights
_BLOCK_CELLS = 1 << 22
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class DuplicateMember:
    """An item of a group that is not kept, with its distances to the kept item."""

    id: int
    phash_distance: int | None  # None when either item has no pHash
    cosine: float | None  # None when either item has no vector

    def as_dict(self) -> dict[str, Any]:
        cos = None if self.cosine is None else round(self.cosine, 6)
        return {"id": self.id, "phash_distance": self.phash_distance, "cosine": cos}


@dataclass(frozen=True)
class DuplicateGroup:
    kept: int
    others: tuple[DuplicateMember, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "others": [m.as_dict() for m in self.others]}


@dataclass(frozen=True)
class DuplicateReport:
    phash_distance: int | None
    cosine: float | None
    compared: int  # stored items looked at
    pairs: int  # near-duplicate pairs found (before grouping)
    groups: tuple[DuplicateGroup, ...] = ()
    marked: int = 0  # items turned into ``duplicate`` rejections (mark only)
    applied: bool = False
    details: dict[int, Item] = field(default_factory=dict, compare=False, repr=False)

    @property
    def duplicates(self) -> int:
        return sum(len(g.others) for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        def with_uri(entry: dict[str, Any]) -> dict[str, Any]:
            item = self.details.get(entry["id"])
            return {**entry, "uri": item.uri if item else None}

        return {
            "phash_distance": self.phash_distance,
            "cosine": self.cosine,
            "compared": self.compared,
            "pairs": self.pairs,
            "duplicates": self.duplicates,
            "applied": self.applied,
            "marked": self.marked,
            "groups": [
                {
                    "kept": g.kept,
                    "kept_uri": self.details[g.kept].uri if g.kept in self.details else None,
                    "others": [with_uri(m.as_dict()) for m in g.others],
                }
                for g in self.groups
            ],
        }


def phash_to_uint64(hashes: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Hex pHashes as uint64, and a mask of which were present and well formed."""
    values: list[int] = []
    present: list[bool] = []
    for h in hashes:
        try:
            value = int(h, 16) if h and len(h) == 16 else -1
        except ValueError:
            value = -1
        present.append(value >= 0)
        values.append(max(value, 0))
    return np.asarray(values, dtype=np.uint64), np.asarray(present, dtype=bool)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(x), dtype=np.uint8)
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
    return np.asarray(_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8))


def _closest_pairs(
    n: int,
    scores_of: Callable[[int, int], np.ndarray],
    min_score: float,
    max_neighbours: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) whose score (higher = closer) is >= ``min_score``, in row blocks.

    ``scores_of(start, stop)`` scores rows ``start..stop-1`` against columns ``start..n-1``.
    Each row keeps at most ``max_neighbours`` of its higher-index neighbours (the closest), so
    memory stays bounded even with a careless threshold. O(N^2 / 2) comparisons.
    """
    rows = max(1, _BLOCK_CELLS // max(n, 1))
    found_i, found_j, found_s = [], [], []
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        scores = np.asarray(scores_of(start, stop), dtype=np.float32)
        local = np.arange(stop - start)
        scores[np.arange(scores.shape[1])[None, :] <= local[:, None]] = -np.inf  # only j > i
        if scores.shape[1] > max_neighbours:
            top = np.argpartition(-scores, max_neighbours - 1, axis=1)[:, :max_neighbours]
        else:
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        values = np.take_along_axis(scores, top, axis=1)
        r, c = np.nonzero(values >= np.float32(min_score))
        found_i.append(r + start)
        found_j.append(top[r, c] + start)
        found_s.append(values[r, c])
    return _concat(found_i, np.int64), _concat(found_j, np.int64), _concat(found_s, np.float64)


def phash_pairs(
    hashes: np.ndarray, max_distance: int, *, max_neighbours: int = 32
) -> tuple[np.ndarray, ...]:
    """Index pairs (i < j) with Hamming distance <= ``max_distance``: (i, j, distance).

    Each row keeps at most ``max_neighbours`` of its higher-index neighbours (the closest).
    """
    if not 0 <= max_distance <= 64:
        raise ConfigError(f"pHash distance must be between 0 and 64, got {max_distance}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)

    def closeness(start: int, stop: int) -> np.ndarray:
        return -_popcount(hashes[start:stop, None] ^ hashes[None, start:]).astype(np.float32)

    i, j, score = _closest_pairs(len(hashes), closeness, -max_distance, max_neighbours)
    return i, j, (-score).astype(np.int64)


def cosine_pairs(
    matrix: np.ndarray, min_cosine: float, *, max_neighbours: int = 32
) -> tuple[np.ndarray, ...]:
    """Index pairs (i < j) of unit rows with cosine >= ``min_cosine``: (i, j, cosine).

    Each row keeps at most ``max_neighbours`` of its higher-index neighbours (the closest).
    """
    if not -1.0 <= min_cosine <= 1.0:
        raise ConfigError(f"cosine threshold must be between -1 and 1, got {min_cosine}")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def similarity(start: int, stop: int) -> np.ndarray:
        block: np.ndarray = matrix[start:stop] @ matrix[start:].T
        return block

    return _closest_pairs(len(matrix), similarity, min_cosine - 1e-6, max_neighbours)


def _concat(parts: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def keep_order(ids: np.ndarray, area: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
    """Rank of every item as a representative: largest area, sharpest, then lowest id first."""
    order = np.lexsort((ids, -np.nan_to_num(sharpness, nan=-np.inf), -area))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


def find_duplicate_groups(
    items: Sequence[Item],
    vector_ids: np.ndarray,
    vectors: np.ndarray,
    *,
    phash_distance: int | None = DEFAULT_PHASH_DISTANCE,
    cosine: float | None = DEFAULT_COSINE,
) -> DuplicateReport:
    """Group near-duplicate ``items`` (stored ones); ``vectors`` are unit rows by ``vector_ids``.

    ``phash_distance`` or ``cosine`` set to None switches that test off. Groups come sorted
    by kept id; their other members by id.
    """
    if phash_distance is None and cosine is None:
        raise ConfigError("give a pHash distance, a cosine threshold, or both")
    n = len(items)
    ids = np.asarray([it.id for it in items], dtype=np.int64)
    position = {int(i): p for p, i in enumerate(ids)}
    hashes, has_hash = phash_to_uint64(it.phash for it in items)
    vec_pos = np.asarray([position.get(int(i), -1) for i in vector_ids], dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.float32)[vec_pos >= 0]
    vec_pos = vec_pos[vec_pos >= 0]
    pair_i: list[np.ndarray] = []
    pair_j: list[np.ndarray] = []
    if phash_distance is not None:
        hashed = np.flatnonzero(has_hash)
        i, j, _ = phash_pairs(hashes[hashed], phash_distance)
        pair_i.append(hashed[i])
        pair_j.append(hashed[j])
    if cosine is not None and len(vec_pos):
        i, j, _ = cosine_pairs(vectors, cosine)
        pair_i.append(vec_pos[i])
        pair_j.append(vec_pos[j])
    a, b = _concat(pair_i, np.int64), _concat(pair_j, np.int64)
    pairs = len(np.unique(np.minimum(a, b) * n + np.maximum(a, b)))
    report = DuplicateReport(phash_distance, cosine, n, pairs)
    if not len(a):
        return report
    from scipy.sparse import coo_matrix  # scipy loads when groups are built, not with the CLI
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    area = np.asarray([(it.width or 0) * (it.height or 0) for it in items], dtype=np.int64)
    sharp = np.asarray(
        [np.nan if it.sharpness is None else it.sharpness for it in items], dtype=np.float64
    )
    rank = keep_order(ids, area, sharp)
    unit = np.zeros((n, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    has_vec = np.zeros(n, dtype=bool)
    unit[vec_pos], has_vec[vec_pos] = vectors, True
    groups = []
    by_label = np.argsort(label, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(label[by_label]) != 0])
    for members in np.split(by_label, starts[1:]):
        if len(members) < 2:
            continue
        kept = int(members[np.argmin(rank[members])])
        others = []
        for m in members[np.argsort(ids[members])]:
            if m == kept:
                continue
            dist = (
                int(_popcount(hashes[[kept]] ^ hashes[[m]])[0])
                if has_hash[kept] and has_hash[m]
                else None
            )
            cos = float(unit[kept] @ unit[m]) if has_vec[kept] and has_vec[m] else None
            others.append(DuplicateMember(int(ids[m]), dist, cos))
        groups.append(DuplicateGroup(int(ids[kept]), tuple(others)))
    groups.sort(key=lambda g: g.kept)
    return DuplicateReport(phash_distance, cosine, n, pairs, tuple(groups))
