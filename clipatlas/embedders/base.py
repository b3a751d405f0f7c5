"""The embedder contract and the picklable image preprocessing every CLIP-family model shares.

An embedder says what it is (``id``, ``dim``, ``modalities``) and embeds in batches. Image
preprocessing is split out as an :class:`ImagePreprocessor` — plain data, picklable — so decode
workers can turn pictures into model-ready arrays while the model runs in the main process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

__all__ = [
    "Embedder",
    "ImagePreprocessor",
    "Modality",
    "l2_normalize",
]

Modality = Literal["image", "text"]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass(frozen=True)
class ImagePreprocessor:
    """Resize/crop (in decode workers) and normalise (batched) pictures for a model.

    ``resize_mode`` is ``"shortest"`` (resize the short side to ``size``, then centre-crop to
    ``crop``; OpenAI CLIP) or ``"squash"`` (resize straight to ``crop``; SigLIP). The long side
    is truncated like transformers and torchvision do. ``crop_offset`` says how an odd margin is
    split: ``"floor"`` like transformers, ``"round"`` like torchvision's ``CenterCrop``
    (open_clip).
    """

    size: int
    crop: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = int(Image.Resampling.BICUBIC)
    resize_mode: Literal["shortest", "squash"] = "shortest"
    crop_offset: Literal["floor", "round"] = "floor"

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest size a JPEG may be draft-decoded to without losing model input detail."""
        return (self.size, self.size) if self.resize_mode == "shortest" else self.crop

    def resize_crop(self, image: Image.Image) -> np.ndarray:
        """The model-input crop of ``image`` as uint8 (H, W, 3): what decode workers send."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        crop_h, crop_w = self.crop
        if self.resize_mode == "squash":
            image = image.resize((crop_w, crop_h), resample=self.resample)
        else:
            w, h = image.size
            if w <= h:
                new_w, new_h = self.size, int(self.size * h / w)
            else:
                new_w, new_h = int(self.size * w / h), self.size
            new_w, new_h = max(crop_w, new_w), max(crop_h, new_h)
            if (new_w, new_h) != (w, h):
                image = image.resize((new_w, new_h), resample=self.resample)
            if self.crop_offset == "round":
                left, top = round((new_w - crop_w) / 2), round((new_h - crop_h) / 2)
            else:
                left, top = (new_w - crop_w) // 2, (new_h - crop_h) // 2
            image = image.crop((left, top, left + crop_w, top + crop_h))
        return np.asarray(image, dtype=np.uint8)

    def scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``scale``, ``offset`` with ``normalised = uint8 * scale - offset``."""
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return np.float32(1.0 / 255.0) / std, mean / std

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W, 3) -> float32 model input (N, 3, H, W)."""
        scale, offset = self.scale_offset()
        chw = np.ascontiguousarray(np.asarray(crops, np.uint8).transpose(0, 3, 1, 2))
        out: np.ndarray = chw.astype(np.float32) * scale[:, None, None] - offset[:, None, None]
        return out

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Resize, crop and normalise one picture into float32 (3, H, W)."""
        one: np.ndarray = self.normalize(self.resize_crop(image)[None])[0]
        return one


@runtime_checkable
class Embedder(Protocol):
    """Turns pictures and/or texts into L2-normalised float32 vectors, in batches."""

    id: str
    dim: int
    modalities: frozenset[str]

    def image_preprocessor(self) -> ImagePreprocessor:
        """Picklable preprocessing for decode workers (raises ModalityNotSupportedError)."""
        ...

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W, 3) from ``image_preprocessor().resize_crop`` -> (N, dim).

        The embedder normalises them itself (in torch, batched), so decode workers ship a
        quarter of the bytes and skip the float work.
        """
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB pictures -> (N, dim) float32, L2-normalised."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32, L2-normalised."""
        ...
