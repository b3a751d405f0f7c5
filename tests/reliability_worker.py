"""A decode worker process for the reliability tests: ``python -m tests.reliability_worker``.

It caps its own address space (``RLIMIT_AS``, from argv[1] in bytes; 0 = no cap), then reads
length-prefixed pickled requests ``(index, data, max_pixels, draft)`` from stdin and answers
each with ``(index, kind, detail, seconds, peak_rss_kb)`` on stdout, where ``kind`` is

* ``"picture"`` (detail ``"<format> <w>x<h>"``) when :func:`analyse_bytes` returned an 8-bit RGB
  picture;
* ``"typed"`` (detail: the :class:`~clipatlas.errors.Reason` value) for an
  :class:`~clipatlas.errors.ImageDecodeError`;
* ``"untyped"`` (detail: exception type and message) for anything else that escaped.

Crashes (a signal, an abort) and hangs are seen by the parent (indices -1 and -2 make one on
purpose, to test that) (:mod:`tests.reliability_fuzz`).
Only clipatlas.images is imported: the same code the pipeline's decode workers run.
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys
import time
import warnings

_LENGTH = struct.Struct("<Q")
CRASH_ON_DEMAND, HANG_ON_DEMAND = -1, -2  # request indices the harness self-test uses


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write(fd: int, payload: bytes) -> None:
    view = memoryview(_LENGTH.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _peak_rss_kb() -> int:
    """This process's own peak resident memory (kB). ``VmHWM`` belongs to the address space
    made by exec; ``ru_maxrss`` is not used because Linux folds the *parent's* resident size at
    fork into it (a 2 GB test runner made every worker look 2 GB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> int:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    from clipatlas.errors import ImageDecodeError
    from clipatlas.images import ImageLimits, analyse_bytes

    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("error")  # a warning leaking out of decode counts as untyped
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    _write(fd_out, pickle.dumps(("ready", _peak_rss_kb())))
    while True:
        header = _read_exact(fd_in, _LENGTH.size)
        if header is None:
            return 0
        body = _read_exact(fd_in, _LENGTH.unpack(header)[0])
        if body is None:
            return 0
        index, data, max_pixels, draft = pickle.loads(body)
        if index == CRASH_ON_DEMAND:  # the harness's self-test: a crash as a codec would crash
            os.abort()
        if index == HANG_ON_DEMAND:  # ... and a decoder that never returns
            time.sleep(3600)
        started = time.perf_counter()
        try:
            limits = ImageLimits(max_pixels=max_pixels, min_side=1)
            picture = analyse_bytes(data, f"fuzz-{index}", limits, draft=draft)
            image = picture.image
            if image.mode != "RGB" or image.size[0] < 1 or image.size[1] < 1:
                kind, detail = "untyped", f"bad picture: mode {image.mode} size {image.size}"
            else:
                kind, detail = "picture", f"{picture.format} {picture.width}x{picture.height}"
        except ImageDecodeError as exc:
            kind, detail = "typed", exc.reason.value
        except BaseException as exc:
            kind, detail = "untyped", f"{type(exc).__name__}: {exc}"[:300]
        seconds = time.perf_counter() - started
        _write(fd_out, pickle.dumps((index, kind, detail, seconds, _peak_rss_kb())))


if __name__ == "__main__":
    sys.exit(main())
