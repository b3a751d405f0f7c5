"""Per-modality similarities and their fusion (scores, not vectors).

For a pair of records each *component* is computed only where both sides have what it needs:

=========  ==========================================================  ======================
component  raw score                                                   present when
=========  ==========================================================  ======================
image      cosine of the CLIP image vectors                            both have a photo
text       cosine of the text-model vectors of the joined text fields  both have text
cross      cosine of CLIP text (photo-less side) and CLIP image        exactly one has a photo
place      cosine of the text-model vectors of the place names         both name a place
distance   exp(-km / place_scale_km) (haversine)                       both have coordinates
time       exp(-|days| / time_scale_days)                              both have a time
=========  ==========================================================  ======================

Raw scores live on different scales (CLIP image-image cosines sit near 0.8, text-image ones
near 0.25), so each is first mapped to log-odds, ``l = slope * raw + intercept`` (fitted by
:mod:`clipatlas.matching.calibration`, or the documented defaults). The fused log-odds is the
weighted mean of the components present, weights renormalised over them; the category rule
then applies (``gate``: different categories never match; ``penalty``: subtract
``category_penalty``; ``off``). The score is ``sigmoid(log-odds)`` in [0, 1].

The *fixed* fusion (``method="fixed"``) is the naive one the seed started from: one vector per
record, ``0.3 x CLIP text + 0.7 x CLIP image`` (a photo-less record is its text part alone),
compared by cosine; the category rule applies to its log-odds the same way. Calibration falls
back to it when the fitted components do not beat it on held-out pairs.

A pair is decided against the threshold of its *modality pattern*: ``both_photos``,
``one_photo`` or ``no_photo`` (:data:`PATTERNS`). Scores of a photo-less record against a
photo-bearing one rest on other components than two photos do, so each pattern gets its own
threshold when calibration had enough pairs of it (``thresholds``), else the overall one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from clipatlas.embedders.base import l2_normalize
from clipatlas.errors import MatchConfigError
from clipatlas.matching.recordset import RecordSet

__all__ = [
    "COMPONENTS",
    "PATTERNS",
    "Calibration",
    "ComponentParams",
    "PairScores",
    "canonical_category",
    "default_calibration",
    "explain",
    "fixed_vectors",
    "fuse",
    "pair_scores",
]

COMPONENTS: tuple[str, ...] = ("image", "text", "cross", "place", "distance", "time")
CATEGORY_RULES = ("gate", "penalty", "off")
METHODS = ("components", "fixed")
PATTERNS: dict[int, str] = {0: "no_photo", 1: "one_photo", 2: "both_photos"}  # photos in a pair
FIXED_TEXT, FIXED_IMAGE = 0.3, 0.7

# Defaults when no labelled pairs exist: (centre, spread) of each raw score, i.e. the raw value
# at even odds and how much it must move for the odds to change e-fold, plus a weight. They are
# starting points for CLIP ViT-B/32-class image models and multilingual MiniLM text models,
# not measurements: calibrate with labelled pairs for real use (docs/matching.md).
DEFAULTS: dict[str, tuple[float, float, float]] = {
    "image": (0.80, 0.05, 0.35),
    "text": (0.60, 0.08, 0.35),
    "cross": (0.26, 0.03, 0.15),
    "place": (0.70, 0.10, 0.05),
    "distance": (0.50, 0.20, 0.05),
    "time": (0.50, 0.20, 0.05),
}


@dataclass(frozen=True)
class ComponentParams:
    slope: float
    intercept: float
    weight: float
    fitted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Calibration:
    """Everything that turns raw component scores into a decision."""

    components: dict[str, ComponentParams]
    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)  # per pattern, else threshold
    method: str = "components"  # "components" | "fixed" (see the module docstring)
    category_rule: str = "penalty"
    category_penalty: float = 3.0
    category_synonyms: dict[str, str] = field(default_factory=dict)
    time_scale_days: float = 7.0
    place_scale_km: float = 2.0
    source: str = "default"  # "default" | "fitted"
    objective: str = "f1"
    report: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self) -> None:
        if self.category_rule not in CATEGORY_RULES:
            raise MatchConfigError(
                "category_rule", f"{self.category_rule!r}: use gate, penalty or off"
            )
        if not 0.0 < self.threshold < 1.0:
            raise MatchConfigError("threshold", f"{self.threshold!r} must be in (0, 1)")
        if self.method not in METHODS:
            raise MatchConfigError("method", f"{self.method!r}: use components or fixed")
        for pattern, value in self.thresholds.items():
            if pattern not in PATTERNS.values() or not 0.0 < value < 1.0:
                raise MatchConfigError("thresholds", f"{pattern}={value!r}")
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise MatchConfigError("components", f"unknown {sorted(unknown)}")

    def params(self) -> dict[str, Any]:
        """JSON-ready parameters (what is saved with the collection)."""
        return {
            "components": {k: v.as_dict() for k, v in self.components.items()},
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "method": self.method,
            "category_rule": self.category_rule,
            "category_penalty": self.category_penalty,
            "category_synonyms": dict(self.category_synonyms),
            "time_scale_days": self.time_scale_days,
            "place_scale_km": self.place_scale_km,
            "source": self.source,
            "objective": self.objective,
        }

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        report: Mapping[str, Any] | None = None,
        id: int | None = None,
    ) -> Calibration:
        data = dict(params)
        comps = {k: ComponentParams(**v) for k, v in data.pop("components").items()}
        return cls(components=comps, report=dict(report or {}), id=id, **data)

    def with_options(self, **changes: Any) -> Calibration:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def threshold_of(self, photos: int) -> float:
        """The decision threshold of a pair with ``photos`` photos (0, 1 or 2)."""
        return self.thresholds.get(PATTERNS[int(photos)], self.threshold)

    def cuts(self, photos: np.ndarray) -> np.ndarray:
        """The decision threshold of each pair, by its modality pattern."""
        table = np.asarray([self.threshold_of(n) for n in sorted(PATTERNS)], np.float64)
        out: np.ndarray = table[np.asarray(photos, np.int64)]
        return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        slope = np.asarray([self.components[c].slope for c in COMPONENTS], np.float64)
        intercept = np.asarray([self.components[c].intercept for c in COMPONENTS], np.float64)
        weight = np.asarray([self.components[c].weight for c in COMPONENTS], np.float64)
        return slope, intercept, weight


def default_calibration(**options: Any) -> Calibration:
    comps = {
        name: ComponentParams(slope=1.0 / spread, intercept=-centre / spread, weight=weight)
        for name, (centre, spread, weight) in DEFAULTS.items()
    }
    return Calibration(components=comps).with_options(**options)


def canonical_category(value: str | None, synonyms: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    return synonyms.get(lowered, lowered) or None


@dataclass
class PairScores:
    """Raw component scores of pairs: ``raw`` (n, 6) with NaN where a component is absent,
    ``category_same`` (1 same, 0 different, NaN unknown), ``photos`` (0, 1 or 2 photos),
    ``fixed`` the cosine of the fixed 0.3/0.7 fusion vectors (NaN when unknown)."""

    raw: np.ndarray
    category_same: np.ndarray
    photos: np.ndarray
    fixed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.raw)

    def subset(self, mask: np.ndarray) -> PairScores:
        fixed = None if self.fixed is None else self.fixed[mask]
        return PairScores(self.raw[mask], self.category_same[mask], self.photos[mask], fixed)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b, dtype=np.float64) if len(a) else np.zeros(0)


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> Any:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def fixed_vectors(rs: RecordSet, rows: np.ndarray | None = None) -> np.ndarray:
    """The fixed fusion's vector of each record (of ``rows``): 0.3 x CLIP text + 0.7 x CLIP
    image, L2-normalised; a record without a photo is its text part alone."""
    rows = np.arange(len(rs)) if rows is None else np.asarray(rows, np.int64)
    image = rs.photo[rows] * rs.has_photo[rows][:, None]
    return l2_normalize(FIXED_TEXT * rs.clip_text[rows] + FIXED_IMAGE * image)


def pair_scores(
    left: RecordSet, li: np.ndarray, right: RecordSet, ri: np.ndarray, cal: Calibration
) -> PairScores:
    """Raw component scores of the pairs (left[li[k]], right[ri[k]])."""
    li, ri = np.asarray(li, np.int64), np.asarray(ri, np.int64)
    n = len(li)
    raw = np.full((n, len(COMPONENTS)), np.nan)
    lp, rp = left.has_photo[li], right.has_photo[ri]
    lt, rt = left.has_text[li], right.has_text[ri]
    both = lp & rp
    raw[both, 0] = _rowdot(left.photo[li[both]], right.photo[ri[both]])
    m = lt & rt
    raw[m, 1] = _rowdot(left.text[li[m]], right.text[ri[m]])
    a = lp & ~rp & rt  # left photo vs right CLIP text
    raw[a, 2] = _rowdot(left.photo[li[a]], right.clip_text[ri[a]])
    b = rp & ~lp & lt
    raw[b, 2] = _rowdot(left.clip_text[li[b]], right.photo[ri[b]])
    m = left.has_place[li] & right.has_place[ri]
    raw[m, 3] = _rowdot(left.place[li[m]], right.place[ri[m]])
    km = _haversine_km(left.lat[li], left.lon[li], right.lat[ri], right.lon[ri])
    raw[:, 4] = np.exp(-km / cal.place_scale_km)  # NaN stays NaN where unknown
    days = np.abs(left.time[li] - right.time[ri]) / 86400.0
    raw[:, 5] = np.exp(-days / cal.time_scale_days)
    syn = cal.category_synonyms
    lc = [canonical_category(left.categories[i], syn) for i in li]
    rc = [canonical_category(right.categories[i], syn) for i in ri]
    same = np.asarray(
        [np.nan if x is None or y is None else float(x == y) for x, y in zip(lc, rc, strict=True)],
        dtype=np.float64,
    )
    fixed = _rowdot(fixed_vectors(left, li), fixed_vectors(right, ri))
    return PairScores(raw, same, lp.astype(np.int8) + rp.astype(np.int8), fixed)


def component_log_odds(scores: PairScores, cal: Calibration) -> np.ndarray:
    slope, intercept, _ = cal.arrays()
    out: np.ndarray = scores.raw * slope + intercept
    return out


def fuse(
    scores: PairScores,
    cal: Calibration,
    weights: np.ndarray | None = None,
    penalty: float | None = None,
    log_odds: np.ndarray | None = None,
) -> np.ndarray:
    """Match probability of each pair (0 where the gate closes or nothing is comparable)."""
    if cal.method == "fixed":
        logit = _fixed_logit(scores)
    else:
        comp = component_log_odds(scores, cal) if log_odds is None else log_odds
        w = cal.arrays()[2] if weights is None else weights
        present = ~np.isnan(comp)
        total = present @ w
        fused = np.where(present, comp, 0.0) @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            logit = np.where(total > 0, fused / np.where(total > 0, total, 1.0), -np.inf)
    different = scores.category_same == 0.0
    if cal.category_rule == "penalty":
        logit = logit - np.where(
            different, cal.category_penalty if penalty is None else penalty, 0.0
        )
    elif cal.category_rule == "gate":
        logit = np.where(different, -np.inf, logit)
    with np.errstate(over="ignore"):
        prob: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
    return prob


def _fixed_logit(scores: PairScores) -> np.ndarray:
    """Log-odds of the fixed fusion's cosine taken as a probability (clipped into (0, 1))."""
    if scores.fixed is None:
        raise MatchConfigError("method", "the fixed fusion needs the pairs' fixed scores")
    p = np.clip(np.nan_to_num(scores.fixed, nan=0.0), 1e-9, 1 - 1e-9)
    out: np.ndarray = np.log(p) - np.log1p(-p)
    return out


