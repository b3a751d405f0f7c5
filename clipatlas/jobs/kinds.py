"""Job kinds: a name -> the function that does the work, found through one registry.

A kind is ``run(ctx) -> result dict`` plus an optional
``check(params, settings, collection) -> params`` that refuses bad parameters when the job is
submitted (so the form or API caller hears about it at once, not from a failed job). Adding a
workflow is a few lines::

    def run_build(ctx: JobContext) -> dict[str, Any]:
        with ctx.atlas() as atlas:
            return atlas.build_dataset(**ctx.params, progress=ctx.progress).as_dict()

    kinds.add(JobKind("build-dataset", run_build))

``ctx.progress`` takes :class:`~clipatlas.progress.ProgressEvent` s (shown live) and raises
:class:`~clipatlas.errors.OperationCancelled` once the job is cancelled; loops over items should
also test ``ctx.should_stop()`` between items, so a cancel lands within 2 s.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipatlas.errors import UnknownPluginError

if TYPE_CHECKING:
    from clipatlas.atlas import Atlas
    from clipatlas.jobs.model import Job
    from clipatlas.progress import ProgressCallback
    from clipatlas.settings import Settings

__all__ = ["DEFAULT_KINDS", "JobContext", "JobKind", "JobKinds", "default_kinds"]

DEFAULT_KINDS: tuple[str, ...] = (
    "clipatlas.jobs.builtin:register",
    "clipatlas.jobs.workflows:register",
)


@dataclass
class JobContext:
    """What a running job's function gets."""

    job: Job
    settings: Settings
    progress: ProgressCallback
    should_stop: Callable[[], bool]
    log: Callable[[str], None]

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def atlas(self, **options: Any) -> Atlas:
        """Open the job's collection (the caller closes it: ``with ctx.atlas() as atlas``)."""
        from clipatlas.atlas import Atlas

        options.setdefault("settings", self.settings)
        return Atlas.open(self.job.collection, **options)


JobFunction = Callable[[JobContext], Mapping[str, Any] | None]
ParamsCheck = Callable[
    [Mapping[str, Any], "Settings", str], dict[str, Any]
]  # params, settings, collection


@dataclass(frozen=True)
class JobKind:
    name: str
    run: JobFunction
    check: ParamsCheck | None = None
    description: str = ""


@dataclass
class JobKinds:
    kinds: dict[str, JobKind] = field(default_factory=dict)

    def add(self, kind: JobKind) -> None:
        self.kinds[kind.name] = kind

    def get(self, name: str) -> JobKind:
        kind = self.kinds.get(name)
        if kind is None:
            raise UnknownPluginError("job kind", name, sorted(self.kinds))
        return kind

    def names(self) -> list[str]:
        return sorted(self.kinds)

    def load(self, target: str) -> None:
        module_name, _, attr = target.partition(":")
        getattr(importlib.import_module(module_name), attr or "register")(self)


def default_kinds() -> JobKinds:
    kinds = JobKinds()
    for target in DEFAULT_KINDS:
        kinds.load(target)
    return kinds
