"""What a dataset build is asked to do: the request and the knobs of each stage.

Defaults and why (measured by ``bench/quality_thresholds.py``, see docs/dataset-builder.md):

* ``min_sharpness = 100``: the size-normalised Laplacian variance of sharp pictures with a
  short side of 300..2000 px was >= 223 (photos 333..1673), of Gaussian-defocused ones <= 44
  at every size; 100 is about their geometric mean (2x margin either way). Most 3x-upscaled
  thumbnails (18..93) are caught too; very detailed ones (up to ~150) are not.
* ``min_side = 300``: below it CLIP's 224 px input is upsampled and a dataset picture is of
  little use; ``aspect`` within 1:3..3:1 drops banners and strips.
* ``eps = 0.18`` (DBSCAN cosine distance) groups views of one subject while keeping look-alike
  subjects apart. The cluster is chosen by size; the query text breaks a tie (clusters within
  ``tie_ratio = 0.5`` of the biggest's size) at ``text_z = 3`` and vetoes a cluster at
  ``veto_z = 6`` robust deviations beyond unrelated control texts; a chosen cluster below
  ``min_share = 0.1`` of the pictures is refused (``allow_small`` exports it with a warning).
  Measured in docs/dataset-builder.md ("Choosing the cluster").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipatlas.analysis.duplicates import DEFAULT_COSINE, DEFAULT_PHASH_DISTANCE
from clipatlas.errors import ConfigError

__all__ = ["BuildRequest", "ExportConfig", "MeaningConfig", "QualityConfig"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality stage (``None`` switches a duplicate test off)."""

    min_side: int = 300
    min_aspect: float = 1 / 3
    max_aspect: float = 3.0
    min_sharpness: float = 100.0
    phash_distance: int | None = DEFAULT_PHASH_DISTANCE
    cosine: float | None = DEFAULT_COSINE

    def check(self) -> QualityConfig:
        if self.min_side < 1:
            raise ConfigError(f"min_side must be at least 1, got {self.min_side}")
        if not 0 < self.min_aspect <= 1 <= self.max_aspect:
            raise ConfigError(
                f"aspect bounds must satisfy 0 < min <= 1 <= max, got "
                f"{self.min_aspect}..{self.max_aspect}"
            )
        if self.min_sharpness < 0:
            raise ConfigError(f"min_sharpness must not be negative, got {self.min_sharpness}")
        if self.phash_distance is not None and not 0 <= self.phash_distance <= 64:
            raise ConfigError(f"phash_distance must be 0..64, got {self.phash_distance}")
        if self.cosine is not None and not -1 <= self.cosine <= 1:
            raise ConfigError(f"duplicate cosine must be -1..1, got {self.cosine}")
        return self


@dataclass(frozen=True)
class MeaningConfig:
    """The meaning stage: cluster, pick the cluster that is the query's, check each image.

    ``prompts``/``negative_prompts`` are extra texts, ``positive_images``/``negative_images``
    example pictures (paths). The biggest dense cluster wins (:mod:`clipatlas.dataset.evidence`)
    unless the query evidence, as robust z over unrelated control texts, reaches ``text_z``
    for a rival at least ``tie_ratio`` times its size, or ``veto_z`` against it. A chosen
    cluster with less than ``min_share`` of the pictures is refused unless ``allow_small``. A
    member of the chosen cluster is dropped when its own relevance is ``outlier_z`` robust
    deviations below the cluster's median, or below ``min_similarity`` when given.
    """

    method: str = "dbscan"
    eps: float = 0.18
    min_samples: int = 3
    min_cluster_size: int = 5
    prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    positive_images: tuple[str, ...] = ()
    negative_images: tuple[str, ...] = ()
    outlier_z: float = 4.5
    min_similarity: float | None = None
    tie_ratio: float = 0.5
    text_z: float = 3.0
    veto_z: float = 6.0
    min_share: float = 0.1
    allow_small: bool = False

    def check(self) -> MeaningConfig:
        if self.method not in ("dbscan", "hdbscan"):
            raise ConfigError(f"meaning method must be dbscan or hdbscan, got {self.method!r}")
        if not 0 < self.eps <= 2:
            raise ConfigError(f"eps is a cosine distance in (0, 2], got {self.eps}")
        if self.min_samples < 1 or self.min_cluster_size < 2:
            raise ConfigError("min_samples must be >= 1 and min_cluster_size >= 2")
        if not 0 < self.tie_ratio <= 1:
            raise ConfigError(f"tie_ratio must be in (0, 1], got {self.tie_ratio}")
        if not 0 < self.text_z <= self.veto_z:
            raise ConfigError(
                f"need 0 < text_z <= veto_z, got text_z {self.text_z}, veto_z {self.veto_z}"
            )
        if not 0 <= self.min_share < 1:
            raise ConfigError(f"min_share must be 0..1, got {self.min_share}")
        if self.outlier_z <= 0:
            raise ConfigError(f"outlier_z must be positive, got {self.outlier_z}")
        for image in (*self.positive_images, *self.negative_images):
            if not Path(image).expanduser().is_file():
                raise ConfigError(f"example image {image} does not exist")
        return self


@dataclass(frozen=True)
class ExportConfig:
    overwrite: bool = False
    parquet: bool = True  # manifest.parquet beside manifest.jsonl
    hf_metadata: bool = False  # metadata.jsonl (Hugging Face datasets "imagefolder")
    report: bool = True  # report.html


@dataclass(frozen=True)
class BuildRequest:
    """One build: ``query`` from ``source`` -> at most ``limit`` pictures in ``out``."""

    query: str
    out: Path
    source: str = "naver"
    limit: int = 100
    source_options: dict[str, Any] = field(default_factory=dict)
    oversample: float = 2.0  # candidates collected per wanted picture
    quality: QualityConfig = field(default_factory=QualityConfig)
    meaning: MeaningConfig = field(default_factory=MeaningConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def check(self) -> BuildRequest:
        if not self.query.strip():
            raise ConfigError("the dataset query is empty")
        if self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.oversample < 1:
            raise ConfigError(f"oversample must be at least 1, got {self.oversample}")
        self.quality.check()
        self.meaning.check()
        return self

    @property
    def candidates_wanted(self) -> int:
        return max(self.limit, round(self.limit * self.oversample))

    def params(self) -> dict[str, Any]:
        """Everything but the output folder, as JSON (stored with the build)."""
        return {
            "query": self.query,
            "source": self.source,
            "limit": self.limit,
            "oversample": self.oversample,
            "source_options": {k: _jsonable(v) for k, v in self.source_options.items()},
            "quality": asdict(self.quality),
            "meaning": {k: _jsonable(v) for k, v in asdict(self.meaning).items()},
            "export": asdict(self.export),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    return value