def explain(scores: PairScores, row: int, cal: Calibration) -> dict[str, Any]:
    """Each component's raw score, log-odds and renormalised weight, and the category effect
    (for the fixed fusion: its one score), with the threshold of the pair's pattern."""
    comp = component_log_odds(scores, cal)[row]
    _, _, weight = cal.arrays()
    present = ~np.isnan(comp)
    total = float(weight[present].sum())
    parts = [
        {
            "component": name,
            "raw": round(float(scores.raw[row, i]), 4),
            "log_odds": round(float(comp[i]), 3),
            "weight": round(float(weight[i]) / total, 4) if total > 0 else 0.0,
        }
        for i, name in enumerate(COMPONENTS)
        if present[i]
    ]
    if cal.method == "fixed":
        assert scores.fixed is not None
        parts = [
            {
                "component": "fixed",
                "raw": round(float(scores.fixed[row]), 4),
                "log_odds": round(float(_fixed_logit(scores.subset(np.asarray([row])))[0]), 3),
                "weight": 1.0,
            }
        ]
    same = scores.category_same[row]
    effect = "none"
    if same == 0.0 and cal.category_rule == "penalty":
        effect = f"-{cal.category_penalty:g} log-odds (different categories)"
    elif same == 0.0 and cal.category_rule == "gate":
        effect = "gated (different categories)"
    return {
        "components": parts,
        "missing": [name for i, name in enumerate(COMPONENTS) if not present[i]],
        "category": {
            "rule": cal.category_rule,
            "same": None if np.isnan(same) else bool(same),
            "effect": effect,
        },
        "score": round(float(fuse(scores.subset(np.asarray([row])), cal)[0]), 4),
        "method": cal.method,
        "pattern": PATTERNS[int(scores.photos[row])],
        "threshold": round(cal.threshold_of(int(scores.photos[row])), 6),
    }
