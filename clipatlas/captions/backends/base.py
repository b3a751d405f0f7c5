"""The caption backend contract and the registry that finds backends by name.

A backend turns (picture, prompt) requests into captions, in batches. One request failing
(unreachable server, empty or non-text answer) gives a :class:`CaptionBackendError` in that
request's slot; the others still get their captions::

    class CaptionModel(Protocol):
        id: str                 # the spec it was built from, e.g. "openai-compatible:llava"
        batch_size: int         # how many requests one call takes at best
        def caption(self, requests) -> list[str | CaptionBackendError]: ...

Built-ins: ``openai-compatible:<model>`` and ``hf:<repo or local path>``. Third parties add
theirs with :func:`register_caption_backend` (e.g. from a ``clipatlas.plugins`` entry point).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from clipatlas.errors import CaptionBackendError, UnknownPluginError
from clipatlas.registry import split_spec
from clipatlas.settings import Settings

__all__ = [
    "CaptionModel",
    "CaptionRequest",
    "clean_caption",
    "create_caption_model",
    "register_caption_backend",
]


@dataclass(frozen=True)
class CaptionRequest:
    """One picture to caption with its prompt; ``name`` identifies it in errors."""

    name: str
    image: Image.Image
    prompt: str


@runtime_checkable
class CaptionModel(Protocol):
    id: str
    batch_size: int

    def caption(self, requests: Sequence[CaptionRequest]) -> list[str | CaptionBackendError]:
        """One caption (or the error of that request) per request, in order."""
        ...


CaptionFactory = Callable[[str, Settings], CaptionModel]

_BUILTINS = {
    "openai-compatible": "clipatlas.captions.backends.openai_compat:create",
    "hf": "clipatlas.captions.backends.hf_vlm:create",
}
_BACKENDS: dict[str, CaptionFactory] = {}


def register_caption_backend(kind: str, factory: CaptionFactory) -> None:
    _BACKENDS[kind] = factory


def create_caption_model(spec: str, settings: Settings) -> CaptionModel:
    """Build the backend named ``kind:argument`` (modules load only when used)."""
    kind, arg = split_spec(spec)
    factory = _BACKENDS.get(kind)
    if factory is None and kind in _BUILTINS:
        module, _, attr = _BUILTINS[kind].partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _BACKENDS[kind] = factory
    if factory is None:
        raise UnknownPluginError("caption backend", kind, sorted({*_BUILTINS, *_BACKENDS}))
    return factory(arg, settings)


def clean_caption(name: str, raw: object) -> str | CaptionBackendError:
    """A model's answer as one caption line, or the error saying why it is not one."""
    if not isinstance(raw, str):
        return CaptionBackendError(name, "non_text_output", f"got {type(raw).__name__}")
    text = " ".join(raw.replace("\x00", "").split()).strip().strip('"').strip()
    for prefix in ("Caption:", "caption:", "캡션:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    if not text:
        return CaptionBackendError(name, "empty_output", "the model returned no text")
    if not any(ch.isalnum() for ch in text):
        return CaptionBackendError(name, "non_text_output", f"no words in {text[:40]!r}")
    return text
