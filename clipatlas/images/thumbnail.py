"""Small JPEG previews, written atomically."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from clipatlas.atomic import write_atomic
from clipatlas.images.normalise import to_rgb

__all__ = ["THUMBNAIL_QUALITY", "write_thumbnail"]

THUMBNAIL_QUALITY = 85


def write_thumbnail(image: Image.Image, dest: Path, max_side: int = 256) -> None:
    """Write ``image`` as a JPEG whose longest side is at most ``max_side`` (never upscaled).

    The file appears complete or not at all: it is written to a temporary file in the same
    folder and renamed over ``dest`` (not fsynced: a thumbnail is derived and cheap to make
    again). Parent folders are created. On any error the temporary file is removed and the
    error (an ``OSError`` for disk problems) propagates.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    picture = to_rgb(image)
    width, height = picture.size
    scale = max_side / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # antialiased bilinear: a third of Lanczos' cost on every picture, and the
        # difference does not show at thumbnail size
        picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    write_atomic(
        Path(dest),
        lambda fh: picture.save(fh, "JPEG", quality=THUMBNAIL_QUALITY),
        durable=False,
    )
