"""How many pictures (or texts) a model takes at once: the automatic batch size and OOM back-off.

``Settings.batch_size`` is ``0`` (automatic) by default; any other value is used as given.
Automatic means, per device:

* **CPU**: :data:`CPU_DEFAULT` pictures, a measured value (see its comment).
* **CUDA**: as many as fit. Before the first batch, free memory (``torch.cuda.mem_get_info`` plus
  what torch's caching allocator holds unused) is divided by a conservative per-item estimate
  (:data:`IMAGE_BYTES_PER_PIXEL` x the crop's pixels). The first batch then measures the real
  cost per item (``torch.cuda.max_memory_allocated`` over the batch) and the size is recomputed
  from it. Always capped at :data:`CUDA_CAP` and kept at :data:`HEADROOM` of free memory.
* **MPS**: :data:`MPS_DEFAULT`, fixed (Apple GPUs share the system's memory).

Whatever the size, a batch that runs out of device memory is not lost: the allocator's cache is
emptied, the size is halved and the *same* items are tried again, in order; the smaller size is
kept (never grown again) for the rest of the embedder's life. If even one item does not fit,
:class:`~clipatlas.errors.EmbedderOutOfMemoryError` names the items. An explicit size is never
grown or re-measured, but it backs off on out-of-memory the same way (with a warning), rather
than failing a long run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clipatlas.errors import ConfigError, EmbedderOutOfMemoryError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CPU_DEFAULT",
    "CUDA_CAP",
    "CUDA_UNMEASURED",
    "FALLBACK",
    "MPS_DEFAULT",
    "BatchSizer",
    "CudaMemory",
    "Memory",
    "embedder_batch_size",
    "image_item_bytes",
    "is_out_of_memory",
    "resolve_batch_size",
    "run_in_batches",
    "size_from_memory",
]

log = logging.getLogger(__name__)

# CPU: 32, measured. Model-only fp32 images/s of a ViT-B/32-sized CLIP on this project's 2-core
# machine (`bench/embed_throughput.py --batch-sizes 8 16 32 64 0 --images 64`, 2026-11-22, each
# size twice in ABBA order, load average 1.6 -> 3.1): 8: 8.9, 16: 9.0, 32: 9.2, 64: 8.9. The
# rate is flat (differences are within the run-to-run noise of +-0.4), so a CPU gains nothing
# from big batches while they cost memory (the Ingestor keeps two batches of crops ahead) and
# latency; 32 is in the flat middle, the previous fixed default and sentence-transformers' own.
CPU_DEFAULT = 32
MPS_DEFAULT = 64  # not measured (no Apple GPU here): moderate, and OOM back-off covers the rest
CUDA_CAP = 256  # an upper bound, not measured (no GPU here): more holds more crops, commits later
CUDA_UNMEASURED = 64  # CUDA when free memory cannot be read (e.g. a text-only model's encode)
FALLBACK = 32  # what the Ingestor groups by for embedders that do not say (fake:, imported)
HEADROOM = 0.8  # share of free device memory a batch may take (fragmentation, other tensors)
# Conservative activation memory of one picture in an fp32 CLIP-family ViT, per input pixel:
# tokens grow with pixels; ~12 live (tokens x width) float32 tensors plus the attention scores
# come to ~420 B/px for ViT-L/14 at 224 and ~630 B/px at 336 (eager attention), so 1 KiB/px
# leaves room for wider towers. Only the first batch relies on it; then it is measured.
IMAGE_BYTES_PER_PIXEL = 1024
TEXT_ITEM_BYTES = 8 * 1024 * 1024  # 77 tokens x width 1280 x ~12 float32 tensors ~ 5 MB


def image_item_bytes(crop: tuple[int, int]) -> int:
    """The conservative first guess of one picture's device memory for a ``crop``-sized input."""
    return IMAGE_BYTES_PER_PIXEL * crop[0] * crop[1]


def size_from_memory(free_bytes: int, item_bytes: int, cap: int = CUDA_CAP) -> int:
    """How many items of ``item_bytes`` fit in :data:`HEADROOM` of ``free_bytes`` (1..cap).

    Rounded down to a multiple of 8 from 8 up (tensor-core friendly shapes).
    """
    if item_bytes <= 0:
        return cap
    n = int(free_bytes * HEADROOM) // item_bytes
    n = max(1, min(cap, n))
    return n - n % 8 if n >= 8 else n


def resolve_batch_size(
    requested: int,
    device: str,
    *,
    free_bytes: int | None = None,
    item_bytes: int | None = None,
    cap: int = CUDA_CAP,
) -> int:
    """The batch size to start with: ``requested`` if > 0, else the device's automatic size.

    For CUDA, ``free_bytes`` and ``item_bytes`` (given by the caller, so this stays pure) size
    it; without them it is :data:`CUDA_UNMEASURED`.
    """
    if requested > 0:
        return requested
    family = device.partition(":")[0]
    if family == "cuda":
        if free_bytes is None or item_bytes is None:
            return min(cap, CUDA_UNMEASURED)
        return size_from_memory(free_bytes, item_bytes, cap)
    if family == "mps":
        return MPS_DEFAULT
    return CPU_DEFAULT


def embedder_batch_size(embedder: object, requested: int = 0) -> int:
    """The batch an embedder runs at (its ``batch_size``), so callers group items to match.

    ``requested`` > 0 wins; embedders that do not say (``fake:``, precomputed vectors) get
    :data:`FALLBACK`.
    """
    if requested > 0:
        return requested
    size = getattr(embedder, "batch_size", None)
    return size if isinstance(size, int) and size > 0 else FALLBACK


