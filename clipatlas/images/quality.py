"""Cheap quality signals: size, aspect ratio and a resolution-independent sharpness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["SHARPNESS_SIDE", "Quality", "quality_metrics", "sharpness"]

SHARPNESS_SIDE = 256
"""Sharpness is measured with the picture's short side resampled to this many pixels."""

_MAX_LONG_SIDE = 16 * SHARPNESS_SIDE  # keeps panoramas from blowing up the work


@dataclass(frozen=True)
class Quality:
    """Quality signals of one picture.

    ``width``/``height`` are the original (upright) size and ``aspect`` is width / height.
    ``sharpness`` is the variance of the 4-neighbour Laplacian (the same kernel as OpenCV's
    ``Laplacian(ksize=1)``) of the grey-level picture (0..255) after resampling it (Lanczos)
    so that its short side is 256 px (the long side capped at 4096 px). The normalisation makes
    the value independent of resolution: the same scene gives about the same number at
    512 px or 4000 px, while blur lowers it sharply. Pictures smaller than 256 px are
    upsampled, which blurs them a little.
    """

    width: int
    height: int
    aspect: float
    sharpness: float


def sharpness(image: Image.Image) -> float:
    """Size-normalised variance of the Laplacian of ``image`` (see :class:`Quality`)."""
    grey = image.convert("L")
    width, height = grey.size
    scale = min(SHARPNESS_SIDE / min(width, height), _MAX_LONG_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != grey.size:
        grey = grey.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(grey, dtype=np.float32)
    return float(ndimage.laplace(pixels).var())


def quality_metrics(image: Image.Image, width: int, height: int) -> Quality:
    """Quality of ``image``; ``width``/``height`` are its original size (it may be a draft)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    return Quality(width, height, width / height, sharpness(image))
