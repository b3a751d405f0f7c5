"""Cheap structural checks on the raw bytes, done before Pillow decodes any pixel.

Pillow reports a file cut short in several ways depending on where the cut falls (an
"image file is truncated" error, a failed identification, a generic decoder error, or for a
PNG missing its last chunk no error at all). These checks make the answer deterministic:

* :func:`declared_size` reads the pixel size from the header of JPEG, PNG, GIF, BMP and WebP
  files without Pillow, so the pixel budget holds even where a decoder would allocate while
  opening (libwebp allocates its canvas when the decoder is created), and raises ``truncated``
  when the header itself is incomplete;
* :func:`check_complete` raises ``truncated`` when the body the header promises is missing:
  a PNG without its ``IEND`` chunk, a TIFF whose strips or tiles point past the end of the file.
"""

from __future__ import annotations

import struct

from PIL import Image

from clipatlas.errors import ImageDecodeError, Reason

__all__ = ["check_complete", "declared_size"]

Size = tuple[int, int]

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x01}


class _Truncated(Exception):
    """Raised by the per-format readers; turned into ImageDecodeError(TRUNCATED)."""


def _need(data: bytes, end: int) -> None:
    if len(data) < end:
        raise _Truncated(f"header needs {end} bytes, file has {len(data)}")


def _png(data: bytes) -> Size | None:
    _need(data, 33)  # signature + IHDR chunk
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _gif(data: bytes) -> Size | None:
    _need(data, 13)
    flags = data[10]
    palette = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
    _need(data, 13 + palette + 1)
    width, height = struct.unpack_from("<HH", data, 6)
    return int(width), int(height)


def _bmp(data: bytes) -> Size | None:
    _need(data, 18)
    dib = struct.unpack_from("<I", data, 14)[0]
    _need(data, 14 + dib)
    _need(data, struct.unpack_from("<I", data, 10)[0])  # start of the pixel array
    if dib == 12:
        width, height = struct.unpack_from("<HH", data, 18)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
    return abs(int(width)), abs(int(height))  # negative height: top-down rows


def _webp(data: bytes) -> Size | None:
    _need(data, 12)
    _need(data, 8 + struct.unpack_from("<I", data, 4)[0])  # RIFF size covers the whole file
    _need(data, 30)
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = struct.unpack_from("<I", data, 21)[0]
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _jpeg(data: bytes) -> Size | None:
    """Walk the marker segments up to the frame header (SOFn)."""
    n, i = len(data), 2
    while True:
        _need(data, i + 1)
        if data[i] != 0xFF:
            return None  # not a marker where one must be: let the decoder judge
        while i < n and data[i] == 0xFF:
            i += 1  # fill bytes
        _need(data, i + 1)
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:  # EOI before any frame
            return None
        _need(data, i + 2)
        length = struct.unpack_from(">H", data, i)[0]
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            _need(data, i + 7)
            height, width = struct.unpack_from(">HH", data, i + 3)
            return (int(width), int(height)) if height else None  # 0: height set by DNL
        i += length


# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., IFD8).
_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


def _tiff(data: bytes) -> Size | None:
    """Check that the first image file directory (IFD) and the values it points to are present.

    Strip and tile data are checked after Pillow has parsed the IFD (:func:`check_complete`).
    """
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets, 20-byte entries
    if big:
        _need(data, 16)
        ifd, count_fmt, count_size, entry_fmt, entry_size = (
            struct.unpack_from(order + "Q", data, 8)[0],
            "Q",
            8,
            "HHQQ",
            20,
        )
    else:
        _need(data, 8)
        ifd, count_fmt, count_size, entry_fmt, entry_size = (
            struct.unpack_from(order + "I", data, 4)[0],
            "H",
            2,
            "HHII",
            12,
        )
    if ifd < 8:
        return None
    _need(data, ifd + count_size)
    count = struct.unpack_from(order + count_fmt, data, ifd)[0]
    start = ifd + count_size
    _need(data, start + entry_size * count)
    inline = 8 if big else 4
    for i in range(count):
        entry = start + i * entry_size
        _tag, kind, values, offset = struct.unpack_from(order + entry_fmt, data, entry)
        size = _TIFF_TYPE_SIZES.get(kind, 0) * values
        if size > inline:
            _need(data, offset + size)
    return None


_READERS = {"PNG": _png, "GIF": _gif, "BMP": _bmp, "WEBP": _webp, "JPEG": _jpeg, "TIFF": _tiff}


def declared_size(data: bytes, fmt: str, name: str) -> Size | None:
    """Pixel size the header declares, or None where it is not read here (TIFF, odd headers).

    Raises ``ImageDecodeError(truncated)`` when the file ends inside its header.
    """
    reader = _READERS.get(fmt)
    if reader is None:
        return None
    try:
        return reader(data)
    except _Truncated as exc:
        raise ImageDecodeError(name, Reason.TRUNCATED, str(exc)) from None
    except (struct.error, IndexError, OverflowError):
        return None  # malformed rather than short: Pillow gives the precise error


def _as_ints(value: object) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, int)]
    return []


def _tiff_data_end(image: Image.Image) -> int:
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return 0
    end = 0
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # strips, tiles
        offsets = _as_ints(tags.get(offsets_tag))
        counts = _as_ints(tags.get(counts_tag))
        end = max([end, *(o + c for o, c in zip(offsets, counts, strict=False))])
    return end


def check_complete(data: bytes, fmt: str, name: str, image: Image.Image) -> None:
    """Raise ``ImageDecodeError(truncated)`` when the body the header promises is missing."""
    if fmt == "PNG":
        end = data.rfind(b"IEND")
        if end < 0 or end + 8 > len(data):  # chunk type + CRC
            raise ImageDecodeError(name, Reason.TRUNCATED, "PNG has no complete IEND chunk")
    if fmt == "TIFF":
        end = _tiff_data_end(image)
        if end > len(data):
            raise ImageDecodeError(
                name, Reason.TRUNCATED, f"image data ends at byte {end}, file has {len(data)}"
            )
