"""Bounded decoding: bytes in, an oriented 8-bit RGB picture or a typed error out.

The steps, each of which can reject the bytes with an :class:`ImageDecodeError`:

1. :func:`~clipatlas.images.sniff.sniff_format` from the magic bytes (``not_an_image``,
   ``unsupported_format``);
2. ``len(data) <= max_bytes`` (``too_large``);
3. the header is complete and its declared size fits the pixel budget (``truncated``,
   ``too_large``), read without Pillow where possible;
4. Pillow opens the bytes lazily, restricted to the sniffed format; its size is checked again
   against the budget and the minimum side (``too_large``, ``too_small``), and the body the
   header promises must be present (``truncated``);
5. the first frame is loaded (JPEG optionally at a reduced DCT scale), converted to RGB
   (:mod:`~clipatlas.images.normalise`) and turned upright by its EXIF orientation.

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False (its default): a file cut short is
rejected as ``truncated``, never decoded partially. Running out of memory is ``too_large``; any
other failure of Pillow, zlib or the codecs becomes ``decode_error``. Nothing but
:class:`ImageDecodeError` escapes for bad bytes.

Warnings raised by Pillow while decoding are silenced, except ``DecompressionBombWarning``,
which becomes ``too_large``. Python's warning filters are process-wide, so decode in worker
processes (as the pipeline does) rather than in many threads of one process.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from clipatlas.errors import ConfigError, ImageDecodeError, Reason
from clipatlas.images.limits import DEFAULT_LIMITS, ImageLimits
from clipatlas.images.normalise import (
    ORIENTATION_SWAPS_AXES,
    apply_orientation,
    read_orientation,
    to_rgb,
)
from clipatlas.images.sniff import sniff_format
from clipatlas.images.structure import check_complete, declared_size

__all__ = ["DecodedImage", "decode_image"]

_TRUNCATION_HINTS = (
    "truncated",
    "premature end",
    "unexpected end",
    "end of file",
    "not enough",
    "buffer is not large enough",
)


@dataclass
class DecodedImage:
    """A decoded picture: RGB, upright, loaded.

    ``width``/``height`` are the full-resolution size after orientation, even when the JPEG
    was decoded at a reduced draft scale and ``image`` is smaller.
    """

    image: Image.Image
    format: str
    width: int
    height: int


def _check_budget(name: str, size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageDecodeError(
            name,
            Reason.TOO_LARGE,
            f"{width}x{height} = {width * height} pixels > {limits.max_pixels}",
        )


def _check_size(name: str, size: tuple[int, int], limits: ImageLimits) -> None:
    _check_budget(name, size, limits)
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(name, Reason.DECODE_ERROR, f"invalid size {width}x{height}")
    if min(width, height) < limits.min_side:
        raise ImageDecodeError(
            name, Reason.TOO_SMALL, f"{width}x{height}, shorter side < {limits.min_side}"
        )


def _swap(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in ORIENTATION_SWAPS_AXES else size


def _decode(
    data: bytes,
    name: str,
    fmt: str,
    limits: ImageLimits,
    draft: tuple[int, int] | None,
) -> DecodedImage:
    header = declared_size(data, fmt, name)
    if header is not None:
        _check_budget(name, header, limits)
    with Image.open(io.BytesIO(data), formats=[fmt]) as opened:
        full = opened.size
        _check_size(name, full, limits)
        check_complete(data, fmt, name, opened)
        if draft is not None and fmt == "JPEG":
            # JPEG EXIF is read while opening, so the orientation is known before loading.
            opened.draft("RGB", _swap(draft, read_orientation(opened)))
        opened.load()
        orientation = read_orientation(opened)
        picture = apply_orientation(to_rgb(opened), orientation)
        if picture is opened:
            picture = opened.copy()  # a plain Image, detached from the file object
    width, height = _swap(full, orientation)
    return DecodedImage(picture, fmt, width, height)


def _reason_for(exc: BaseException) -> Reason:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return Reason.TOO_LARGE
    if isinstance(exc, MemoryError):
        return Reason.TOO_LARGE
    if isinstance(exc, EOFError):
        return Reason.TRUNCATED
    message = str(exc).lower()
    if any(hint in message for hint in _TRUNCATION_HINTS):
        return Reason.TRUNCATED
    return Reason.DECODE_ERROR


def decode_image(
    data: bytes,
    name: str,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    draft: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode ``data`` into an upright RGB picture within ``limits``.

    ``name`` only labels errors. ``draft=(w, h)`` lets JPEGs decode at a reduced DCT scale
    (1/2, 1/4 or 1/8) while staying at least ``w`` x ``h`` (in upright orientation); other
    formats ignore it. Animated GIF/WebP and multi-page TIFF give their first frame.

    Raises :class:`ImageDecodeError` (and nothing else) for bytes that cannot be used, and
    :class:`~clipatlas.errors.ConfigError` for a non-positive ``draft``.
    """
    if draft is not None and min(draft) < 1:
        raise ConfigError(f"draft size must be positive, got {draft}")
    fmt = sniff_format(data, name)
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(name, Reason.TOO_LARGE, f"{len(data)} bytes > {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, name, fmt, limits, draft)
    except ImageDecodeError:
        raise
    except Exception as exc:  # OSError, SyntaxError, struct/zlib errors, EOFError, MemoryError...
        if isinstance(exc, UnidentifiedImageError):  # its message holds an object address
            detail = f"Pillow cannot read this {fmt} file"
        else:
            detail = f"{type(exc).__name__}: {exc}"[:300]
        raise ImageDecodeError(name, _reason_for(exc), detail) from exc
