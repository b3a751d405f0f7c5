"""Retrieval-augmented captioning and text search over captions.

Modules, in the order a caption is made: ``readers``/``importing`` (captioned datasets in),
``split`` (seeded held-out set), ``backends`` (the :class:`CaptionModel` contract;
``openai-compatible:`` and ``hf:``), ``rag``/``prompt`` (neighbours' captions into the
prompt), ``batch`` (resumable runs), ``store``/``textvec`` (captions, provenance, text
vectors), ``search`` (CLIP + caption + keyword, fused), ``evaluate``/``metrics``/``report``
(caption-eval). ``api.Captions`` ties them to one collection.
"""

from clipatlas.captions.api import Captions
from clipatlas.captions.backends import CaptionModel, CaptionRequest, create_caption_model
from clipatlas.captions.batch import CaptionRunReport
from clipatlas.captions.importing import CaptionImportReport
from clipatlas.captions.search import CaptionHit

__all__ = [
    "CaptionHit",
    "CaptionImportReport",
    "CaptionModel",
    "CaptionRequest",
    "CaptionRunReport",
    "Captions",
    "create_caption_model",
]
