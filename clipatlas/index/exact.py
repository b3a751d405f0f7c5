"""Exact cosine search over a dense matrix (the default below ~200k vectors)."""

from __future__ import annotations

import numpy as np

__all__ = ["ExactIndex"]

_BLOCK = 65536  # rows scored per step, to bound temporary memory on large collections


class ExactIndex:
    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids for {len(matrix)} vectors")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.matrix = matrix

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.ids)
        k = max(0, min(k, n))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, n, _BLOCK):
            block = np.asarray(self.matrix[start : start + _BLOCK], dtype=np.float32)
            scores = queries @ block.T
            take = min(k, scores.shape[1])
            part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            cand_scores = np.take_along_axis(scores, part, axis=1)
            best_scores = np.concatenate([best_scores, cand_scores], axis=1)
            best_rows = np.concatenate([best_rows, part + start], axis=1)
            if best_scores.shape[1] > k:
                keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, keep, axis=1)
                best_rows = np.take_along_axis(best_rows, keep, axis=1)
        # ties are broken by row (item id order) so results are deterministic
        order = np.lexsort((best_rows, -best_scores), axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_rows = np.take_along_axis(best_rows, order, axis=1)
        return best_scores, self.ids[best_rows]
