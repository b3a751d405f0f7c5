"""A set of records loaded for scoring: aligned arrays, one row per record.

Vectors of a modality a record lacks are zero rows with a False ``has_*`` flag, so scoring is
plain array arithmetic with masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RecordSet"]


@dataclass
class RecordSet:
    keys: list[str]
    kinds: list[str | None]
    categories: list[str | None]
    texts: list[str]
    photo_item_ids: list[int | None]
    lat: np.ndarray  # float64, nan = unknown
    lon: np.ndarray
    time: np.ndarray
    text: np.ndarray  # (n, text dim) text model
    has_text: np.ndarray  # bool
    clip_text: np.ndarray  # (n, clip dim) CLIP text tower
    photo: np.ndarray  # (n, clip dim) CLIP image
    has_photo: np.ndarray
    place: np.ndarray  # (n, text dim) text model over the place name
    has_place: np.ndarray
    import_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}
