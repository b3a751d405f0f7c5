"""Bring every Pillow mode to 8-bit RGB the same way, and apply EXIF orientation.

Rules, in the order they are tried:

* high bit depth grey (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, ``I``, ``F``) is scaled to
  8 bits without clipping: 16-bit values map by ``round(v / 257)`` (0 -> 0, 65535 -> 255);
  ``I`` images whose values fall outside 0..65535 and ``F`` images outside 0..1 are stretched
  linearly from their own minimum..maximum; ``F`` images inside 0..1 are multiplied by 255.
  (16-bit RGB(A) files are already reduced to 8 bits per channel by Pillow's decoders.)
* anything with transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, palette or grey or
  RGB images with a ``transparency`` entry, palettes with alpha) is composited onto
  :data:`BACKGROUND` with ordinary alpha blending;
* ``LAB`` (CIE L*a*b*, D65 white) is converted with the CIE formulas to sRGB;
* every other mode (``1``, ``L``, ``P``, ``CMYK`` - Adobe inverted CMYK JPEGs are already
  un-inverted by Pillow's decoder -, ``YCbCr``, ``HSV``, ``RGBX``) goes through
  ``Image.convert("RGB")``.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image

__all__ = [
    "BACKGROUND",
    "ORIENTATION_SWAPS_AXES",
    "apply_orientation",
    "read_orientation",
    "to_rgb",
]

BACKGROUND: tuple[int, int, int] = (255, 255, 255)
"""Colour that transparent pixels are composited onto: white, like most viewers show them."""

_HIGH_DEPTH = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

ORIENTATION_SWAPS_AXES = frozenset({5, 6, 7, 8})
"""EXIF orientations whose display swaps width and height."""

# The same table as ImageOps.exif_transpose: how to turn stored pixels into displayed ones.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# sRGB primaries, D65 white.
_XYZ_TO_RGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ],
    dtype=np.float64,
)
_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)


def read_orientation(image: Image.Image) -> int:
    """EXIF orientation (1-8) of ``image``; 1 when absent or unreadable.

    Pillow falls back on the XMP ``tiff:Orientation`` when EXIF has none, as
    ``ImageOps.exif_transpose`` does. A corrupt EXIF block never rejects a picture.
    """
    try:
        value = image.getexif().get(0x0112)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Turn stored pixels into displayed ones (same mapping as ``ImageOps.exif_transpose``)."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _to_uint8(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    arr = np.asarray(image)
    if image.mode == "F":
        data = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0.0 and hi <= 1.0:
            return Image.fromarray(_to_uint8(data * 255.0))
    else:
        data = arr.astype(np.float64)
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0 and hi <= 65535:
            return Image.fromarray(_to_uint8(data / 257.0))
    span = hi - lo
    scaled = (data - lo) * (255.0 / span) if span > 0 else np.zeros_like(data)
    return Image.fromarray(_to_uint8(scaled))


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    lab = np.asarray(image).astype(np.float64)
    lightness = lab[..., 0] * (100.0 / 255.0)
    a, b = lab[..., 1] - 128.0, lab[..., 2] - 128.0  # Pillow stores a*, b* offset by 128
    fy = (lightness + 16.0) / 116.0
    f = np.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    delta = 6.0 / 29.0
    xyz = np.where(f > delta, f**3, 3 * delta**2 * (f - 4.0 / 29.0)) * _D65
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return Image.fromarray(_to_uint8(srgb * 255.0))


def _premultiplied_grey_to_rgb(image: Image.Image) -> Image.Image:
    """``La`` (grey premultiplied by alpha) onto the background: out = L' + bg * (1 - a)."""
    grey, alpha = (np.asarray(band, dtype=np.float64) for band in image.split())
    rest = 1.0 - alpha / 255.0
    rgb = grey[..., None] + rest[..., None] * np.asarray(BACKGROUND, dtype=np.float64)
    return Image.fromarray(_to_uint8(rgb))


def _composite(image: Image.Image) -> Image.Image:
    if image.mode == "La":
        return _premultiplied_grey_to_rgb(image)
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB following the module rules; RGB input is returned as is."""
    with warnings.catch_warnings():
        # e.g. "Palette images with Transparency expressed in bytes should be converted to RGBA"
        warnings.simplefilter("ignore", UserWarning)
        mode = image.mode
        if mode == "RGB" and "transparency" not in image.info:
            return image
        if mode in _HIGH_DEPTH:
            return _high_depth_to_l(image).convert("RGB")
        if mode in _ALPHA_MODES or image.has_transparency_data:
            return _composite(image)
        if mode == "LAB":
            return _lab_to_rgb(image)
        return image.convert("RGB")
