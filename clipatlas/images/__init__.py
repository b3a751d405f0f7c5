"""From bytes to a checked, upright RGB picture with its hashes, quality and thumbnail.

The path of one picture through this package::

    bytes --sniff_format--> format (magic bytes; refuses SVG/PDF/EPS/HEIC/..., non-images)
          --decode_image--> DecodedImage (bounded: bytes, header pixel budget, truncation,
                             first frame, EXIF orientation, every mode -> RGB)
          --perceptual_hash / quality_metrics--> pHash, size/aspect/sharpness
          --write_thumbnail--> JPEG preview, written atomically

:func:`analyse_bytes` runs the first three for the pipeline. Every rejection is an
:class:`~clipatlas.errors.ImageDecodeError` carrying a :class:`~clipatlas.errors.Reason`.
Nothing here imports torch: it runs in decode worker processes.
"""

from clipatlas.images.analyse import AnalysedImage, analyse_bytes
from clipatlas.images.decode import DecodedImage, decode_image
from clipatlas.images.hashing import hamming_distance, perceptual_hash
from clipatlas.images.limits import ImageLimits
from clipatlas.images.normalise import BACKGROUND
from clipatlas.images.quality import Quality, quality_metrics
from clipatlas.images.sniff import ALLOWED_FORMATS, sniff_format
from clipatlas.images.thumbnail import write_thumbnail

__all__ = [
    "ALLOWED_FORMATS",
    "BACKGROUND",
    "AnalysedImage",
    "DecodedImage",
    "ImageLimits",
    "Quality",
    "analyse_bytes",
    "decode_image",
    "hamming_distance",
    "perceptual_hash",
    "quality_metrics",
    "sniff_format",
    "write_thumbnail",
]
