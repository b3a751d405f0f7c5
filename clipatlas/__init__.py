"""clipatlas: search, cluster, map, clean and caption image collections with CLIP embeddings.

The public names are imported lazily, so that decode worker processes (which import only
``clipatlas.images`` and ``clipatlas.pipeline.decode``) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipatlas.atlas import Atlas, CollectionStats, ImportReport
    from clipatlas.errors import ClipatlasError, Reason
    from clipatlas.settings import Settings, load_settings

__all__ = [
    "Atlas",
    "ClipatlasError",
    "CollectionStats",
    "ImportReport",
    "Reason",
    "Settings",
    "load_settings",
]
__version__ = "0.1.0"

_HOMES = {
    "Atlas": "clipatlas.atlas",
    "CollectionStats": "clipatlas.atlas",
    "ImportReport": "clipatlas.atlas",
    "ClipatlasError": "clipatlas.errors",
    "Reason": "clipatlas.errors",
    "Settings": "clipatlas.settings",
    "load_settings": "clipatlas.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'clipatlas' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
