"""A deterministic embedder for fast tests and demos: ``fake:<dim>`` (default 64).

Images are embedded from their coarse colour layout through a fixed random projection, so
pictures that look alike get nearby vectors and the same picture always gets the same vector.
Texts are embedded from hashed character trigrams through the same kind of projection; a text
that names a colour ("red", "green", "blue", ...) is pulled towards pictures of that colour, so
text->image search can be tested end to end without model weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor, l2_normalize
from clipatlas.errors import ConfigError
from clipatlas.settings import Settings

if TYPE_CHECKING:
    from clipatlas.registry import Registry

__all__ = ["FakeEmbedder", "register"]

_GRID = 8
_COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
}
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.25, 0.25, 0.25)


class FakeEmbedder:
    modalities = frozenset({"image", "text"})

    def __init__(self, dim: int = 64) -> None:
        if dim < 8:
            raise ConfigError(f"fake embedder needs dim >= 8, got {dim}")
        self.dim = dim
        self.id = f"fake:{dim}"
        rng = np.random.default_rng(1234)
        self._image_proj = rng.standard_normal((3 * _GRID * _GRID + 3, dim)).astype(np.float32)
        self._text_proj = rng.standard_normal((4096, dim)).astype(np.float32)

    def image_preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(
            size=_GRID,
            crop=(_GRID, _GRID),
            mean=_MEAN,
            std=_STD,
            resample=int(Image.Resampling.BOX),
            resize_mode="squash",
        )

    def _features(self, pixels: np.ndarray) -> np.ndarray:
        flat = pixels.reshape(len(pixels), -1)
        rgb = (
            pixels * np.asarray(_STD, np.float32)[None, :, None, None]
            + np.asarray(_MEAN, np.float32)[None, :, None, None]
        )
        colour = rgb.mean(axis=(2, 3)) * 8.0  # a strong global-colour signal
        return np.concatenate([flat, colour], axis=1)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        normalised = self.image_preprocessor().normalize(pixels)
        return l2_normalize(self._features(normalised) @ self._image_proj)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        prep = self.image_preprocessor()
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_pixels(np.stack([prep.resize_crop(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            lowered = f"  {text.lower()}  "
            counts = np.zeros(4096, np.float32)
            for i in range(len(lowered) - 2):
                h = hashlib.blake2b(lowered[i : i + 3].encode(), digest_size=4).digest()
                counts[int.from_bytes(h, "little") % 4096] += 1.0
            vec = counts @ self._text_proj * 0.02
            for word, rgb in _COLOURS.items():
                if word in lowered.split():
                    pixels = np.empty((1, 3, _GRID, _GRID), np.float32)
                    for c in range(3):
                        pixels[0, c] = (rgb[c] - _MEAN[c]) / _STD[c]
                    vec = vec + l2_normalize(self._features(pixels) @ self._image_proj)[0] * 4.0
            out[row] = vec
        return l2_normalize(out)


def _factory(arg: str, settings: Settings) -> FakeEmbedder:
    try:
        return FakeEmbedder(int(arg) if arg else 64)
    except ValueError:
        raise ConfigError(f"fake embedder takes an integer dimension, got {arg!r}") from None


def register(registry: Registry) -> None:
    registry.add_embedder("fake", _factory)
