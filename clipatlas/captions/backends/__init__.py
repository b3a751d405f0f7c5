"""Caption backends behind one :class:`CaptionModel` contract, chosen by name."""

from clipatlas.captions.backends.base import (
    CaptionModel,
    CaptionRequest,
    clean_caption,
    create_caption_model,
    register_caption_backend,
)

__all__ = [
    "CaptionModel",
    "CaptionRequest",
    "clean_caption",
    "create_caption_model",
    "register_caption_backend",
]
