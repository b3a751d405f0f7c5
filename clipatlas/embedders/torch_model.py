"""What every torch image/text model shares: batching, precision, crops -> tensors.

Subclasses (``hf:``, ``open_clip:``) load their model and say how to get features from a
normalised pixel tensor and from a batch of texts; the rest is here once. With precision
``int8`` the same ``_image_features`` is exported once to an int8 ONNX model (cached under
``<home>/cache/onnx``) and image batches run there (:mod:`clipatlas.embedders.onnx_int8`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.batching import BatchSizer, image_item_bytes
from clipatlas.embedders.precision import PrecisionGuard
from clipatlas.embedders.runtime import crops_to_tensor, embed_in_batches, resolve_device
from clipatlas.settings import Settings

if TYPE_CHECKING:
    import torch

    from clipatlas.embedders.onnx_int8 import Int8ImageTower

__all__ = ["TorchImageTextEmbedder"]


class TorchImageTextEmbedder:
    """Base of torch CLIP-family embedders; subclasses set ``dim`` and ``_preprocessor``."""

    modalities = frozenset({"image", "text"})
    dim: int
    _preprocessor: ImagePreprocessor
    _model: Any  # the torch module whose weights _image_features uses

    def __init__(self, model_id: str, settings: Settings) -> None:
        self.id = model_id
        self._device = resolve_device(settings.device)
        # sized on first use (after the subclass loaded the model), see embedders/batching.py
        self._image_sizer = BatchSizer(
            settings.batch_size,
            self._device,
            item_bytes=lambda: image_item_bytes(self._preprocessor.crop),
            model=model_id,
            what="pictures",
        )
        self._text_sizer = BatchSizer(
            settings.batch_size, self._device, model=model_id, what="texts"
        )
        self.precision = PrecisionGuard(self.id, settings.precision, self._device)
        self._int8_cache = settings.home / "cache" / "onnx"
        self._int8_tower: Int8ImageTower | None = None

    @property
    def batch_size(self) -> int:
        """Pictures per model batch now: ``Settings.batch_size``, or the automatic size."""
        return self._image_sizer.size

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_batch(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def image_preprocessor(self) -> ImagePreprocessor:
        return self._preprocessor

    def _image_batch(self, batch: np.ndarray) -> torch.Tensor:
        pixels = crops_to_tensor(batch, self._preprocessor, self._device)
        if self.precision.int8_active:
            return self.int8_tower()(pixels)
        return self._image_features(pixels)

    def int8_tower(self) -> Int8ImageTower:
        """The int8 ONNX image tower, exported (or loaded from the cache) on first use."""
        if self._int8_tower is None:
            from clipatlas.embedders.onnx_int8 import load_int8_tower

            self._int8_tower = load_int8_tower(
                self.id,
                self._model,
                self._image_features,
                self._preprocessor.crop,
                self._int8_cache,
            )
        return self._int8_tower

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return embed_in_batches(
            np.asarray(pixels), self._image_sizer, self._image_batch, self.dim, self.precision
        )

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_pixels(np.stack([self._preprocessor.resize_crop(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts are always embedded in fp32 (see :mod:`clipatlas.embedders.precision`)."""
        return embed_in_batches(list(texts), self._text_sizer, self._text_batch, self.dim)
