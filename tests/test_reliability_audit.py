"""scripts/audit.sh's verdict on pip-audit reports: a vulnerable decoder or web package fails,
a report that could not look packages up is "unavailable" (never a pass), a clean one passes.

Then the "latest" service (scripts/audit_latest.py) end to end against a fake PyPI JSON API on
127.0.0.1 (``/pypi/<name>/json``, the per-project endpoint registry mirrors answer): a pin at
the latest release is audited from the project's advisories, an older pin is skipped (and makes
the audit unavailable when it is watched), aliases merge, withdrawn advisories are ignored,
unknown projects and flaky servers are handled. The "auto" service is run with pip-audit's
HTTPS traffic sent to a loopback proxy that refuses it, so it falls back without the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.local_server import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
CLEAN: dict[str, Any] = {"name": "numpy", "version": "2.0.0", "vulns": []}
PILLOW_CVE: dict[str, Any] = {
    "name": "pillow",
    "version": "10.0.0",
    "vulns": [{"id": "PYSEC-2023-227", "fix_versions": ["10.0.1"], "aliases": ["CVE-2023-4863"]}],
}


def _verdict(tmp_path: Path, deps: list[dict[str, Any]], *flags: str) -> tuple[int, str]:
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


# --- the "latest" service against a fake PyPI JSON API -------------------------------------

STARLETTE_CVE: list[dict[str, Any]] = [
    {
        "id": "GHSA-2c2j-9gv5-cj73",
        "aliases": ["CVE-2025-62727", "PYSEC-2025-90"],
        "fixed_in": ["0.49.1"],
        "withdrawn": None,
        "summary": "Starlette Range header\nDoS",
        "details": "long text",
    },
    {
        "id": "PYSEC-2025-90",
        "aliases": ["CVE-2025-62727"],
        "fixed_in": ["0.49.1", "0.48.9"],
        "withdrawn": None,
        "summary": None,
        "details": "The same flaw, PyPA advisory database record.",
    },
    {
        "id": "GHSA-xxxx-withdrawn",
        "aliases": ["CVE-2099-0001"],
        "fixed_in": [],
        "withdrawn": "2025-01-02T00:00:00Z",
        "summary": "retracted",
        "details": "",
    },
]


class FakePyPI(LoopbackServer):
    """``/pypi/<name>/json`` for ``projects`` (name -> (latest, vulnerabilities)); 404 otherwise.

    ``failures[name] = n`` answers the first n requests for that project with 503.
    """

    def __init__(self, projects: dict[str, tuple[str, list[dict[str, Any]]]]) -> None:
        self.projects = projects
        self.failures: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                name = parts[1] if len(parts) == 3 and parts[::2] == ["pypi", "json"] else ""
                with fake._lock:
                    fake.hits[name or self.path] += 1
                    failing = fake.failures.get(name, 0) >= fake.hits[name] if name else False
                if failing:
                    self._send(503, b"busy")
                elif name in fake.projects:
                    latest, vulns = fake.projects[name]
                    body = {
                        "info": {"name": name, "version": latest},
                        "releases": {},
                        "urls": [],
                        "vulnerabilities": vulns,
                    }
                    self._send(200, json.dumps(body).encode())
                else:
                    self._send(404, b'{"message": "Not Found"}')

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


class RefusingProxy(LoopbackServer):
    """An HTTPS proxy that refuses every CONNECT: pip-audit's pypi service gets no answer."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                proxy.tunnels.append(self.path)
                self.send_response(403, "no internet here")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


def _environment(tmp_path: Path, pypi: FakePyPI, pins: list[str]) -> dict[str, str]:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("\n".join(pins) + "\n")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(
        CLIPATLAS_AUDIT_REQUIREMENTS=str(freeze),
        CLIPATLAS_AUDIT_PYPI_URL=pypi.origin,
        NO_PROXY="127.0.0.1,localhost",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    env.pop("CLIPATLAS_AUDIT_SERVICE", None)
    return env


def _audit(
    tmp_path: Path, pypi: FakePyPI, pins: list[str], *flags: str, service: str = "latest"
) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "audit.sh"), "--service", service, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_environment(tmp_path, pypi, pins),
    )
    return done.returncode, done.stdout + done.stderr


