"""Embedding a source over a Ray cluster with Ray Data, written back through the ingest path.

    from clipatlas.distributed import embed_with_ray
    report = embed_with_ray(atlas, "/shared/pictures", address="ray://head:10001")

What runs where:

* **driver** (this process): lists the source and skips what the collection already holds
  (the same ``(source, key)`` test as :class:`~clipatlas.pipeline.ingest.Ingestor`), downloads
  remote candidates (the safe fetcher's per-host limits are per run), and writes every batch
  of rows and vectors through ``Ingestor``'s own write path: duplicate check, one transaction
  per batch, progress, stop between items. Only the driver writes, so a run is idempotent and
  resumable exactly like a local ingest.
* **Ray tasks** read and decode (``decode_candidate``: bounded decode, hashes, quality,
  thumbnail, model-input crop) — files must be on a path every node sees, and the media folder
  too (a shared filesystem).
* **Ray actors** (``actors`` of them, one GPU each when ``gpus_per_actor`` is set) hold the
  model and embed the crops in batches.

Results come back in input order (``preserve_order``), so batches, duplicate decisions and
item ids are the ones a single-process ingest of the same source makes.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.batching import CUDA_CAP, resolve_batch_size
from clipatlas.errors import ClipatlasError, DistributedError, RayNotInstalledError
from clipatlas.images import ImageLimits
from clipatlas.pipeline.decode import (
    DecodeConfig,
    Decoded,
    decode_candidate,
    remove_stale_temp_files,
)
from clipatlas.pipeline.ingest import Ingestor, IngestReport, Job
from clipatlas.progress import ProgressCallback
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from clipatlas.sources.base import Candidate, Source

if TYPE_CHECKING:
    from clipatlas.atlas import Atlas

__all__ = ["embed_with_ray"]

_WINDOW = 4096  # candidates per Ray dataset: bounds the driver's memory on huge sources
_DECODE_ROWS = 8  # candidates per decode task batch


# -- cluster side ------------------------------------------------------------------------------


def _decode_rows(batch: dict[str, np.ndarray], config: DecodeConfig) -> dict[str, np.ndarray]:
    """A Ray task: decode candidates (read the file unless the driver fetched the bytes)."""
    out = []
    for blob in batch["job"]:
        job: Job = pickle.loads(blob)
        if isinstance(job, Decoded):  # decided on the driver (e.g. a failed download)
            out.append(pickle.dumps(job))
            continue
        candidate, data = job
        out.append(pickle.dumps(decode_candidate(candidate, config, data)))
    return {"pos": batch["pos"], "decoded": np.array(out, dtype=object)}


class _EmbedRows:
    """A Ray actor holding the model; replaces each stored item's crop with its vector."""

    def __init__(self, model: str, settings: Settings) -> None:
        self.embedder = default_registry().create_embedder(model, settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded: list[Decoded] = [pickle.loads(b) for b in batch["decoded"]]
        todo = [d for d in decoded if d.item.status == "ok" and d.pixels is not None]
        if todo:
            vectors = self.embedder.embed_pixels(np.stack([d.pixels for d in todo]))  # type: ignore[misc]
            for d, v in zip(todo, vectors, strict=True):
                d.pixels = np.asarray(v, dtype=np.float32)
        out = [pickle.dumps(d) for d in decoded]
        return {"pos": batch["pos"], "decoded": np.array(out, dtype=object)}


# -- driver side -------------------------------------------------------------------------------


class _Precomputed:
    """Stands in for the model on the driver: the vectors were computed on the cluster and
    travel in ``Decoded.pixels``, so ``Ingestor``'s write path runs unchanged."""

    modalities = frozenset({"image"})

    def __init__(self, embedder_id: str, dim: int) -> None:
        self.id, self.dim = embedder_id, dim

    def image_preprocessor(self) -> ImagePreprocessor:
        raise ClipatlasError("vectors of a Ray run are computed on the cluster")

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        vectors = np.asarray(pixels, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ClipatlasError(f"cluster returned vectors of shape {vectors.shape}")
        return vectors

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise ClipatlasError("vectors of a Ray run are computed on the cluster")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise ClipatlasError("vectors of a Ray run are computed on the cluster")


class _RayIngestor(Ingestor):
    """An Ingestor whose decoding and embedding happen on Ray; everything else is inherited."""

    def __init__(self, *args: Any, ray_plan: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = ray_plan

    def _jobs(self, todo: Sequence[Candidate]) -> Iterator[Job]:
        jobs = super()._jobs(todo)  # local files as they are; remote ones downloaded here
        while window := list(islice(jobs, self.plan["window"])):
            yield from self._run_window(window)

    def _run_window(self, window: list[Job]) -> Iterator[Decoded]:
        import ray

        rows = [{"pos": i, "job": pickle.dumps(job)} for i, job in enumerate(window)]
        ds: Any = ray.data.from_items(rows)
        ds = ds.map_batches(
            _decode_rows,
            fn_kwargs={"config": self.config},
            batch_size=_DECODE_ROWS,
            batch_format="numpy",
            num_cpus=1,
        )
        ds = ds.map_batches(
            _EmbedRows,
            fn_constructor_kwargs={"model": self.plan["model"], "settings": self.plan["settings"]},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.plan["actors"]),
            num_cpus=self.plan["cpus_per_actor"],
            num_gpus=self.plan["gpus_per_actor"],
        )
        expected = 0
        try:
            for row in ds.iter_rows():
                if int(row["pos"]) != expected:
                    raise DistributedError(self.plan["address"], "results came back out of order")
                expected += 1
                yield pickle.loads(row["decoded"])
        except ray.exceptions.RayError as exc:
            raise DistributedError(self.plan["address"], str(exc).splitlines()[0]) from exc
        if expected != len(window):
            raise DistributedError(
                self.plan["address"], f"{expected} results for {len(window)} pictures"
            )


def _start_ray(address: str | None) -> bool:
    """Connect to (or start) Ray; True if this call started it (and should stop it)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayNotInstalledError() from exc
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DistributedError(address or "local", str(exc)) from exc
    return True


def embed_with_ray(
    atlas: Atlas,
    source: str | os.PathLike[str] | Source,
    *,
    address: str | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    window: int = _WINDOW,
    assign: bool = True,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest ``source`` into ``atlas`` with decoding and embedding spread over Ray.

    ``address``: a Ray cluster (``auto``, ``ray://head:10001``); None uses
    ``settings.ray_address`` or starts a local Ray. The report is the one
    :meth:`Atlas.ingest <clipatlas.atlas.Atlas.ingest>` gives, and so is what is stored.
    """
    if actors < 1:
        raise ClipatlasError(f"actors must be at least 1, got {actors}")
    address = address or atlas.settings.ray_address
    if not isinstance(source, Source):
        source = atlas.source("folder", root=source)
    embedder = atlas.embedder()  # loaded here too: the run fails early on a bad model
    atlas.collection = atlas.store.bind_embedder(atlas.collection, embedder.id, embedder.dim)
    s = atlas.settings
    config = DecodeConfig(
        limits=ImageLimits(
            max_pixels=s.max_pixels, min_side=s.min_side, max_bytes=s.max_file_bytes
        ),
        preprocessor=embedder.image_preprocessor(),
        media_root=Path(atlas.media_root).resolve(),
        thumbnail_size=s.thumbnail_size,
        copy_media=s.copy_media or source.name != "folder",
    )
    remove_stale_temp_files(atlas.media_root)
    started = _start_ray(address)
    plan = {
        "address": address or "local",
        "model": embedder.id,
        "settings": s,
        "actors": actors,
        "cpus_per_actor": cpus_per_actor,
        "gpus_per_actor": gpus_per_actor,
        "window": max(1, window),
    }
    # rows per actor call (and per commit): as given, else automatic; GPU actors get up to
    # CUDA_CAP rows a call and size their own GPU batches inside it (embedders/batching.py)
    batch_size = s.batch_size or (CUDA_CAP if gpus_per_actor else resolve_batch_size(0, "cpu"))
    ingestor = _RayIngestor(
        atlas.store,
        atlas.collection,
        config,
        _Precomputed(embedder.id, embedder.dim),
        batch_size=batch_size,
        workers=-1,  # nothing is decoded here: results arrive decoded from the cluster
        progress=progress,
        fetcher=atlas.fetcher,
        fetch_concurrency=s.fetch_concurrency,
        ray_plan=plan,
    )
    try:
        report = ingestor.run(source)
    finally:
        if started:
            import ray

            ray.shutdown()
    if assign and report.embedded and atlas.runs():
        report.arrivals = atlas.assign_new().as_dict()
    return report
