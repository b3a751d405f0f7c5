"""Audit pinned dependencies against the advisories PyPI lists for each project's LATEST release.

Why: pip-audit's "pypi" service asks the per-release endpoint ``/pypi/<name>/<version>/json``.
Registry mirrors (what this machine and CI reach) often answer only the per-project endpoint
``/pypi/<name>/json``, whose ``vulnerabilities`` list holds the known advisories of the latest
release (``info.version``; see Warehouse's JSON API reference). So this audits exactly the pins
that ARE the latest release, and says honestly that it cannot judge the others:

* installed == latest                  -> audited: its advisories (withdrawn ones dropped,
                                          PYSEC/GHSA/... aliases of one flaw merged into one)
* installed older than latest          -> skipped: "installed X, latest Y: this registry reports
                                          advisories for the latest release only"
* installed newer than latest, unknown
  project (404), network or data error -> skipped, with the reason

The report has the shape ``pip-audit -f json`` writes, so ``scripts/audit.sh`` judges either:
``{"dependencies": [{"name", "version", "vulns": [{"id", "fix_versions", "aliases",
"description"}]} | {"name", "version", "skip_reason"}], "fixes": []}``.

Usage: .venv/bin/python scripts/audit_latest.py REQUIREMENTS -o REPORT [--base-url URL]
REQUIREMENTS holds ``name==version`` lines (``pip freeze``). The base URL defaults to
$CLIPATLAS_AUDIT_PYPI_URL or https://pypi.org. Standard library only (``packaging`` is used
for version order when importable). Exit 0 when the report is written, 2 when it cannot be.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - packaging ships with pip's venvs
    Version = None  # type: ignore[assignment,misc]
    InvalidVersion = ValueError  # type: ignore[assignment,misc]

DEFAULT_BASE_URL = "https://pypi.org"
LATEST_ONLY = "this registry reports advisories for the latest release only"
_RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line; ``name`` is PEP 503-normalised."""

    name: str
    version: str


class FetchError(Exception):
    """The project's JSON could not be fetched or read; ``reason`` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_name(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` become one ``-``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> tuple[list[Pin], list[dict[str, str]]]:
    """The ``name==version`` pins of a requirements text, and skip entries for other lines."""
    pins: list[Pin] = []
    others: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].split(" --hash", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(\S+)", line)
        if match:
            pins.append(Pin(normalise_name(match.group(1)), match.group(3)))
        else:
            name = normalise_name(re.split(r"[\s\[<>=!~@(]", line, maxsplit=1)[0])
            others.append({"name": name, "skip_reason": f"not a name==version pin: {line!r}"})
    return pins, others


def compare_versions(installed: str, latest: str) -> int | None:
    """-1, 0 or 1 as installed is older, the same as or newer than latest; None if unknown.

    Local labels are ignored (``2.1.0+cpu`` is a build of release 2.1.0). Without
    ``packaging`` only equality of the normalised strings is known.
    """
    if Version is not None:
        try:
            a, b = Version(installed), Version(latest)
        except InvalidVersion:
            pass
        else:
            a, b = Version(a.public), Version(b.public)
            return (a > b) - (a < b)
    same = installed.split("+", 1)[0].lower().lstrip("v") == latest.lower().lstrip("v")
    return 0 if same else None


def fetch_project(
    base_url: str, name: str, *, timeout: float, attempts: int = 3, backoff: float = 0.5
) -> dict[str, Any] | None:
    """``<base>/pypi/<name>/json`` as a dict; None when the registry does not know the project.

    Connection errors, timeouts, 429 and 5xx are retried ``attempts`` times in all, waiting
    ``backoff``, then twice that; anything else (or the last failure) raises FetchError.
    """
    url = f"{base_url.rstrip('/')}/pypi/{name}/json"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    last = "no attempt"
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            last = f"HTTP {exc.code} from {url}"
            if exc.code not in _RETRY_STATUSES:
                break
            continue
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = f"{type(exc).__name__} for {url}: {getattr(exc, 'reason', exc)}"
            continue
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise FetchError(f"not JSON from {url}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
            raise FetchError(f"no 'info' object in the JSON from {url}")
        return data
    raise FetchError(f"{last} (after {attempt + 1} attempt(s))")


def _fix_key(version: str) -> tuple[int, Any]:
    if Version is not None:
        try:
            return (0, Version(version))
        except InvalidVersion:
            pass
    return (1, version)


def merge_vulnerabilities(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pip-audit-style vulns from PyPI entries: withdrawn dropped, aliases merged.

    Two entries whose ``{id} | aliases`` sets meet are one flaw (a PYSEC and a GHSA record of
    one CVE); PYSEC ids are preferred as the reported id, as pip-audit does. Fix versions are
    the union of the merged entries'.
    """
    live = [e for e in entries if isinstance(e, dict) and e.get("id") and not e.get("withdrawn")]
    live.sort(key=lambda e: not str(e["id"]).startswith("PYSEC"))
    merged: list[dict[str, Any]] = []
    for entry in live:
        ids = {str(entry["id"]), *map(str, entry.get("aliases") or [])}
        fixes = {str(v) for v in entry.get("fixed_in") or []}
        for vuln in merged:
            if vuln["_ids"] & ids:
                vuln["_ids"] |= ids
                vuln["_fixes"] |= fixes
                break
        else:
            description = entry.get("summary") or entry.get("details") or "N/A"
            merged.append(
                {
                    "id": str(entry["id"]),
                    "_ids": ids,
                    "_fixes": fixes,
                    "description": " ".join(str(description).split()),
                }
            )
    return [
        {
            "id": v["id"],
            "fix_versions": sorted(v["_fixes"], key=_fix_key),
            "aliases": sorted(v["_ids"] - {v["id"]}),
            "description": v["description"],
        }
        for v in merged
    ]


