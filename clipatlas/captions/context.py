"""What the caption stages (import, batch, search, caption-eval) use of the captions feature.

:class:`~clipatlas.captions.api.Captions` is one; the stages take this protocol, so that they
do not import the class that imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from clipatlas.captions.store import CaptionStore
    from clipatlas.embedders.base import Embedder
    from clipatlas.engine import Engine
    from clipatlas.progress import ProgressCallback

__all__ = ["CaptionContext"]


class CaptionContext(Protocol):
    """The collection's engine, its caption store and text model, and their caches."""

    engine: Engine

    @property
    def store(self) -> CaptionStore: ...

    def text_model(self) -> Embedder: ...

    def embed_pending(self, progress: ProgressCallback | None = None) -> int: ...

    def caption_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def texts_of(self, caption_ids: Sequence[int]) -> dict[int, str]: ...
