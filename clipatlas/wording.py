"""Counts in words for messages and explanations: ``counted(1, "image")`` is "1 image",
``counted(3, "image")`` "3 images" (never "1 images")."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, the noun plural unless ``n`` is 1 (``plural`` for irregular ones)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
