"""Hugging Face transformers CLIP-family embedders: ``hf:<hub id or local directory>``.

Works for any model ``AutoModel`` loads with ``get_image_features``/``get_text_features`` and
a fixed-size image processor: OpenAI CLIP (``hf:openai/clip-vit-base-patch32``), Korean CLIP
(``hf:Bingsu/clip-vit-large-patch14-ko``), SigLIP and fixed-resolution SigLIP 2 checkpoints
(``model_type`` ``siglip``), ChineseCLIP, AltCLIP and dual encoders. SigLIP 2 NaFlex checkpoints
(``model_type`` ``siglip2``) take variable patch grids and are refused.

The model is loaded when the registry builds the embedder, in float32 on ``Settings.device``.
The id is ``hf:`` plus the hub id as given, or plus the absolute path of a local directory;
``dim`` comes from the config (``projection_dim``, or the SigLIP text ``projection_size``).
Preprocessing is rebuilt from the model's own image processor config as a picklable
:class:`ImagePreprocessor`, so decode workers produce exactly the model's pixels.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.locate import ModelLocation, locate_model
from clipatlas.embedders.runtime import (
    features_tensor,
)
from clipatlas.embedders.torch_model import TorchImageTextEmbedder
from clipatlas.errors import ModelLoadError
from clipatlas.settings import Settings

if TYPE_CHECKING:
    import torch

    from clipatlas.registry import Registry

__all__ = ["HFClipEmbedder", "preprocessor_from_hf", "register"]

# How each model family pads text: SigLIP was trained on max_length padding and pools the last
# token, so anything shorter changes its vectors. Unlisted families pad to the longest text.
TEXT_PADDING: dict[str, str] = {"siglip": "max_length"}

# Families AutoModel loads but whose inputs do not fit a fixed-size pixel batch.
UNSUPPORTED_FAMILIES: dict[str, str] = {
    "siglip2": "SigLIP 2 NaFlex models take variable-size patch grids; use a fixed-resolution "
    "SigLIP 2 checkpoint (e.g. google/siglip2-base-patch16-224) instead",
}

_UNBOUNDED_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30


def _size_get(size: Any, key: str) -> int | None:
    if isinstance(size, int):  # very old configs: one number means the shortest edge
        return size if key == "shortest_edge" else None
    value = size.get(key) if size is not None else None  # dict (v4) or SizeDict (v5)
    return int(value) if value is not None else None


def _rgb(values: Any, default: float) -> tuple[float, float, float]:
    if values is None:
        return (default, default, default)
    if isinstance(values, (int, float)):
        return (float(values), float(values), float(values))
    r, g, b = (float(v) for v in values)
    return (r, g, b)


def preprocessor_from_hf(processor: Any) -> ImagePreprocessor:
    """An :class:`ImagePreprocessor` reproducing a transformers image processor.

    Shortest-edge resize + centre crop (CLIP) and fixed height/width resize (SigLIP, "squash")
    are supported; a non-default ``rescale_factor`` is folded into mean and std. Anything else
    raises ``ValueError`` (turned into :class:`ModelLoadError` by the caller).
    """
    if not getattr(processor, "do_resize", True):
        raise ValueError("the image processor does not resize, so pictures have no fixed size")
    size = getattr(processor, "size", None)
    resample = int(getattr(processor, "resample", None) or Image.Resampling.BICUBIC)
    crop = (
        getattr(processor, "crop_size", None)
        if getattr(processor, "do_center_crop", False)
        else None
    )
    crop_hw = (_size_get(crop, "height"), _size_get(crop, "width"))
    shortest = _size_get(size, "shortest_edge")
    height, width = _size_get(size, "height"), _size_get(size, "width")
    if shortest is not None and _size_get(size, "longest_edge") is None:
        crop_h, crop_w = crop_hw if None not in crop_hw else (shortest, shortest)
        geometry: dict[str, Any] = {
            "size": shortest,
            "crop": (crop_h, crop_w),
            "resize_mode": "shortest",
        }
    elif height is not None and width is not None and (crop is None or crop_hw == (height, width)):
        geometry = {"size": max(height, width), "crop": (height, width), "resize_mode": "squash"}
    else:
        raise ValueError(f"unsupported image processor geometry: size={size!r}, crop_size={crop!r}")

    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    scale = 1.0 / (255.0 * rescale)  # our arrays are x/255; the model wants x*rescale
    if getattr(processor, "do_normalize", True):
        mean, std = _rgb(processor.image_mean, 0.0), _rgb(processor.image_std, 1.0)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    folded_mean = (mean[0] * scale, mean[1] * scale, mean[2] * scale)
    folded_std = (std[0] * scale, std[1] * scale, std[2] * scale)
    return ImagePreprocessor(mean=folded_mean, std=folded_std, resample=resample, **geometry)


def _text_config(config: Any) -> Any:
    return getattr(config, "text_config", None) or config


def _feature_dim(config: Any) -> int:
    projection = getattr(config, "projection_dim", None)
    if projection:
        return int(projection)
    text = _text_config(config)
    return int(getattr(text, "projection_size", None) or text.hidden_size)


def _text_max_length(tokenizer: Any, config: Any) -> int:
    limits = [getattr(_text_config(config), "max_position_embeddings", None)]
    limits.append(getattr(tokenizer, "model_max_length", None))
    usable = [int(x) for x in limits if x and int(x) < _UNBOUNDED_LENGTH]
    return min(usable) if usable else 77


def _accepted_text_inputs(model: Any) -> frozenset[str]:
    """Tokenizer outputs to pass on: those ``get_text_features`` names (SigLIP's tokenizer gives
    no attention mask, BERT-based ones add ``token_type_ids``)."""
    params = inspect.signature(model.get_text_features).parameters
    return frozenset(("input_ids", "attention_mask", "token_type_ids")) & frozenset(params)


def _dtype_kwargs() -> dict[str, Any]:
    """float32 weights: transformers >= 5 defaults to the checkpoint's dtype (often fp16)."""
    import torch
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": torch.float32} if (major, minor) >= (4, 56) else {}


