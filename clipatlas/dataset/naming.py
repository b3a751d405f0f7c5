"""File and folder names that are valid on Windows, macOS and Linux, whatever the language.

:func:`safe_name` keeps letters of any script (Korean included) and replaces what any of the
three systems refuses: control characters, ``<>:"/\\|?*``, trailing dots and spaces, the
reserved device names (``CON``, ``NUL``, ``COM1``, ``LPT9``... with or without an extension),
and names longer than ``max_bytes`` UTF-8 bytes (255 is the common limit; we stay well below).
Text is NFC-normalised first so macOS (which stores NFD) and the others agree on the name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["image_name", "safe_name", "slug"]

_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")[:max_bytes]
    return data.decode("utf-8", errors="ignore")


def safe_name(text: str, *, max_bytes: int = 120, fallback: str = "dataset") -> str:
    """``text`` as one portable path component (never empty, never ``.``/``..``)."""
    name = unicodedata.normalize("NFC", text)
    name = _FORBIDDEN.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip()
    name = name.rstrip(". ")
    stem = name.split(".", 1)[0].strip().upper()
    if stem in _RESERVED:
        name = f"_{name}"
    if len(name.encode("utf-8")) > max_bytes:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        name = _truncate_utf8(name, max_bytes - 9).rstrip(". ") + "-" + digest
    if not name or set(name) <= {".", " ", "_"}:
        name = fallback
    return name


def slug(text: str, *, max_len: int = 40) -> str:
    """An ASCII ``[a-z0-9-]`` slug plus a short hash (unique per text), e.g. for collection
    names, which are ASCII: ``"고양이"`` -> ``"q-1d3a5c7e"``, ``"red fox"`` -> ``"red-fox-..."``."""
    ascii_part = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_part.lower()).strip("-")[:max_len].strip("-")
    digest = hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()[:8]
    return f"{words or 'q'}-{digest}"


def image_name(index: int, total: int, ext: str) -> str:
    """``img_0001.jpg``: 1-based, zero-padded to at least 4 digits so names sort in order."""
    width = max(4, len(str(total)))
    return f"img_{index:0{width}d}.{ext}"
