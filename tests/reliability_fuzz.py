"""Decoder fuzzing and isolated decoding for the reliability proof (docs/reliability.md).

* :func:`seed_files` - valid files of every allowed format and the odd variants decoders
  take other paths for (progressive/CMYK/EXIF JPEG, palette/16-bit/interlaced PNG, animated
  GIF/WebP, lossless WebP, palette BMP, LZW/JPEG/multi-page TIFF);
* :func:`mutate` - the ``i``-th mutated file of a run, fully determined by ``(run_seed, i)``,
  so any failure is replayed with ``mutate(run_seed, i)``;
* :class:`IsolatedDecoder` - a :mod:`tests.reliability_worker` process under an address-space
  limit; :meth:`~IsolatedDecoder.decode` gives an :class:`Outcome` within a timeout, and sees a
  crash (the worker died) or a hang (no answer in time; the worker is killed and replaced);
* :func:`run_fuzz` - ``n`` mutated files through ``workers`` isolated decoders.
"""

from __future__ import annotations

import os
import pickle
import random
import select
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from tests.corpus import asymmetric_picture, encode, textured_picture

__all__ = [
    "FuzzReport",
    "IsolatedDecoder",
    "Outcome",
    "mutate",
    "run_fuzz",
    "seed_files",
]

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 512 * 1024 * 1024  # bytes of address space per decode worker
FUZZ_MAX_PIXELS = 64_000_000  # the production default budget (clipatlas.images.limits)
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class Outcome:
    """What one file gave: ``picture``, ``typed`` (a Reason), ``untyped``, ``crash`` or ``hang``."""

    index: int
    kind: str
    detail: str
    seconds: float
    peak_rss_kb: int = 0

    @property
    def ok(self) -> bool:
        return self.kind in ("picture", "typed")


def _worker_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # thread pools reserve address space the limit would count
    return env


class IsolatedDecoder:
    """One decode worker process; replaced after a crash or a hang."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT, timeout: float = 5.0) -> None:
        self.memory_limit, self.timeout = memory_limit, timeout
        self.restarts = 0
        self.baseline_rss_kb = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> IsolatedDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability_worker", str(self.memory_limit)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # libtiff/libjpeg chatter
                env=_worker_env(),
                cwd=ROOT,
            )
            ready = self._receive(self._proc, 60.0)
            if ready is None or ready[0] != "ready":
                raise RuntimeError(f"decode worker did not start: {ready!r}")
            self.baseline_rss_kb = int(ready[1])
        return self._proc

    @staticmethod
    def _receive(proc: subprocess.Popen[bytes], timeout: float) -> tuple[object, ...] | None:
        """The next answer, or None when the worker died or ``timeout`` passed."""
        assert proc.stdout is not None
        fd, data, want = proc.stdout.fileno(), b"", _LENGTH.size
        end = time.monotonic() + timeout
        header_done = False
        while len(data) < want:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, want - len(data))
            if not chunk:
                return None
            data += chunk
            if not header_done and len(data) == _LENGTH.size:
                header_done, want, data = True, _LENGTH.unpack(data)[0], b""
        answer = pickle.loads(data)
        assert isinstance(answer, tuple)
        return answer

    def decode(
        self,
        index: int,
        data: bytes,
        *,
        max_pixels: int = FUZZ_MAX_PIXELS,
        draft: tuple[int, int] | None = None,
        fresh: bool = False,
    ) -> Outcome:
        """Decode ``data`` in the worker. ``fresh`` starts a new worker first, so that its
        peak RSS is this file's alone (plus the interpreter and imports)."""
        if fresh:
            self.close()
        proc = self._start()
        assert proc.stdin is not None
        started = time.perf_counter()
        payload = pickle.dumps((index, data, max_pixels, draft))
        try:
            proc.stdin.write(_LENGTH.pack(len(payload)) + payload)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # died; seen below
        answer = self._receive(proc, self.timeout)
        elapsed = time.perf_counter() - started
        if answer is not None:
            _, kind, detail, seconds, peak = answer
            return Outcome(index, str(kind), str(detail), float(seconds), int(peak))  # type: ignore[arg-type]
        try:  # no answer: it died (end of file), or it is still stuck after the timeout
            proc.wait(timeout=0.5)
            alive = False
        except subprocess.TimeoutExpired:
            alive = True
        self.close()
        self.restarts += 1
        if alive:
            return Outcome(index, "hang", f"no answer within {self.timeout}s", elapsed)
        return Outcome(index, "crash", f"worker exited with {proc.returncode}", elapsed)


