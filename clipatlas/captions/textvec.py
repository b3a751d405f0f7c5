"""Caption text vectors: the collection's text model (``Settings.text_model``, a
sentence-transformers model by default) embeds every caption once; vectors are keyed by that
model name, so changing the text model re-embeds on the next run."""

from __future__ import annotations

from collections.abc import Callable

from clipatlas.captions.store import CaptionStore
from clipatlas.embedders.base import Embedder
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

__all__ = ["embed_pending"]

_STEP = 256


def embed_pending(
    cstore: CaptionStore,
    model_name: str,
    model: Callable[[], Embedder],
    progress: ProgressCallback | None = None,
) -> int:
    """Embed every caption without a vector of ``model_name``; returns how many.

    ``model`` is called only when there is something to embed."""
    todo = cstore.unembedded(model_name)
    if not todo:
        return 0
    embedder = model()
    for start in range(0, len(todo), _STEP):
        chunk = todo[start : start + _STEP]
        vectors = embedder.embed_texts([text for _, text in chunk])
        cstore.put_vectors(model_name, [cid for cid, _ in chunk], vectors)
        emit(progress, ProgressEvent("embed captions", start + len(chunk), len(todo)))
    return len(todo)