@dataclass(frozen=True)
class _LoadedParts:
    config: Any
    model: Any
    tokenizer: Any
    image_processor: Any


def _load_parts(spec: str, source: str, local_files_only: bool) -> _LoadedParts:
    """Config, model, tokenizer and image processor; ModelLoadError for non-CLIP models."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    family = str(getattr(config, "model_type", ""))
    if family in UNSUPPORTED_FAMILIES:
        raise ModelLoadError(spec, UNSUPPORTED_FAMILIES[family])
    model = AutoModel.from_pretrained(source, local_files_only=local_files_only, **_dtype_kwargs())
    missing = [m for m in ("get_image_features", "get_text_features") if not hasattr(model, m)]
    if missing:
        raise ModelLoadError(
            spec, f"{type(model).__name__} is not a CLIP-family model (no {', '.join(missing)})"
        )
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    auto_image_processor: Any = AutoImageProcessor  # untyped in transformers
    image_processor = auto_image_processor.from_pretrained(
        source, local_files_only=local_files_only
    )
    return _LoadedParts(config, model, tokenizer, image_processor)


class HFClipEmbedder(TorchImageTextEmbedder):
    """A transformers CLIP-family model behind the :class:`Embedder` protocol."""

    def __init__(self, location: ModelLocation, settings: Settings) -> None:
        super().__init__(location.spec, settings)
        parts = location.load(lambda offline: _load_parts(self.id, location.source, offline))
        try:
            self._preprocessor = preprocessor_from_hf(parts.image_processor)
        except ValueError as exc:
            raise ModelLoadError(self.id, str(exc)) from exc
        self.dim = _feature_dim(parts.config)
        self._padding = TEXT_PADDING.get(str(getattr(parts.config, "model_type", "")), "longest")
        self._max_length = _text_max_length(parts.tokenizer, parts.config)
        self._model = parts.model.to(self._device).eval()
        self._tokenizer = parts.tokenizer
        self._text_inputs = _accepted_text_inputs(self._model)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return features_tensor(self._model.get_image_features(pixel_values=pixels))

    def _text_batch(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self._tokenizer(
            list(texts),
            padding=self._padding,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        inputs = {k: v.to(self._device) for k, v in tokens.items() if k in self._text_inputs}
        return features_tensor(self._model.get_text_features(**inputs))


def _factory(arg: str, settings: Settings) -> HFClipEmbedder:
    return HFClipEmbedder(locate_model("hf", arg), settings)


def register(registry: Registry) -> None:
    registry.add_embedder("hf", _factory)
