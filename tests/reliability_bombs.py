"""Crafted decompression bombs and oddities beyond tests/corpus.py's PNG and GIF-screen bombs.

Every builder writes its bytes by hand (no Pillow encoder would write them), in milliseconds:

* :func:`many_frame_gif_bytes` - a GIF whose frames, counted together, hold far more pixels
  than any budget (``frames`` x the logical screen);
* :func:`gif_frame_outside_screen_bytes` - a small logical screen whose first frame is placed
  at a huge offset (Pillow grows the canvas to hold it);
* :func:`tiff_chain_bytes` - a TIFF whose image file directories (IFDs) form a long chain
  ending in a loop back to the first one, each page declaring ``side`` x ``side`` pixels of
  one deflate stream of zeros;
* :func:`tiff_deflate_bomb_bytes` - one page, a deflate strip that inflates to gigabytes.
"""

from __future__ import annotations

import struct
import zlib

__all__ = [
    "gif_frame_outside_screen_bytes",
    "many_frame_gif_bytes",
    "tiff_chain_bytes",
    "tiff_deflate_bomb_bytes",
]


def _gif_frame(left: int, top: int, width: int, height: int) -> bytes:
    """One frame: graphic control extension + image descriptor + a tiny LZW stream of zeros."""
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # 10 ms delay, no transparency
    descriptor = b"\x2c" + struct.pack("<HHHH", left, top, width, height) + b"\x00"
    # LZW, minimum code size 2: clear (4), one pixel of colour 0, end (5), packed LSB first.
    return control + descriptor + b"\x02\x02\x44\x01\x00"


def _gif_header(width: int, height: int) -> bytes:
    palette = b"\x00\x00\x00\xff\xff\xff\x80\x80\x80\x20\x40\x60"  # 4 colours (flag size 1)
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0x81, 0, 0) + palette


def many_frame_gif_bytes(frames: int = 100_000, side: int = 4_000) -> bytes:
    """A ``side`` x ``side`` GIF of ``frames`` one-pixel frames (about 20 bytes each).

    ``frames * side * side`` pixels in all (1.6 T for the defaults); the first frame is a
    single pixel on a canvas within the 64 MP budget.
    """
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    return _gif_header(side, side) + loop + _gif_frame(0, 0, 1, 1) * frames + b"\x3b"


def gif_frame_outside_screen_bytes(offset: int = 60_000) -> bytes:
    """A 32 x 32 logical screen whose first (1 x 1) frame sits at ``(offset, offset)``."""
    return _gif_header(32, 32) + _gif_frame(offset, offset, 1, 1) + b"\x3b"


def _zeros_deflate(total: int) -> bytes:
    """A zlib stream of ``total`` zero bytes, built from one flushed block repeated."""
    piece = 1 << 22
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(piece)) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(total, piece)
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + block * count + tail + adler.to_bytes(4, "big")


def _ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
    out = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        if kind == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    return out + struct.pack("<I", next_ifd)


def _page_entries(width: int, height: int, strip_at: int, strip_len: int) -> list:
    return [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 8),  # Compression: Adobe deflate
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, strip_at),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip: one strip
        (279, 4, 1, strip_len),  # StripByteCounts
    ]


def tiff_chain_bytes(
    pages: int = 50_000, side: int = 50_000, first_side: int | None = None
) -> bytes:
    """A little-endian TIFF of ``pages`` IFDs in a chain whose last one points back to the first.

    Every page declares ``side`` x ``side`` 8-bit grey pixels (``first_side`` for the first)
    and shares one small deflate strip; the strip holds the zeros of a ``first_side`` page.
    """
    first = first_side or side
    strip = _zeros_deflate(min(first * first, 1 << 24))
    strip_at = 8
    ifd_start = strip_at + len(strip)
    ifd_start += ifd_start % 2  # IFDs start on a word boundary
    ifd_size = 2 + 9 * 12 + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_start) + strip)
    out += b"\x00" * (ifd_start - len(out))
    for page in range(pages):
        nxt = ifd_start + (page + 1) * ifd_size if page + 1 < pages else ifd_start  # loop
        size = first if page == 0 else side
        out += _ifd(_page_entries(size, size, strip_at, len(strip)), nxt)
    return bytes(out)


def tiff_deflate_bomb_bytes(side: int = 60_000) -> bytes:
    """One ``side`` x ``side`` grey page whose deflate strip inflates to ``side**2`` zeros."""
    strip = _zeros_deflate(side * side)
    ifd_start = 8 + len(strip) + (len(strip) % 2)
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_start) + strip)
    out += b"\x00" * (ifd_start - len(out))
    out += _ifd(_page_entries(side, side, 8, len(strip)), 0)
    return bytes(out)
