"""scripts/audit.sh's verdict on pip-audit reports: a vulnerable decoder or web package fails,
a report that could not look packages up is "unavailable" (never a pass), a clean one passes.

The live audit needs a vulnerability service (pypi.org's per-release JSON API or OSV); see
docs/reliability.md for what this machine reaches. These tests judge reports written here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLEAN = {"name": "numpy", "version": "2.0.0", "vulns": []}
PILLOW_CVE = {
    "name": "pillow",
    "version": "10.0.0",
    "vulns": [{"id": "PYSEC-2023-227", "fix_versions": ["10.0.1"], "aliases": ["CVE-2023-4863"]}],
}


def _verdict(tmp_path: Path, deps: list[dict[str, object]], *flags: str) -> tuple[int, str]:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": deps, "fixes": []}))
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "audit.sh"), "--report", str(report), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_clean_report_passes(tmp_path: Path) -> None:
    code, out = _verdict(tmp_path, [CLEAN, {"name": "pillow", "version": "12.0.0", "vulns": []}])
    assert code == 0, out
    assert "2 of 2 packages audited, 0 with known vulnerabilities" in out


@pytest.mark.parametrize("name", ["pillow", "starlette", "python-multipart", "h11", "jinja2"])
def test_a_known_vulnerability_in_a_decoder_or_the_web_stack_fails(
    tmp_path: Path, name: str
) -> None:
    code, out = _verdict(tmp_path, [CLEAN, {**PILLOW_CVE, "name": name}])
    assert code == 1, out
    assert f"[WATCHED] {name} 10.0.0: PYSEC-2023-227 (fixed in 10.0.1)" in out


def test_a_vulnerability_elsewhere_is_listed_and_fails_only_when_strict(tmp_path: Path) -> None:
    deps = [{**PILLOW_CVE, "name": "pyyaml"}]
    assert _verdict(tmp_path, deps)[0] == 0
    assert _verdict(tmp_path, deps, "--strict")[0] == 1


def test_packages_the_service_could_not_look_up_make_the_audit_unavailable_not_a_pass(
    tmp_path: Path,
) -> None:
    skipped = {
        "name": "pillow",
        "skip_reason": "Dependency not found on PyPI and could not be audited",
    }
    code, out = _verdict(tmp_path, [CLEAN, skipped])
    assert code == 2, out
    assert "UNAVAILABLE" in out and "pillow" in out
