"""Read the lock files under locks/ and compare them with an installed environment.

The lock files are written by ``uv pip compile --universal --generate-hashes`` (scripts/lock.sh):
one ``name==version ; marker`` requirement a package, hashes on continuation lines, ``# via``
comments. This script needs only the standard library and ``packaging`` (pip vendors a copy,
so it also runs in a fresh virtualenv before anything is installed).

    python scripts/lockfile.py check LOCK [--cpu]    installed == lock for this interpreter
    python scripts/lockfile.py without-cuda LOCK     the lock minus torch's CUDA packages
    python scripts/lockfile.py pin LOCK NAME         NAME's locked version here (e.g. torch)
    python scripts/lockfile.py diff OLD NEW          what an upgrade changes, a line a package

``check`` exits 1 and lists every drift (a package at another version, missing, or installed
but not in the lock); ``--cpu`` accepts the CPU builds of torch and torchvision (``+cpu``) and
the absence of the CUDA packages, which is what ``scripts/install.sh --cpu`` installs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # a fresh virtualenv: pip's own copy
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef]

__all__ = ["Pin", "check", "cuda_only", "read_lock", "without_cuda"]

# Packages that only a CUDA build of torch needs; a CPU build brings none of them.
_CUDA_PREFIXES = ("nvidia-", "cuda-")
_CUDA_NAMES = frozenset({"triton"})
# Packages whose CPU builds carry a local version label (2.14.1+cpu).
_CPU_BUILDS = frozenset({"torch", "torchvision"})
# Installed by the virtualenv itself or by install.sh beside the lock, never drift.
_ALLOWED_EXTRA = frozenset({"clipatlas"})

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


@dataclass(frozen=True)
class Pin:
    """One locked requirement: the text block as written, and what it says."""

    name: str
    version: str
    marker: str | None
    text: str

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        """True when the marker holds for the running interpreter, or for ``environment``
        (marker variables overriding the running ones), or when there is no marker."""
        return self.marker is None or Marker(self.marker).evaluate(environment)


def read_lock(path: Path) -> list[Pin]:
    """Every requirement block of a lock file, in file order."""
    pins: list[Pin] = []
    block: list[str] = []

    def close() -> None:
        if not block:
            return
        match = _REQUIREMENT.match(block[0].strip())
        if match is None:
            raise ValueError(f"{path}: cannot read requirement line {block[0]!r}")
        name, version, marker = match.groups()
        pins.append(Pin(canonicalize_name(name), version, marker, "\n".join(block)))
        block.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            close()
            block.append(line)
        elif block and line.strip():
            block.append(line)
        elif not block and line.strip() and not line.startswith("#"):
            raise ValueError(f"{path}: unexpected line {line!r}")
    close()
    return pins


def cuda_only(name: str) -> bool:
    """True for the packages that only a CUDA build of torch needs."""
    return name in _CUDA_NAMES or name.startswith(_CUDA_PREFIXES)


def without_cuda(pins: list[Pin]) -> list[Pin]:
    """The lock for a CPU build: no torch/torchvision (installed from a CPU index), no CUDA."""
    return [p for p in pins if not cuda_only(p.name) and p.name not in _CPU_BUILDS]


def _installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonicalize_name(name)] = dist.version
    return found


def _same_release(installed: str, locked: str, cpu: bool) -> bool:
    if installed == locked:
        return True
    if not cpu:
        return False
    ours, theirs = Version(installed), Version(locked)
    return ours.public == theirs.public and ours.local in (None, "cpu")


def check(pins: list[Pin], cpu: bool = False, installed: dict[str, str] | None = None) -> list[str]:
    """Every difference between the installed packages (default: this environment's) and the
    lock, one message each."""
    installed = _installed() if installed is None else installed
    wanted = {p.name: p.version for p in pins if p.applies()}
    problems: list[str] = []
    for name, version in sorted(wanted.items()):
        if cpu and cuda_only(name):
            if name in installed:
                problems.append(f"{name}: {installed[name]} installed, a CPU install needs none")
            continue
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: missing (lock: {version})")
        elif not _same_release(have, version, cpu and name in _CPU_BUILDS):
            problems.append(f"{name}: {have} installed, lock: {version}")
    for name, version in sorted(installed.items()):
        if name not in wanted and name not in _ALLOWED_EXTRA:
            problems.append(f"{name}: {version} installed, not in the lock")
    return problems


def diff(old: list[Pin], new: list[Pin]) -> list[str]:
    """Per package, how the versions for this interpreter change from old to new."""
    before = {p.name: p.version for p in old if p.applies()}
    after = {p.name: p.version for p in new if p.applies()}
    lines = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name, "-"), after.get(name, "-")
        if a != b:
            lines.append(f"{name}: {a} -> {b}")
    return lines


def main(argv: list[str]) -> int:
    usage = __doc__.split("\n\n")[2]
    if len(argv) < 2 or argv[0] not in {"check", "without-cuda", "pin", "diff"}:
        print(usage, file=sys.stderr)
        return 64
    command, lock = argv[0], Path(argv[1])
    pins = read_lock(lock)
    if command == "check":
        problems = check(pins, cpu="--cpu" in argv[2:])
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        count = sum(1 for p in pins if p.applies())
        if problems:
            print(f"{len(problems)} package(s) differ from {lock}", file=sys.stderr)
            return 1
        print(f"installed packages equal {lock} ({count} pins for this interpreter)")
        return 0
    if command == "without-cuda":
        print("\n".join(p.text for p in without_cuda(pins)))
        return 0
    if command == "pin":
        if len(argv) < 3:
            print(usage, file=sys.stderr)
            return 64
        name = canonicalize_name(argv[2])
        versions = [p.version for p in pins if p.name == name and p.applies()]
        if not versions:
            print(f"{argv[2]} is not locked for this interpreter in {lock}", file=sys.stderr)
            return 1
        print(versions[0])
        return 0
    if len(argv) < 3:
        print(usage, file=sys.stderr)
        return 64
    changes = diff(pins, read_lock(Path(argv[2])))
    print("\n".join(changes) if changes else "no version changes for this interpreter")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
