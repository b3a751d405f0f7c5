"""clipatlas: search, cluster, map, clean and caption image collections with CLIP embeddings."""

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
