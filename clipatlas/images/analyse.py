"""Everything the pipeline needs to know about one picture, from its bytes."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from clipatlas.errors import ImageDecodeError, Reason
from clipatlas.images.decode import decode_image
from clipatlas.images.hashing import perceptual_hash, sha256_hex
from clipatlas.images.limits import DEFAULT_LIMITS, ImageLimits
from clipatlas.images.quality import Quality, quality_metrics

__all__ = ["AnalysedImage", "analyse_bytes"]


@dataclass
class AnalysedImage:
    """A decoded picture with its hashes and quality.

    ``width``/``height`` are the original upright size; ``image`` (RGB, upright) may be smaller
    when it was decoded at a JPEG draft scale.
    """

    sha256: str
    phash: str
    format: str
    width: int
    height: int
    quality: Quality
    image: Image.Image


def analyse_bytes(
    data: bytes,
    name: str,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    draft: tuple[int, int] | None = None,
) -> AnalysedImage:
    """SHA-256 of ``data``, then decode, perceptual hash and quality metrics.

    Raises :class:`ImageDecodeError` only (see :func:`decode_image` for ``limits``/``draft``).
    """
    decoded = decode_image(data, name, limits, draft=draft)
    try:
        phash = perceptual_hash(decoded.image)
        quality = quality_metrics(decoded.image, decoded.width, decoded.height)
    except Exception as exc:  # e.g. MemoryError on a huge panorama: still the picture's fault
        reason = Reason.TOO_LARGE if isinstance(exc, MemoryError) else Reason.DECODE_ERROR
        raise ImageDecodeError(name, reason, f"{type(exc).__name__}: {exc}") from exc
    return AnalysedImage(
        sha256=sha256_hex(data),
        phash=phash,
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        quality=quality,
        image=decoded.image,
    )
