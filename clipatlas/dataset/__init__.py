"""Dataset builder: a search query -> a clean, de-duplicated, on-topic image dataset.

Stages (one module each): ``collect`` (list once, ingest idempotently), ``quality`` (ingest
rejections, size, aspect, sharpness, exact and near duplicates), ``meaning`` (cluster, choose
the cluster that matches the query, judge each picture), ``export`` (temp folder renamed into
place), ``report`` (self-contained HTML). ``state`` keeps the build resumable in the
collection's database; ``build`` runs them in order. Entry point: :meth:`clipatlas.Atlas.
build_dataset` or :func:`build_dataset`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipatlas.dataset.config import BuildRequest, ExportConfig, MeaningConfig, QualityConfig
from clipatlas.dataset.naming import safe_name, slug

if TYPE_CHECKING:
    from clipatlas.dataset.build import DatasetBuild, build_dataset
    from clipatlas.dataset.collect import StopHook

__all__ = [
    "BuildRequest",
    "DatasetBuild",
    "ExportConfig",
    "MeaningConfig",
    "QualityConfig",
    "StopHook",
    "build_dataset",
    "safe_name",
    "slug",
]


def __getattr__(name: str) -> Any:
    # the stages (and scikit-learn behind them) load on first use, not with the CLI
    if name in ("DatasetBuild", "build_dataset"):
        from clipatlas.dataset import build

        return getattr(build, name)
    if name == "StopHook":
        from clipatlas.dataset.collect import StopHook

        return StopHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
