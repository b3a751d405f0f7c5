"""Quality stage: what ingest rejected, then size, aspect, sharpness, and duplicates.

Every candidate leaves this stage either dropped (with the stage and a reason) or as a
survivor paired with its stored item. Reasons:

* ``fetch``: the ingest reasons of a failed download (``http_error``, ``timeout``, ...);
* ``decode``: the ingest reasons of bytes that are not a usable picture (``not_an_image``,
  ``truncated``, ``decode_error``, ``unsupported_format``, ``too_large``, ...);
* ``quality``: ``too_small`` (short side below ``min_side``), ``bad_aspect``, ``blurry``;
* ``dedupe``: ``duplicate`` (the same bytes as another candidate) and ``near_duplicate``
  (pHash or embedding close to a bigger/sharper candidate, which is kept).

A candidate whose bytes equal a picture the collection already holds from another build is
given that stored picture, so a shared collection never costs a build its pictures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clipatlas.analysis.duplicates import find_duplicate_groups
from clipatlas.dataset.config import QualityConfig
from clipatlas.dataset.state import CandidateRow, Outcome
from clipatlas.errors import Reason
from clipatlas.store.base import Item

__all__ = ["Survivor", "quality_stage"]

_FETCH_REASONS = frozenset(
    r.value
    for r in (Reason.HTTP_ERROR, Reason.TIMEOUT, Reason.BLOCKED_ADDRESS, Reason.NETWORK_ERROR)
)


@dataclass
class Survivor:
    row: CandidateRow
    item: Item
    scores: dict[str, float | int | None]


def _quality_scores(item: Item) -> dict[str, float | int | None]:
    w, h = item.width or 0, item.height or 0
    return {
        "width": w,
        "height": h,
        "min_side": min(w, h),
        "aspect": round(w / h, 4) if h else None,
        "sharpness": None if item.sharpness is None else round(item.sharpness, 2),
    }


def _check(item: Item, q: QualityConfig) -> tuple[str, str] | None:
    w, h = item.width or 0, item.height or 0
    if min(w, h) < q.min_side:
        return "too_small", f"{w}x{h}: short side {min(w, h)} < {q.min_side} px"
    aspect = w / h if h else 0.0
    if not q.min_aspect <= aspect <= q.max_aspect:
        return "bad_aspect", (f"aspect {aspect:.2f} outside {q.min_aspect:.2f}..{q.max_aspect:.2f}")
    if item.sharpness is not None and item.sharpness < q.min_sharpness:
        return "blurry", f"sharpness {item.sharpness:.1f} < {q.min_sharpness:g}"
    return None


def quality_stage(
    rows: Sequence[CandidateRow],
    items: Mapping[tuple[str, str], Item],
    stored: Mapping[int, Item],
    vectors: tuple[np.ndarray, np.ndarray],
    q: QualityConfig,
) -> tuple[list[Outcome], list[Survivor]]:
    """Drop what is unusable; ``items`` by (source, key), ``stored`` ok items by id."""
    dropped: list[Outcome] = []
    passing: list[Survivor] = []
    claimed: set[int] = set()

    def drop(row: CandidateRow, item: Item | None, stage: str, reason: str, detail: str) -> None:
        scores = _quality_scores(item) if item is not None and item.status == "ok" else {}
        iid = None if item is None else item.id
        dropped.append(Outcome(row.position, iid, "dropped", stage, reason, detail, scores))

    build_ok = {
        it.id
        for r in rows
        if (it := items.get((r.candidate.source, r.candidate.key))) and it.status == "ok"
    }
    for row in rows:
        item = items.get((row.candidate.source, row.candidate.key))
        if item is None:
            drop(row, None, "fetch", "missing", "not in the collection (ingest did not finish)")
            continue
        if item.status != "ok":
            reason = item.reason or "unknown"
            if reason == Reason.DUPLICATE.value:
                other = stored.get(int(item.meta.get("duplicate_of") or 0))
                if other is not None and other.id not in build_ok and other.id not in claimed:
                    claimed.add(other.id)  # the same picture, stored for another build
                    item = other
                else:
                    same = item.meta.get("duplicate_of_key") or (other.uri if other else "")
                    drop(row, item, "dedupe", "duplicate", f"same bytes as {same}")
                    continue
            else:
                stage = "fetch" if reason in _FETCH_REASONS else "decode"
                drop(row, item, stage, reason, item.detail or "")
                continue
        problem = _check(item, q)
        if problem is not None:
            drop(row, item, "quality", *problem)
            continue
        passing.append(Survivor(row, item, _quality_scores(item)))
    return dropped, _near_duplicates(passing, vectors, q, dropped)


def _near_duplicates(
    passing: list[Survivor],
    vectors: tuple[np.ndarray, np.ndarray],
    q: QualityConfig,
    dropped: list[Outcome],
) -> list[Survivor]:
    if len(passing) < 2 or (q.phash_distance is None and q.cosine is None):
        return passing
    ids, matrix = vectors
    report = find_duplicate_groups(
        [s.item for s in passing], ids, matrix, phash_distance=q.phash_distance, cosine=q.cosine
    )
    by_item = {s.item.id: s for s in passing}
    gone: set[int] = set()
    for group in report.groups:
        kept = by_item[group.kept]
        for member in group.others:
            s = by_item[member.id]
            gone.add(member.id)
            how = ", ".join(
                part
                for part in (
                    None if member.phash_distance is None else f"pHash {member.phash_distance}",
                    None if member.cosine is None else f"cosine {member.cosine:.3f}",
                )
                if part
            )
            scores = {**s.scores, "duplicate_of": kept.row.position}
            dropped.append(
                Outcome(
                    s.row.position,
                    s.item.id,
                    "dropped",
                    "dedupe",
                    "near_duplicate",
                    f"near-duplicate of {kept.row.candidate.uri} ({how})",
                    scores,
                )
            )
    return [s for s in passing if s.item.id not in gone]
