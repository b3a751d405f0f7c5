"""Where and how torch models run: device choice and batched, gradient-free inference.

One place decides the torch device (``Settings.device``: ``auto`` picks CUDA, then Apple MPS,
then CPU) and one helper runs a model over inputs in batches of ``Settings.batch_size`` (0 =
automatic, see :mod:`clipatlas.embedders.batching`) under ``torch.inference_mode()``, returning
L2-normalised float32 numpy rows. Torch is imported inside the functions, so importing this
module (and the registry) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.embedders.base import ImagePreprocessor, l2_normalize
from clipatlas.embedders.batching import BatchSizer, run_in_batches
from clipatlas.embedders.precision import PrecisionGuard
from clipatlas.errors import ConfigError, EmbedderError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEVICE_CHOICES",
    "crops_to_tensor",
    "embed_in_batches",
    "features_tensor",
    "resolve_device",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


_AVAILABLE: dict[str, Callable[[], bool]] = {
    "cpu": lambda: True,
    "cuda": _cuda_available,
    "mps": _mps_available,
}
_AUTO_ORDER = ("cuda", "mps", "cpu")


def resolve_device(requested: str) -> str:
    """Turn ``auto|cpu|cuda|mps`` (``cuda:1`` too) into a device torch can use right now.

    ``auto`` never fails (it falls back to CPU); naming a device that is not available raises
    :class:`ConfigError` instead of silently running somewhere slower.
    """
    name = (requested or "auto").strip().lower()
    if name == "auto":
        return next(dev for dev in _AUTO_ORDER if _AVAILABLE[dev]())
    family = name.partition(":")[0]
    probe = _AVAILABLE.get(family)
    if probe is None:
        raise ConfigError(
            f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}"
        )
    if not probe():
        raise ConfigError(f"device {requested!r} was requested but is not available here")
    return name


def features_tensor(output: Any) -> torch.Tensor:
    """The embedding tensor out of whatever a ``get_*_features`` call returned.

    transformers 4 returns a tensor; transformers 5 returns a ``ModelOutput`` whose
    ``pooler_output`` holds the projected features (older custom models use ``image_embeds`` /
    ``text_embeds``).
    """
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise EmbedderError(f"cannot find features in a {type(output).__name__}")


def crops_to_tensor(
    crops: np.ndarray, preprocessor: ImagePreprocessor, device: str
) -> torch.Tensor:
    """uint8 crops (N, H, W, 3) -> normalised float32 (N, 3, H, W) on ``device``, in torch."""
    import torch

    crops = np.asarray(crops)
    expected = (*preprocessor.crop, 3)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != expected:
        raise EmbedderError(
            f"expected uint8 crops of shape (N, {expected[0]}, {expected[1]}, 3) from "
            f"resize_crop, got {crops.dtype} {crops.shape}"
        )
    scale, offset = (
        torch.from_numpy(v).to(device)[None, :, None, None] for v in preprocessor.scale_offset()
    )
    pixels = torch.from_numpy(np.ascontiguousarray(crops))
    if str(device).startswith("cuda"):
        # uint8 through pinned memory: a quarter of float32's bytes, copied asynchronously
        pixels = pixels.pin_memory().to(device, non_blocking=True)
    else:
        pixels = pixels.to(device)
    return pixels.permute(0, 3, 1, 2).float() * scale - offset


def embed_in_batches(
    items: Sequence[Any] | np.ndarray,
    batch_size: int | BatchSizer,
    run: Callable[[Any], torch.Tensor],
    dim: int,
    precision: PrecisionGuard | None = None,
) -> np.ndarray:
    """Call ``run`` on consecutive slices of ``items`` and stack the L2-normalised results.

    ``items`` is a list (texts) or an array (pixels); ``run`` receives a slice of at most
    ``batch_size`` of them and returns an ``(n, dim)`` tensor, under ``torch.inference_mode()``.
    ``batch_size`` is a number or an embedder's :class:`BatchSizer` (automatic size, measured
    on CUDA); either way a slice that runs out of memory is retried at half the size, so every
    item comes back once, in order (:mod:`clipatlas.embedders.batching`). Empty input gives a
    ``(0, dim)`` array. With a ``precision`` guard, each slice runs under its precision (bf16
    autocast, checked against fp32 on the first slice).
    """
    import torch

    if len(items) == 0:
        return np.zeros((0, dim), np.float32)
    sizer = batch_size if isinstance(batch_size, BatchSizer) else BatchSizer(batch_size)

    def one(batch: Any) -> torch.Tensor:
        return precision.run(run, batch) if precision is not None else run(batch)

    with torch.inference_mode():
        chunks = run_in_batches(items, sizer, one)
    out = torch.cat(chunks).numpy()
    if out.shape != (len(items), dim):
        raise EmbedderError(f"model returned shape {out.shape}, expected {(len(items), dim)}")
    return l2_normalize(out)