def audit_pin(pin: Pin, base_url: str, *, timeout: float, backoff: float) -> dict[str, Any]:
    """One report entry for ``pin``: its vulns, or a skip_reason saying why it was not judged."""
    try:
        project = fetch_project(base_url, pin.name, timeout=timeout, backoff=backoff)
    except FetchError as exc:
        return {"name": pin.name, "version": pin.version, "skip_reason": exc.reason}
    if project is None:
        reason = f"{pin.name} is not on the registry ({base_url}): not audited"
        return {"name": pin.name, "version": pin.version, "skip_reason": reason}
    latest = str(project["info"].get("version") or "")
    order = compare_versions(pin.version, latest)
    if order == 0:
        entries = project.get("vulnerabilities")
        if not isinstance(entries, list):
            reason = f"the registry's JSON for {pin.name} has no 'vulnerabilities' list"
            return {"name": pin.name, "version": pin.version, "skip_reason": reason}
        return {"name": pin.name, "version": pin.version, "vulns": merge_vulnerabilities(entries)}
    if order is not None and order < 0:
        reason = f"installed {pin.version}, latest {latest}: {LATEST_ONLY}"
    elif order is not None:
        reason = (
            f"installed {pin.version} is newer than the registry's latest release {latest} "
            f"(pre-release or yanked?): {LATEST_ONLY}"
        )
    else:
        reason = f"installed {pin.version}, latest {latest!r} (versions not comparable)"
    return {"name": pin.name, "version": pin.version, "skip_reason": reason}


def audit(
    pins: list[Pin],
    base_url: str,
    *,
    workers: int = 8,
    timeout: float = 15.0,
    backoff: float = 0.5,
) -> list[dict[str, Any]]:
    """Report entries for ``pins``, in their order, fetched ``workers`` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(
            pool.map(lambda p: audit_pin(p, base_url, timeout=timeout, backoff=backoff), pins)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("requirements", type=Path, help="name==version lines (pip freeze)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON report to write")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("CLIPATLAS_AUDIT_PYPI_URL") or DEFAULT_BASE_URL,
        help="registry root serving /pypi/<name>/json (env CLIPATLAS_AUDIT_PYPI_URL)",
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    parser.add_argument("--backoff", type=float, default=0.5, help="first retry wait, seconds")
    args = parser.parse_args(argv)
    try:
        text = args.requirements.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"audit_latest: cannot read {args.requirements}: {exc}", file=sys.stderr)
        return 2
    pins, others = read_pins(text)
    deps = audit(
        pins, args.base_url, workers=args.workers, timeout=args.timeout, backoff=args.backoff
    )
    report = {"dependencies": deps + others, "fixes": []}
    try:
        args.output.write_text(json.dumps(report, indent=1), encoding="utf-8")
    except OSError as exc:
        print(f"audit_latest: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
