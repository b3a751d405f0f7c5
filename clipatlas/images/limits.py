"""Bounds every decode is held to."""

from __future__ import annotations

from dataclasses import dataclass

from clipatlas.errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "ImageLimits"]


@dataclass(frozen=True)
class ImageLimits:
    """How big a picture may be, and how small.

    ``max_pixels`` is checked against the size the header declares, before any pixel memory
    is allocated. Pillow's own decompression-bomb guard still applies on top: its warning
    (above ``Image.MAX_IMAGE_PIXELS``, 89.5 M pixels unless changed) is turned into
    ``too_large`` too, so a budget above Pillow's limit is capped by it.
    """

    max_pixels: int = 64_000_000  # larger -> Reason.TOO_LARGE
    min_side: int = 16  # shorter side (after orientation) below this -> Reason.TOO_SMALL
    max_bytes: int = 100 * 1024 * 1024  # larger input -> Reason.TOO_LARGE

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_bytes < 1 or self.min_side < 0:
            raise ConfigError(
                f"invalid image limits: max_pixels={self.max_pixels}, "
                f"min_side={self.min_side}, max_bytes={self.max_bytes}"
            )


DEFAULT_LIMITS = ImageLimits()
