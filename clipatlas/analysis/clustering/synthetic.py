"""Synthetic embeddings with known groups, for tests and benchmarks of clustering.

:func:`make_groups` draws ``groups`` random unit directions in ``dim`` dimensions and places
each member at ``direction + spread * N(0, I)`` (renormalised); larger ``spread`` means more
overlap (cosine of a member to its direction is about ``1 / sqrt(1 + dim * spread**2)``).
A ``noise_share`` of extra items is uniform on the sphere and labelled ``"noise"``.

:func:`make_uneven_groups` makes the harder data of issue 22: groups of Zipf sizes (2,000 items,
20 groups, 5 % noise: 528 down to 26) whose members vary along only ``rank`` directions of their
own group, with ``spread`` the expected norm of that deviation. A large group spread along a
few directions is cheaper for KMeans to split than two small groups are to merge, so KMeans is
the limit there while HDBSCAN recovers the groups (numbers in ``tests/planted_groups.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipatlas.analysis.clustering.kmeans import normalise

__all__ = ["Synthetic", "make_groups", "make_uneven_groups", "zipf_sizes"]


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
    n_noise = round(noise_share * int(counts.sum()) / (1 - noise_share))
    return _assemble(rng, parts, counts, n_noise)


def _assemble(
    rng: np.random.Generator, parts: list[np.ndarray], counts: np.ndarray, n_noise: int
) -> Synthetic:
    """Groups' members plus ``n_noise`` uniform items, labelled, normalised and shuffled."""
    dim = parts[0].shape[1]
    labels = [f"g{g}" for g, n in enumerate(counts) for _ in range(int(n))]
    parts = [*parts, rng.standard_normal((n_noise, dim))]
    labels += ["noise"] * n_noise
    order = rng.permutation(len(labels))
    vectors = normalise(np.vstack(parts))[order]
    return Synthetic(vectors, [labels[i] for i in order])


def zipf_sizes(total: int, groups: int, zipf: float = 1.0) -> np.ndarray:
    """``groups`` sizes summing to ``total``, proportional to ``1 / rank**zipf``."""
    weights = 1.0 / np.arange(1, groups + 1) ** zipf
    sizes: np.ndarray = np.maximum(1, np.round(total * weights / weights.sum())).astype(int)
    sizes[0] += total - int(sizes.sum())
    return sizes


def make_uneven_groups(
    n: int = 2000, *, groups: int = 20, dim: int = 64, spread: float = 0.6, rank: int = 3,
    zipf: float = 1.0, noise_share: float = 0.05, seed: int = 0,
) -> Synthetic:  # fmt: skip
    """``n`` items: groups of Zipf sizes (:func:`zipf_sizes`), each member its centre plus a
    Gaussian deviation of expected norm ``spread`` inside a ``rank``-dimensional random
    subspace of its own group, and ``noise_share`` uniform noise (see the module doc)."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((groups, dim)))
    n_noise = round(noise_share * n)
    counts = zipf_sizes(n - n_noise, groups, zipf)
    parts = []
    for centre, size in zip(centres, counts, strict=True):
        basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T  # (rank, dim), orthonormal
        parts.append(
            centre + spread / np.sqrt(rank) * rng.standard_normal((int(size), rank)) @ basis
        )
    return _assemble(rng, parts, counts, n_noise)
