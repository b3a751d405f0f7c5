"""The vector index contract. An index is derived from the store, never the source of truth."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["VectorIndex"]


class VectorIndex(Protocol):
    ids: np.ndarray  # int64 item ids, one per indexed vector

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, dim) L2-normalised queries -> (scores (Q, k'), item ids (Q, k')), best first.

        k' = min(k, len(self)). Scores are cosine similarities.
        """
        ...