# -- seeds and mutations ------------------------------------------------------------------------


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@cache
def seed_files() -> tuple[tuple[str, bytes], ...]:
    """Small valid files of every allowed format (JPEG, PNG, GIF, WebP, BMP, TIFF)."""
    picture = textured_picture(1001, (48, 32))
    palette = picture.quantize(colors=16)
    frames = [textured_picture(1002 + i, (40, 30)).quantize(colors=16) for i in range(3)]
    rgb_frames = [textured_picture(1010 + i, (40, 30)) for i in range(3)]
    rgba = picture.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(picture.size))
    grey16 = Image.fromarray(np.asarray(picture.convert("L"), np.uint16) * 257)  # I;16
    seeds = [
        ("jpeg-baseline", encode(picture, "JPEG", quality=80)),
        ("jpeg-progressive", encode(picture, "JPEG", progressive=True)),
        ("jpeg-cmyk", encode(picture.convert("CMYK"), "JPEG")),
        ("jpeg-grey-exif6", encode(picture.convert("L"), "JPEG", exif=_exif(6))),
        ("jpeg-subsampling-444", encode(asymmetric_picture((40, 24)), "JPEG", subsampling=0)),
        ("png-rgb", encode(picture, "PNG")),
        ("png-palette-trns", encode(palette, "PNG", transparency=0)),
        ("png-rgba-interlaced", encode(rgba, "PNG", interlace=1)),
        ("png-grey16", encode(grey16, "PNG")),
        ("png-la", encode(picture.convert("LA"), "PNG")),
        ("png-exif8", encode(picture, "PNG", exif=_exif(8))),
        ("gif-static", encode(palette, "GIF")),
        (
            "gif-animated",
            encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40),
        ),
        ("webp-lossy", encode(picture, "WEBP", quality=70)),
        ("webp-lossless-alpha", encode(rgba, "WEBP", lossless=True)),
        ("webp-extended-exif", encode(picture, "WEBP", exif=_exif(3))),
        (
            "webp-animated",
            encode(rgb_frames[0], "WEBP", save_all=True, append_images=rgb_frames[1:]),
        ),
        ("bmp-rgb", encode(picture, "BMP")),
        ("bmp-palette", encode(palette, "BMP")),
        ("bmp-grey", encode(picture.convert("L"), "BMP")),
        ("tiff-raw", encode(picture, "TIFF")),
        ("tiff-lzw", encode(picture, "TIFF", compression="tiff_lzw")),
        ("tiff-deflate-rgba", encode(rgba, "TIFF", compression="tiff_adobe_deflate")),
        ("tiff-jpeg", encode(picture, "TIFF", compression="jpeg")),
        ("tiff-packbits-cmyk", encode(picture.convert("CMYK"), "TIFF", compression="packbits")),
        (
            "tiff-multipage",
            encode(rgb_frames[0], "TIFF", save_all=True, append_images=rgb_frames[1:]),
        ),
    ]
    return tuple(seeds)


_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def _mutate_once(out: bytearray, rng: random.Random, seeds: tuple[tuple[str, bytes], ...]) -> None:
    n = len(out)
    # half of the damage goes to bytes 4..63, where sizes, counts and offsets live (the
    # magic number before them is kept more often, so the damage reaches the decoders)
    at = rng.randrange(4, min(n, 64)) if n > 8 and rng.random() < 0.5 else rng.randrange(n)
    op = rng.randrange(8)
    if op == 0:
        out[at] = rng.randrange(256)
    elif op == 1:
        out[at] ^= 1 << rng.randrange(8)
    elif op == 2:
        del out[max(at, 1) :]  # cut short
    elif op == 3:
        del out[at : at + rng.randint(1, 64)]
    elif op == 4:
        out[at:at] = rng.randbytes(rng.randint(1, 32))
    elif op == 5:  # repeat a slice: chunk floods, repeated frames and segments
        size = rng.randint(1, 256)
        out[at:at] = out[at : at + size] * rng.randint(1, 8)
    elif op == 6:  # an interesting integer over a size/offset field
        width = rng.choice((1, 2, 4))
        value = rng.choice(_INTERESTING) & ((1 << (8 * width)) - 1)
        order = rng.choice(("little", "big"))
        out[at : at + width] = value.to_bytes(width, order)
    else:  # splice the tail of another seed
        other = rng.choice(seeds)[1]
        cut = rng.randrange(len(other))
        out[at:] = other[cut:]


def mutate(run_seed: int, index: int) -> tuple[str, bytes]:
    """The ``index``-th file of run ``run_seed``: a seed name and its mutated bytes."""
    seeds = seed_files()
    rng = random.Random(run_seed * 1_000_003 + index)
    name, data = seeds[rng.randrange(len(seeds))]
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if len(out) < 2:
            break
        _mutate_once(out, rng, seeds)
    return name, bytes(out)


# -- a run ----------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    files: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[Outcome, str]] = field(default_factory=list)  # (outcome, seed name)
    slowest: float = 0.0
    peak_rss_kb: int = 0
    restarts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "seconds": round(self.seconds, 1),
            "kinds": dict(self.kinds),
            "reasons": dict(self.reasons),
            "failures": [(o.index, name, o.kind, o.detail) for o, name in self.failures[:20]],
            "slowest_s": round(self.slowest, 3),
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "restarts": self.restarts,
        }


def run_fuzz(
    n: int,
    run_seed: int = 0,
    *,
    workers: int = 2,
    timeout: float = 5.0,
    memory_limit: int = MEMORY_LIMIT,
    start: int = 0,
) -> FuzzReport:
    """Decode mutated files ``start .. start + n - 1`` of run ``run_seed`` in isolation."""
    report = FuzzReport()
    lock = threading.Lock()
    indices: Iterator[int] = iter(range(start, start + n))

    errors: list[BaseException] = []

    def drive() -> None:
        try:
            _drive()
        except BaseException as exc:  # a harness bug must fail the run, not vanish
            errors.append(exc)

    def _drive() -> None:
        with IsolatedDecoder(memory_limit, timeout) as decoder:
            while True:
                with lock:
                    index = next(indices, None)
                if index is None:
                    break
                name, data = mutate(run_seed, index)
                draft = (24, 24) if index % 2 else None  # the pipeline decodes JPEGs in draft
                outcome = decoder.decode(index, data, draft=draft)
                with lock:
                    report.files += 1
                    report.kinds[outcome.kind] += 1
                    if outcome.kind == "typed":
                        report.reasons[outcome.detail] += 1
                    if not outcome.ok:
                        report.failures.append((outcome, name))
                    report.slowest = max(report.slowest, outcome.seconds)
                    report.peak_rss_kb = max(report.peak_rss_kb, outcome.peak_rss_kb)
            with lock:
                report.restarts += decoder.restarts

    started = time.perf_counter()
    threads = [threading.Thread(target=drive, daemon=True) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return report
