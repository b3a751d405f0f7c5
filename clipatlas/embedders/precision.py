"""Numeric precision of image embedding: ``fp32``, ``bf16`` autocast or ``int8`` ONNX Runtime.

``auto`` picks bf16 where the hardware runs it natively (CPUs with AVX512-BF16 or AMX, CUDA
GPUs that support bf16) and fp32 elsewhere. ``int8`` is only ever chosen explicitly: the image
tower is exported to ONNX and quantised (:mod:`clipatlas.embedders.onnx_int8`, the optional
``onnx`` extra) and runs on the CPU. Neither is trusted blindly: the first pictures an embedder
sees (up to :data:`CHECK_ITEMS`) are embedded both ways, the lowest cosine with the fp32 vectors
is kept in :attr:`PrecisionGuard.agreement` (and logged), and if it is below
:data:`MIN_AGREEMENT` the embedder falls back to fp32 for good (so it does when the int8 tower
cannot be built). Text is always embedded in fp32 (queries are few; exactness matters more than
speed there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipatlas.errors import ConfigError, OnnxExportError

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_AGREEMENT", "PRECISIONS", "PrecisionGuard", "resolve_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
CHECKED = ("bf16", "int8")  # precisions compared with fp32 on the first batch
MIN_AGREEMENT = 0.99
CHECK_ITEMS = 8  # pictures of the first batch embedded both ways


@cache
def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def _cuda_has_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_precision(requested: str, device: str) -> str:
    name = (requested or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    family = device.partition(":")[0]
    if name == "int8":
        if family != "cpu":
            raise ConfigError(
                f"precision 'int8' runs on the CPU only, but the device is {device!r}; "
                "use bf16 (or fp32) on a GPU, or set device to cpu"
            )
        from clipatlas.embedders.onnx_int8 import check_onnx_installed

        check_onnx_installed()
    if name != "auto":
        return name
    if family == "cpu":
        return "bf16" if _cpu_has_native_bf16() else "fp32"
    if family == "cuda":
        return "bf16" if _cuda_has_bf16() else "fp32"
    return "fp32"


class PrecisionGuard:
    """Runs a batch function under the chosen precision, checking it on the first batch.

    bf16 runs the function under autocast; int8 sets :attr:`int8_active` while it runs, and the
    function (``TorchImageTextEmbedder._image_batch``) then uses the int8 ONNX tower.
    """

    def __init__(self, model_id: str, precision: str, device: str) -> None:
        self.model_id = model_id
        self.device_type = device.partition(":")[0]
        self.precision = resolve_precision(precision, device)
        self.agreement: float | None = None  # min cosine bf16/int8 vs fp32 on the first batch
        self.int8_active = False
        self.fallback: str | None = None  # why the requested precision was given up

    @contextmanager
    def _int8(self) -> Iterator[None]:
        self.int8_active = True
        try:
            yield
        finally:
            self.int8_active = False

    def _context(self, precision: str) -> AbstractContextManager[Any]:
        if precision == "int8":
            return self._int8()
        if precision != "bf16":
            return nullcontext()
        import torch

        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def run(self, fn: Callable[[Any], torch.Tensor], batch: Any) -> torch.Tensor:
        if self.precision not in CHECKED or self.agreement is not None:
            with self._context(self.precision):
                return fn(batch).float()
        import torch

        fast_name = self.precision
        probe = batch[:CHECK_ITEMS]
        exact = fn(probe).float()
        try:
            with self._context(fast_name):
                fast = fn(batch).float()
        except OnnxExportError as exc:
            return self._fall_back(fn, batch, f"{exc}")
        cosine = torch.nn.functional.cosine_similarity(exact, fast[: len(exact)], dim=-1)
        self.agreement = float(cosine.min())
        if self.agreement < MIN_AGREEMENT:
            return self._fall_back(
                fn,
                batch,
                f"{fast_name} agrees with fp32 only to cosine {self.agreement:.4f} on the first "
                f"{len(exact)} pictures (minimum {MIN_AGREEMENT})",
            )
        log.info(
            "%s: %s agrees with fp32 to cosine >= %.4f on the first %d pictures",
            self.model_id,
            fast_name,
            self.agreement,
            len(exact),
        )
        return fast

    def _fall_back(self, fn: Callable[[Any], torch.Tensor], batch: Any, why: str) -> torch.Tensor:
        log.warning("%s: %s; using fp32 for this embedder from now on", self.model_id, why)
        self.fallback = why
        self.precision = "fp32"
        return fn(batch).float()  # rare: the whole first batch again, exactly