def _report(tmp_path: Path, pypi: FakePyPI, pins: list[str]) -> dict[str, dict[str, Any]]:
    """audit_latest.py's report, by package name."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "audit_latest.py"),
            str(tmp_path / "freeze.txt"),
            *("-o", str(out), "--backoff", "0.05"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_environment(tmp_path, pypi, pins),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["fixes"] == []
    return {dep["name"]: dep for dep in report["dependencies"]}


NUMPY_ADVISORY: dict[str, Any] = {"id": "PYSEC-2099-1", "aliases": [], "fixed_in": []}
PROJECTS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "starlette": ("0.49.0", STARLETTE_CVE),
    "pillow": ("13.0.0", []),
    "h11": ("0.16.0", []),
    "numpy": ("2.5.0", [NUMPY_ADVISORY]),
    "pyyaml": ("6.0.3", []),
    "python-multipart": ("0.0.20", []),
}


@pytest.fixture
def pypi() -> Any:
    with FakePyPI(dict(PROJECTS)) as server:
        yield server


def test_a_watched_package_at_its_latest_release_with_an_advisory_fails(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    code, out = _audit(tmp_path, pypi, ["starlette==0.49.0", "pillow==13.0.0"])
    assert code == 1, out
    assert "[WATCHED] starlette 0.49.0: PYSEC-2025-90 (fixed in 0.48.9, 0.49.1)" in out
    assert "GHSA-2c2j-9gv5-cj73" not in out  # merged into the PYSEC record
    assert "verdict from service latest: 2 audited, 0 skipped" in out


def test_clean_latest_releases_pass_with_names_normalised(tmp_path: Path, pypi: FakePyPI) -> None:
    pins = ["Pillow==13.0.0", "PyYAML==6.0.3", "Python_Multipart==0.0.20", "h11==0.16.0"]
    code, out = _audit(tmp_path, pypi, pins)
    assert code == 0, out
    assert "4 of 4 packages audited, 0 with known vulnerabilities" in out
    assert {"/pypi/pyyaml/json", "/pypi/python-multipart/json"} <= {
        f"/pypi/{name}/json" for name in pypi.hits
    }


def test_a_watched_package_older_than_the_latest_release_is_unavailable_not_a_pass(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    code, out = _audit(tmp_path, pypi, ["pillow==13.0.0", "h11==0.14.0"])
    assert code == 2, out
    assert "UNAVAILABLE" in out and "watched: h11" in out
    assert "installed 0.14.0, latest 0.16.0: this registry reports advisories" in out


def test_an_unwatched_package_older_than_the_latest_is_listed_as_skipped_and_passes(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    # numpy's latest has an advisory; our older pin cannot be judged, so it is not reported.
    code, out = _audit(tmp_path, pypi, ["pillow==13.0.0", "numpy==2.4.6"])
    assert code == 0, out
    assert "1 audited, 1 skipped as not the latest release, 0 skipped for other reasons" in out
    assert "[skipped] numpy 2.4.6" in out and "PYSEC-2099-1" not in out
    # ... and --strict does not turn an unjudged package into a failure or a pass of its own
    assert _audit(tmp_path, pypi, ["pillow==13.0.0", "numpy==2.4.6"], "--strict")[0] == 0


def test_aliases_merge_into_one_advisory_and_withdrawn_ones_are_ignored(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    deps = _report(tmp_path, pypi, ["starlette==0.49.0", "numpy==2.5.0"])
    (vuln,) = deps["starlette"]["vulns"]
    assert vuln["id"] == "PYSEC-2025-90"
    assert vuln["aliases"] == ["CVE-2025-62727", "GHSA-2c2j-9gv5-cj73"]
    assert vuln["fix_versions"] == ["0.48.9", "0.49.1"]
    assert vuln["description"] == "The same flaw, PyPA advisory database record."
    assert [v["id"] for v in deps["numpy"]["vulns"]] == ["PYSEC-2099-1"]


def test_a_package_the_registry_does_not_know_is_skipped_and_fails_only_when_watched(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    deps = _report(tmp_path, pypi, ["private-tool==1.0", "pillow==13.0.0"])
    assert "private-tool is not on the registry" in deps["private-tool"]["skip_reason"]
    assert deps["pillow"]["vulns"] == []
    code, out = _audit(tmp_path, pypi, ["private-tool==1.0", "pillow==13.0.0"])
    assert code == 0, out
    assert "0 skipped as not the latest release, 1 skipped for other reasons" in out
    del pypi.projects["pillow"]
    code, out = _audit(tmp_path, pypi, ["pillow==13.0.0"])
    assert code == 2 and "pillow is not on the registry" in out, out


def test_a_server_that_fails_twice_is_retried_and_one_that_keeps_failing_is_unavailable(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    pypi.failures = {"starlette": 2, "pillow": 99}
    deps = _report(tmp_path, pypi, ["starlette==0.49.0", "pillow==13.0.0"])
    assert pypi.hits["starlette"] == 3 and deps["starlette"]["vulns"]
    assert pypi.hits["pillow"] == 3
    assert "HTTP 503" in deps["pillow"]["skip_reason"]
    assert "after 3 attempt(s)" in deps["pillow"]["skip_reason"]


def test_auto_falls_back_to_the_latest_service_when_pip_audit_gets_no_answer(
    tmp_path: Path, pypi: FakePyPI
) -> None:
    with RefusingProxy() as proxy:
        env = _environment(tmp_path, pypi, ["starlette==0.49.0", "pillow==13.0.0"])
        env["HTTPS_PROXY"] = proxy.origin
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "audit.sh")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
    out = done.stdout + done.stderr
    assert proxy.tunnels and all(t == "pypi.org:443" for t in proxy.tunnels), proxy.tunnels
    assert "service auto" in out and "trying the latest service instead" in out
    assert "verdict from service latest" in out
    assert done.returncode == 1 and "[WATCHED] starlette 0.49.0: PYSEC-2025-90" in out
