"""What every torch image/text model shares: batching, precision, crops -> tensors.

Subclasses (``hf:``, ``open_clip:``) load their model and say how to get features from a
normalised pixel tensor and from a batch of texts; the rest is here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.precision import PrecisionGuard
from clipatlas.embedders.runtime import crops_to_tensor, embed_in_batches, resolve_device
from clipatlas.settings import Settings

if TYPE_CHECKING:
    import torch

__all__ = ["TorchImageTextEmbedder"]


class TorchImageTextEmbedder:
    """Base of torch CLIP-family embedders; subclasses set ``dim`` and ``_preprocessor``."""

    modalities = frozenset({"image", "text"})
    dim: int
    _preprocessor: ImagePreprocessor

    def __init__(self, model_id: str, settings: Settings) -> None:
        self.id = model_id
        self._batch_size = settings.batch_size
        self._device = resolve_device(settings.device)
        self.precision = PrecisionGuard(self.id, settings.precision, self._device)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_batch(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def image_preprocessor(self) -> ImagePreprocessor:
        return self._preprocessor

    def _image_batch(self, batch: np.ndarray) -> torch.Tensor:
        return self._image_features(crops_to_tensor(batch, self._preprocessor, self._device))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return embed_in_batches(
            np.asarray(pixels), self._batch_size, self._image_batch, self.dim, self.precision
        )

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_pixels(np.stack([self._preprocessor.resize_crop(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts are always embedded in fp32 (see :mod:`clipatlas.embedders.precision`)."""
        return embed_in_batches(list(texts), self._batch_size, self._text_batch, self.dim)
