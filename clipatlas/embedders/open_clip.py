"""open_clip embedders: ``open_clip:<what>``, for the optional ``clipatlas[open_clip]`` extra.

``<what>`` is one of

* ``ViT-B-32/laion2b_s34b_b79k`` — an architecture and a pretrained tag (weights come through
  open_clip's download cache; with ``HF_HUB_OFFLINE`` set only the cache is used);
* ``ViT-B-32//models/vit-b-32.pt`` — an architecture and a local checkpoint file;
* ``hf-hub:org/repo`` — an open_clip model on the Hugging Face hub;
* ``/models/my-clip`` (or ``local-dir:/models/my-clip``) — a local directory holding
  ``open_clip_config.json`` and its weights (``open_clip_pytorch_model.bin``/``.safetensors``);
* ``ViT-B-32`` — the architecture with **random weights**. Allowed for tests and benchmarks;
  its vectors mean nothing, and a warning is logged.

The id is ``open_clip:`` plus the argument with local paths made absolute. Preprocessing comes
from ``model.visual.preprocess_cfg`` (``shortest`` with a square size, or ``squash``);
letterboxing (``longest``) is refused.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.locate import looks_like_path
from clipatlas.embedders.torch_model import TorchImageTextEmbedder
from clipatlas.errors import ConfigError, ModelLoadError
from clipatlas.settings import Settings

if TYPE_CHECKING:
    import torch

    from clipatlas.registry import Registry

__all__ = ["OpenClipEmbedder", "OpenClipSource", "parse_open_clip_spec", "register"]

log = logging.getLogger(__name__)

INSTALL_HINT = "open_clip is not installed; pip install clipatlas[open_clip]"
CONFIG_FILE = "open_clip_config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")

INTERPOLATION: dict[str, int] = {
    "bicubic": int(Image.Resampling.BICUBIC),
    "bilinear": int(Image.Resampling.BILINEAR),
    "random": int(Image.Resampling.BICUBIC),  # open_clip itself evaluates "random" as bicubic
}

_HF_HUB, _LOCAL_DIR = "hf-hub:", "local-dir:"


@dataclass(frozen=True)
class OpenClipSource:
    """What to hand ``open_clip.create_model``/``get_tokenizer``, and the normalised id."""

    id: str
    model_name: str
    pretrained: str | None = None

    @property
    def random_weights(self) -> bool:
        return self.pretrained is None and ":" not in self.model_name


def _local_dir_source(spec: str, directory: Path) -> OpenClipSource:
    if not directory.is_dir():
        raise ModelLoadError(spec, f"no such directory: {directory}")
    directory = directory.resolve()
    if not (directory / CONFIG_FILE).is_file():
        raise ModelLoadError(spec, f"{directory} has no {CONFIG_FILE}")
    if not any(p.suffix in WEIGHT_SUFFIXES for p in directory.iterdir() if p.is_file()):
        raise ModelLoadError(
            spec, f"{directory} has no weights (open_clip_pytorch_model.bin or .safetensors)"
        )
    return OpenClipSource(f"open_clip:{directory}", f"{_LOCAL_DIR}{directory}")


def parse_open_clip_spec(arg: str) -> OpenClipSource:
    """Turn ``open_clip:<arg>`` into an :class:`OpenClipSource` (see the module docs)."""
    name = arg.strip()
    spec = f"open_clip:{name}"
    if not name:
        raise ConfigError("'open_clip:' needs an architecture, hf-hub:org/repo or a directory")
    if name.startswith(_HF_HUB):
        return OpenClipSource(spec, name)
    if name.startswith(_LOCAL_DIR):
        return _local_dir_source(spec, Path(name[len(_LOCAL_DIR) :]).expanduser())
    path = Path(name).expanduser()
    if path.is_dir() or path.is_absolute() or name.startswith((".", "~")):
        return _local_dir_source(spec, path)
    arch, _, pretrained = name.partition("/")  # "ViT-B-32//abs/ckpt.pt" splits at the first /
    if not pretrained:
        return OpenClipSource(spec, arch)
    if looks_like_path(pretrained) or Path(pretrained).expanduser().exists():
        checkpoint = Path(pretrained).expanduser()
        if not checkpoint.is_file():
            raise ModelLoadError(spec, f"no such checkpoint file: {checkpoint}")
        checkpoint = checkpoint.resolve()
        return OpenClipSource(f"open_clip:{arch}/{checkpoint}", arch, str(checkpoint))
    return OpenClipSource(spec, arch, pretrained)


def preprocessor_from_open_clip(cfg: dict[str, Any]) -> ImagePreprocessor:
    """An :class:`ImagePreprocessor` reproducing open_clip's inference transform."""
    size = cfg.get("size", 224)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    interpolation = str(cfg.get("interpolation") or "bicubic")
    if interpolation not in INTERPOLATION:
        raise ValueError(f"unsupported interpolation {interpolation!r}")
    mode = str(cfg.get("resize_mode") or "shortest")
    mean = tuple(float(x) for x in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(float(x) for x in cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std must have three channels")
    common: dict[str, Any] = {
        "crop": (height, width),
        "mean": mean,
        "std": std,
        "resample": INTERPOLATION[interpolation],
    }
    if mode == "squash":
        return ImagePreprocessor(size=max(height, width), resize_mode="squash", **common)
    if mode == "shortest" and height == width:
        return ImagePreprocessor(size=height, resize_mode="shortest", crop_offset="round", **common)
    raise ValueError(f"unsupported resize_mode {mode!r} for image size {(height, width)}")


def _import_open_clip(spec: str) -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise ModelLoadError(spec, INSTALL_HINT) from exc
    return open_clip


class OpenClipEmbedder(TorchImageTextEmbedder):
    """An open_clip model behind the :class:`Embedder` protocol."""

    def __init__(self, source: OpenClipSource, settings: Settings) -> None:
        open_clip = _import_open_clip(source.id)
        super().__init__(source.id, settings)
        self._check_architecture(open_clip, source)
        if source.random_weights:
            log.warning("%s has random weights: its vectors carry no meaning", self.id)
        kwargs: dict[str, Any] = {"pretrained": source.pretrained, "device": self._device}
        if (
            source.random_weights
            and "pretrained_text" in inspect.signature(open_clip.create_model).parameters
        ):
            kwargs["pretrained_text"] = False  # no download of a base text tower either
        try:
            model = open_clip.create_model(source.model_name, precision="fp32", **kwargs)
            self._tokenizer = open_clip.get_tokenizer(source.model_name)
        except Exception as exc:
            raise ModelLoadError(self.id, self._failure(exc)) from exc
        self._model = model.eval()
        try:
            self._preprocessor = preprocessor_from_open_clip(dict(model.visual.preprocess_cfg))
        except ValueError as exc:
            raise ModelLoadError(self.id, str(exc)) from exc
        self.dim = self._probe_dim()

    def _check_architecture(self, open_clip: Any, source: OpenClipSource) -> None:
        if ":" in source.model_name:
            return
        known = open_clip.list_models()
        if source.model_name not in known:
            close = [m for m in known if m.lower().startswith(source.model_name[:5].lower())]
            hint = f"; similar: {', '.join(close[:8])}" if close else ""
            raise ModelLoadError(
                self.id, f"unknown open_clip architecture {source.model_name!r}{hint}"
            )

    def _failure(self, exc: Exception) -> str:
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        return (
            f"{type(exc).__name__}: {text} (for offline use pass a local directory holding "
            f"{CONFIG_FILE} and weights, or <arch>/<checkpoint file>)"
        )

    def _probe_dim(self) -> int:
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer([""]).to(self._device)
            return int(self._model.encode_text(tokens).shape[-1])

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self._model.encode_image(pixels)
        return features

    def _text_batch(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self._tokenizer(list(texts)).to(self._device)
        features: torch.Tensor = self._model.encode_text(tokens)
        return features


def _factory(arg: str, settings: Settings) -> OpenClipEmbedder:
    return OpenClipEmbedder(parse_open_clip_spec(arg), settings)


def register(registry: Registry) -> None:
    registry.add_embedder("open_clip", _factory)
