"""Content and perceptual hashes.

:func:`perceptual_hash` is the classic 64-bit DCT hash (pHash): the picture is reduced to
32x32 grey levels (Lanczos), a 2-D DCT-II is taken, and each of the 8x8 lowest-frequency
coefficients (DC included) gives one bit: 1 where it is above their median. Resizing,
recompression and small colour changes move few bits; a different picture moves about half.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image
from scipy import fft

__all__ = ["hamming_distance", "perceptual_hash", "sha256_hex"]

_HASH_SIDE = 32
_LOW = 8
_HEX_DIGITS = _LOW * _LOW // 4


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of the raw bytes: the identity of a file's content."""
    return hashlib.sha256(data).hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash of ``image`` as 16 lower-case hex digits."""
    grey = image.convert("L").resize(
        (_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    pixels = np.asarray(grey, dtype=np.float64)
    coefficients = fft.dct(fft.dct(pixels, axis=0), axis=1)[:_LOW, :_LOW]
    bits = (coefficients > np.median(coefficients)).ravel()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return f"{value:0{_HEX_DIGITS}x}"


def _as_int(value: str) -> int:
    if len(value) != _HEX_DIGITS:
        raise ValueError(f"perceptual hash must be {_HEX_DIGITS} hex digits, got {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"perceptual hash must be hexadecimal, got {value!r}") from None


def hamming_distance(a: str, b: str) -> int:
    """Number of differing bits between two perceptual hashes (0..64)."""
    return (_as_int(a) ^ _as_int(b)).bit_count()
