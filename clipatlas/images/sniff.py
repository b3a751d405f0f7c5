"""Tell an image format from its magic bytes, never from the file name.

:func:`sniff_format` answers with one of :data:`ALLOWED_FORMATS` or raises
:class:`~clipatlas.errors.ImageDecodeError`:

* ``unsupported_format`` for pictures we recognise but refuse (SVG, PDF, PostScript/EPS,
  HEIC/AVIF, ICO, PSD, JPEG 2000, JPEG XL, ...); the detail names the format;
* ``not_an_image`` for everything else (empty files, HTML error pages, JSON, text, archives,
  random bytes); the detail says what the bytes look like.

Only the first few kilobytes are looked at, so sniffing costs the same for any file size.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from clipatlas.errors import ImageDecodeError, Reason

__all__ = ["ALLOWED_FORMATS", "sniff_format"]

ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
"""Formats decoded by clipatlas, named as Pillow names them."""

_HEAD = 8192  # bytes examined for text-like formats (SVG prologs can be long)

# BITMAPINFOHEADER family sizes: core (12), OS/2 v2 (16, 64), v1 (40), v2 (52), v3 (56),
# v4 (108), v5 (124). Requiring one of them keeps text starting with "BM" out.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def _is_bmp(data: bytes) -> bool:
    return (
        data[:2] == b"BM"
        and len(data) >= 18
        and struct.unpack_from("<I", data, 14)[0] in _BMP_DIB_SIZES
    )


def _allowed(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in _TIFF_MAGIC:
        return "TIFF"
    if _is_bmp(data):
        return "BMP"
    return None


def _iso_bmff(data: bytes) -> str | None:
    """HEIC/AVIF (refused) or another ISO-BMFF file such as MP4 (not an image)."""
    if data[4:8] != b"ftyp":
        return None
    box = min(max(struct.unpack_from(">I", data, 0)[0], 16), len(data), 256)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, box - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIC_BRANDS:
        return "heic"
    if b"crx " in brands:
        return "cr3"
    return ""  # a video or another container: not a picture


def _is_ico(data: bytes, kind: int) -> bool:
    return (
        len(data) >= 22
        and data[:4] == bytes((0, 0, kind, 0))
        and 0 < struct.unpack_from("<H", data, 4)[0] <= 256
    )


def _is_pnm(data: bytes) -> bool:
    return bool(re.match(rb"P[1-7][ \t\r\n]+(#|\d)", data[:16]))


def _is_pcx(data: bytes) -> bool:
    return (
        len(data) >= 128
        and data[0] == 0x0A
        and data[1] <= 5
        and data[2] == 1
        and data[3]
        in (
            1,
            2,
            4,
            8,
        )
    )


# Recognised but refused binary formats: (test, name). Order matters only for overlaps.
_REFUSED: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda d: d.startswith(b"%PDF-"), "pdf"),
    (lambda d: d.startswith(b"%!PS") and b"EPSF" in d[:64].split(b"\n")[0], "eps"),
    (lambda d: d.startswith(b"%!PS"), "postscript"),
    (lambda d: d.startswith(b"\xc5\xd0\xd3\xc6"), "eps"),  # DOS EPS binary header
    (lambda d: d.startswith(b"8BPS"), "psd"),
    (lambda d: _is_ico(d, 1), "ico"),
    (lambda d: _is_ico(d, 2), "cur"),
    (lambda d: d.startswith(b"icns"), "icns"),
    (lambda d: d.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"), "jpeg2000"),
    (lambda d: d.startswith(b"\xff\x4f\xff\x51"), "jpeg2000"),
    (lambda d: d.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"), "jxl"),
    (lambda d: d.startswith(b"\xff\x0a"), "jxl"),
    (lambda d: d.startswith(b"II\xbc"), "jxr"),
    (lambda d: d.startswith(b"\x8aMNG\r\n\x1a\n"), "mng"),
    (lambda d: d.startswith(b"\x8bJNG\r\n\x1a\n"), "jng"),
    (lambda d: d.startswith(b"v/1\x01"), "exr"),
    (lambda d: d.startswith((b"#?RADIANCE", b"#?RGBE")), "hdr"),
    (lambda d: d.startswith(b"DDS "), "dds"),
    (lambda d: d.startswith(b"qoif"), "qoi"),
    (lambda d: d.startswith(b"gimp xcf"), "xcf"),
    (lambda d: d.startswith(b"AT&TFORM"), "djvu"),
    (lambda d: d.startswith(b"BPG\xfb"), "bpg"),
    (lambda d: d.startswith(b"\x01\xda") and d[2:3] in (b"\x00", b"\x01"), "sgi"),
    (lambda d: d.startswith(b"FLIF"), "flif"),
    (lambda d: d.startswith(b"SIMPLE  ="), "fits"),
    (lambda d: d[128:132] == b"DICM", "dicom"),
    (lambda d: d.startswith(b"\xd7\xcd\xc6\x9a"), "wmf"),
    (lambda d: d[:4] == b"\x01\x00\x00\x00" and d[40:44] == b" EMF", "emf"),
    (lambda d: d.startswith((b"IIRO", b"IIU\x00", b"FUJIFILMCCD-RAW")), "camera raw"),
    (_is_pnm, "pnm"),
    (_is_pcx, "pcx"),
)

_TEXT_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))

# XML prolog items that may precede the root element of an SVG document.
_XML_PROLOG = re.compile(
    r"(?:\s+|<\?.*?\?>|<!--.*?-->|<!doctype[^\[>]*(?:\[.*?\])?\s*>)*", re.IGNORECASE | re.DOTALL
)
_ROOT_TAG = re.compile(r"<([a-z_][\w.:-]*)", re.IGNORECASE)
_HTML_TAGS = frozenset({"html", "head", "body", "meta", "title", "script", "div", "p", "link"})


def _head_text(data: bytes) -> str:
    head = data[:_HEAD]
    for bom, encoding in _TEXT_BOMS:
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, errors="replace")
    return head.decode("utf-8", errors="replace")


def _markup(text: str) -> str | None:
    """'svg' for an SVG document, 'html'/'xml' for other markup, None if not markup."""
    prolog = _XML_PROLOG.match(text)
    rest = text[prolog.end() :] if prolog else text
    root = _ROOT_TAG.match(rest)
    if root is None:
        if "<svg" in text.lower() and text.lstrip().startswith("<"):
            return "svg"  # prolog longer than the head, but an SVG nonetheless
        return "html" if text.lstrip().lower().startswith("<!doctype html") else None
    tag = root.group(1).lower()
    if tag == "svg" or tag.endswith(":svg"):
        return "svg"
    if tag in _HTML_TAGS or text.lstrip().lower().startswith("<!doctype html"):
        return "html"
    return "xml"


def _looks_like(data: bytes) -> str:
    """Describe bytes that are not a picture, for the error detail."""
    if data.startswith(b"\x1f\x8b"):
        return "gzip data"
    if data.startswith(b"PK\x03\x04"):
        return "zip archive"
    if data.startswith(b"ftyp", 4):
        return "video or other ISO-BMFF container"
    text = _head_text(data).lstrip()
    if not text:
        return "blank text"
    if text.startswith("<"):
        return _markup(text) or "markup"
    if text.startswith(("{", "[")):
        return "json"
    printable = sum(ch != "\ufffd" and (ch.isprintable() or ch in "\r\n\t") for ch in text[:1024])
    if text and printable >= 0.95 * min(len(text), 1024):
        return "text"
    return "unknown binary data"


def sniff_format(data: bytes, name: str) -> str:
    """Return the format of ``data`` (one of :data:`ALLOWED_FORMATS`) from its magic bytes.

    ``name`` is used only in the error. Raises :class:`ImageDecodeError` with reason
    ``not_an_image`` or ``unsupported_format`` (detail: the refused format's name).
    """
    if not data:
        raise ImageDecodeError(name, Reason.NOT_AN_IMAGE, "empty file")
    fmt = _allowed(data)
    if fmt is not None:
        return fmt
    for test, refused in _REFUSED:
        if test(data):
            raise ImageDecodeError(name, Reason.UNSUPPORTED_FORMAT, refused)
    container = _iso_bmff(data)
    if container:
        raise ImageDecodeError(name, Reason.UNSUPPORTED_FORMAT, container)
    what = _looks_like(data)
    if what == "svg":
        raise ImageDecodeError(name, Reason.UNSUPPORTED_FORMAT, "svg")
    raise ImageDecodeError(name, Reason.NOT_AN_IMAGE, what)