def is_out_of_memory(exc: BaseException) -> bool:
    """A device (or host) allocation failure that a smaller batch may avoid."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and (
        "out of memory" in str(exc) or "can't allocate memory" in str(exc)
    )


class Memory(Protocol):
    """Device memory counters (bytes); :class:`CudaMemory` reads torch's."""

    def available(self) -> int: ...
    def allocated(self) -> int: ...
    def reset_peak(self) -> None: ...
    def peak(self) -> int: ...
    def empty_cache(self) -> None: ...


@dataclass
class CudaMemory:
    """torch's CUDA memory counters for one device."""

    device: str

    def available(self) -> int:
        """Free on the device plus what torch's cache holds but no tensor uses."""
        import torch

        free, _total = torch.cuda.mem_get_info(self.device)
        unused = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return int(free + max(0, unused))

    def allocated(self) -> int:
        import torch

        return int(torch.cuda.memory_allocated(self.device))

    def reset_peak(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        import torch

        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))

    def empty_cache(self) -> None:
        import torch

        torch.cuda.empty_cache()


def _empty_caches() -> None:
    import torch

    torch.cuda.empty_cache()  # a no-op unless CUDA was initialised
    mps = getattr(torch, "mps", None)
    backend = getattr(torch.backends, "mps", None)
    if mps is not None and backend is not None and backend.is_available():
        mps.empty_cache()


class BatchSizer:
    """The batch size of one model tower for an embedder's life: chosen, measured, backed off.

    ``item_bytes`` (a number, or a function called when the size is first needed, i.e. after
    the model is loaded) is the first guess of one item's device memory on CUDA. ``memory``
    defaults to :class:`CudaMemory` on a CUDA device; nothing is measured elsewhere.
    """

    def __init__(
        self,
        requested: int,
        device: str = "cpu",
        *,
        item_bytes: int | Callable[[], int] = TEXT_ITEM_BYTES,
        memory: Memory | None = None,
        cap: int = CUDA_CAP,
        model: str = "model",
        what: str = "items",
    ) -> None:
        if requested < 0:
            raise ConfigError(f"batch size must be 0 (automatic) or positive, got {requested}")
        self.requested, self.device, self.cap = requested, device, cap
        self.model, self.what = model, what
        self.automatic = requested == 0
        cuda = device.partition(":")[0] == "cuda"
        self.memory = memory if memory is not None else (CudaMemory(device) if cuda else None)
        self._item_bytes = item_bytes
        self._size: int | None = None if self.automatic else requested
        self.ceiling: int | None = None  # after an out-of-memory: never above this again
        self.measured_item_bytes: int | None = None  # CUDA, from the first batch
        self.backoffs = 0

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self._first_size()
        return self._size

    def _first_size(self) -> int:
        if self.memory is None:
            return resolve_batch_size(0, self.device, cap=self.cap)
        guess = self._item_bytes() if callable(self._item_bytes) else self._item_bytes
        free = self.memory.available()
        return resolve_batch_size(0, self.device, free_bytes=free, item_bytes=guess, cap=self.cap)

    @property
    def measuring(self) -> bool:
        """The next batch measures the per-item memory (automatic, CUDA, not done yet)."""
        return self.automatic and self.memory is not None and self.measured_item_bytes is None

    def measure(self, free_before: int, base: int, peak: int, count: int) -> None:
        """Resize from one batch of ``count`` items that took ``peak - base`` bytes at most."""
        per_item = max(1, (peak - base) // max(1, count))
        self.measured_item_bytes = per_item
        size = size_from_memory(free_before, per_item, self.cap)
        if self.ceiling is not None:
            size = min(size, self.ceiling)
        if size != self.size:
            log.info(
                "%s: %d bytes per %s item measured; batch size %d -> %d",
                self.model,
                per_item,
                self.what,
                self.size,
                size,
            )
        self._size = size

    def back_off(self, start: int, stop: int) -> None:
        """Halve after items ``start..stop-1`` ran out of memory (raise when 1 did not fit)."""
        if stop - start <= 1:
            raise EmbedderOutOfMemoryError(self.model, self.device, self.what, start, stop)
        size = (stop - start) // 2
        self._size = self.ceiling = size
        self.backoffs += 1
        log.warning(
            "%s: out of memory on %s with %d %s; batch size %d from now on",
            self.model,
            self.device,
            stop - start,
            self.what,
            size,
        )


def run_in_batches(
    items: Sequence[Any] | np.ndarray,
    sizer: BatchSizer,
    run: Callable[[Any], torch.Tensor],
) -> list[torch.Tensor]:
    """``run`` over consecutive slices of ``items`` (a list or an array) of at most
    ``sizer.size``, the results as float32 CPU tensors.

    Every item is embedded exactly once in the returned chunks, in order: a slice that runs
    out of memory is retried from its first item at half the size.
    """
    import torch

    chunks: list[torch.Tensor] = []
    start = 0
    while start < len(items):
        stop = min(len(items), start + sizer.size)
        measuring, free_before, base = sizer.measuring, 0, 0
        if measuring:
            assert sizer.memory is not None
            free_before, base = sizer.memory.available(), sizer.memory.allocated()
            sizer.memory.reset_peak()
        oom = False
        try:
            features = run(items[start:stop]).detach().to("cpu", torch.float32)
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
            if not is_out_of_memory(exc):
                raise
            oom = True  # handled below, once the exception (and its frames' tensors) is gone
        if oom:
            (sizer.memory.empty_cache if sizer.memory is not None else _empty_caches)()
            sizer.back_off(start, stop)
            continue
        if measuring:
            assert sizer.memory is not None
            sizer.measure(free_before, base, sizer.memory.peak(), stop - start)
        chunks.append(features)
        start = stop
    return chunks
