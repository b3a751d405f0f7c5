"""Which cluster is the query's: size decides, the query text only breaks ties or vetoes.

Search results for a word are mostly pictures of it, so the biggest dense cluster is the
subject (the seed project's rule). The query text is weak evidence: a model that cannot read
the query (a Korean word in an English CLIP) still prefers *some* cluster, by a cosine gap of a
few hundredths that means nothing. The text is therefore calibrated against a null: the same
relevances computed for :data:`CONTROL_TEXTS`, texts about unrelated things in several forms
(English phrases and words, Korean words, nonsense) that stand for "a text that knows nothing
about this search".

For clusters ``a`` and ``b`` the query's *preference* is ``m = rel(a) - rel(b)``; each control
text ``t`` gives ``m_t``. The text's evidence for ``a`` over ``b`` is the robust z-score

    z(a, b) = (m - median_t m_t) / max(1.4826 * MAD_t m_t, 0.002)

i.e. how far the query's preference lies outside what unrelated texts produce. Then:

1. **Veto.** A cluster ``b`` is vetoed when some cluster ``a`` beats it with ``z >= veto_z``
   (default 6): the text is overwhelmingly sure ``b`` is not the query, whatever its size.
   Negative prompts and example pictures are part of the relevance, so they veto readily.
2. **Size.** The largest cluster that is not vetoed is the *size leader*.
3. **Tie-break.** A cluster at least ``tie_ratio`` (0.5) times the leader's size whose
   evidence over the leader is ``z >= text_z`` (3) wins instead (the highest z).
4. **Disagreement.** When the text is confident (``z >= text_z``) about a cluster that lost
   on size, the result carries an ``evidence_disagrees`` warning.
5. **Density.** A chosen cluster holding less than ``min_share`` (10 %) of the pictures is
   refused (:class:`~clipatlas.errors.WeakClusterError`), or exported with a
   ``small_cluster`` warning when ``allow_small``.

The measured numbers behind the defaults are in docs/dataset-builder.md ("Choosing the
cluster").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CONTROL_TEXTS", "Choice", "choose_cluster", "text_z"]

CONTROL_TEXTS: tuple[str, ...] = (
    "a photo of a bicycle", "a photo of a mountain lake", "a close-up of a spoon",
    "a screenshot of a spreadsheet", "a pencil drawing of a house", "a bowl of noodle soup",
    "car", "tree", "shoe", "clock", "guitar", "bridge",
    "자전거", "숟가락", "바다", "건물", "신발", "기차",
    "qzxv plorth", "ㅁㄴㅇㄹ", "12345", "zzkq wub", "the", "image",
)  # fmt: skip

_SIGMA_FLOOR = 0.002
_MIN_CONTROLS = 8


def text_z(rel: np.ndarray, control: np.ndarray) -> np.ndarray:
    """(k,) query relevances and (T, k) control relevances -> (k, k) z of row over column."""
    k = len(rel)
    if len(control) < _MIN_CONTROLS:
        return np.zeros((k, k))
    m = rel[:, None] - rel[None, :]
    mt = control[:, :, None] - control[:, None, :]  # (T, k, k)
    centre = np.median(mt, axis=0)
    sigma = np.maximum(1.4826 * np.median(np.abs(mt - centre), axis=0), _SIGMA_FLOOR)
    z = (m - centre) / sigma
    np.fill_diagonal(z, 0.0)
    return np.asarray(z, dtype=np.float64)


@dataclass
class Choice:
    """The chosen cluster (an index into the clusters given), why, and what to tell the user."""

    index: int
    decided_by: str  # size | text_tie_break | size_after_veto | only_cluster
    z: np.ndarray  # (k, k) text evidence, row over column
    vetoed: set[int] = field(default_factory=set)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def choose_cluster(
    sizes: np.ndarray,
    rel: np.ndarray,
    control: np.ndarray,
    labels: list[int],
    *,
    tie_ratio: float,
    text_z_min: float,
    veto_z: float,
) -> Choice:
    """Apply the rule of the module docstring to clusters of ``sizes`` and relevances."""
    k = len(sizes)
    z = text_z(rel, control)
    if k == 1:
        return Choice(0, "only_cluster", z)
    vetoed = {b for b in range(k) if (z[:, b] >= veto_z).any()}
    if len(vetoed) == k:  # the text contradicts itself: it cannot veto everything
        vetoed = set()
    order = sorted(range(k), key=lambda i: (-int(sizes[i]), -float(rel[i])))
    leader = next(i for i in order if i not in vetoed)
    rivals = [
        i
        for i in order
        if i != leader
        and i not in vetoed
        and sizes[i] >= tie_ratio * sizes[leader]
        and z[i, leader] >= text_z_min
    ]
    if rivals:
        chosen = max(rivals, key=lambda i: float(z[i, leader]))
        decided = "text_tie_break"
    else:
        chosen, decided = leader, "size_after_veto" if order[0] in vetoed else "size"
    choice = Choice(chosen, decided, z, vetoed)
    best = max((i for i in range(k) if i != chosen), key=lambda i: float(z[i, chosen]))
    if z[best, chosen] >= text_z_min:
        choice.warnings.append(
            {
                "code": "evidence_disagrees",
                "message": (
                    f"the query text points at cluster {labels[best]} ({int(sizes[best])} "
                    f"pictures, text evidence z={z[best, chosen]:.1f}) but cluster "
                    f"{labels[chosen]} ({int(sizes[chosen])} pictures) won on size; add "
                    "--prompt/--negative or example pictures to settle it"
                ),
                "cluster": labels[best],
                "chosen": labels[chosen],
                "z": round(float(z[best, chosen]), 2),
            }
        )
    return choice
