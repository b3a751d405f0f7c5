"""Synthetic embeddings with known groups, for tests and benchmarks of clustering.

:func:`make_groups` draws ``groups`` random unit directions in ``dim`` dimensions and places
each member at ``direction + spread * N(0, I)`` (renormalised); larger ``spread`` means more
overlap (cosine of a member to its direction is about ``1 / sqrt(1 + dim * spread**2)``).
A ``noise_share`` of extra items is uniform on the sphere and labelled ``"noise"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipatlas.analysis.clustering.kmeans import normalise

__all__ = ["Synthetic", "make_groups"]


@dataclass(frozen=True)
class Synthetic:
    vectors: np.ndarray  # float32, L2-normalised, shuffled
    labels: list[str]  # "g0".."gN" or "noise"

    @property
    def keys(self) -> list[str]:
        return [f"item-{i:06d}" for i in range(len(self.labels))]


def make_groups(
    groups: int = 20,
    *,
    dim: int = 64,
    sizes: tuple[int, int] = (15, 120),
    spread: float = 0.07,
    noise_share: float = 0.05,
    seed: int = 0,
) -> Synthetic:
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((groups, dim)))
    counts = rng.integers(sizes[0], sizes[1] + 1, size=groups)
    parts = [centres[g] + spread * rng.standard_normal((int(n), dim)) for g, n in enumerate(counts)]
    labels = [f"g{g}" for g, n in enumerate(counts) for _ in range(int(n))]
    n_noise = round(noise_share * int(counts.sum()) / (1 - noise_share))
    parts.append(rng.standard_normal((n_noise, dim)))
    labels += ["noise"] * n_noise
    order = rng.permutation(len(labels))
    vectors = normalise(np.vstack(parts))[order]
    return Synthetic(vectors, [labels[i] for i in order])
