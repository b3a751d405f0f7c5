"""Numeric precision of image embedding: ``fp32`` or ``bf16`` autocast, chosen or automatic.

``auto`` picks bf16 where the hardware runs it natively (CPUs with AVX512-BF16 or AMX, CUDA
GPUs that support bf16) and fp32 elsewhere. bf16 is never trusted blindly: the first pictures an
embedder sees (up to :data:`CHECK_ITEMS`) are embedded both ways, and if any bf16 vector has a
cosine below
:data:`MIN_AGREEMENT` with its fp32 vector the embedder falls back to fp32 for good. Text is
always embedded in fp32 (queries are few; exactness matters more than speed there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipatlas.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_AGREEMENT", "PRECISIONS", "PrecisionGuard", "resolve_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
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
    if name != "auto":
        return name
    family = device.partition(":")[0]
    if family == "cpu":
        return "bf16" if _cpu_has_native_bf16() else "fp32"
    if family == "cuda":
        return "bf16" if _cuda_has_bf16() else "fp32"
    return "fp32"


class PrecisionGuard:
    """Runs a batch function under the chosen precision, checking bf16 on the first batch."""

    def __init__(self, model_id: str, precision: str, device: str) -> None:
        self.model_id = model_id
        self.device_type = device.partition(":")[0]
        self.precision = resolve_precision(precision, device)
        self.agreement: float | None = None  # min cosine bf16 vs fp32 on the first batch

    def _context(self, precision: str) -> AbstractContextManager[Any]:
        if precision != "bf16":
            return nullcontext()
        import torch

        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def run(self, fn: Callable[[Any], torch.Tensor], batch: Any) -> torch.Tensor:
        if self.precision != "bf16" or self.agreement is not None:
            with self._context(self.precision):
                return fn(batch).float()
        import torch

        probe = batch[:CHECK_ITEMS]
        exact = fn(probe).float()
        with self._context("bf16"):
            fast = fn(batch).float()
        cosine = torch.nn.functional.cosine_similarity(exact, fast[: len(exact)], dim=-1)
        self.agreement = float(cosine.min())
        if self.agreement < MIN_AGREEMENT:
            log.warning(
                "%s: bf16 agrees with fp32 only to cosine %.4f on the first batch; using fp32",
                self.model_id,
                self.agreement,
            )
            self.precision = "fp32"
            return fn(batch).float()  # rare: the whole first batch again, exactly
        return fast
