"""``clipatlas jobs`` and ``clipatlas worker`` from the command line, and ``clipatlas serve``
as a real server process with its worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from clipatlas.cli.app import app
from clipatlas.errors import ConfigError
from clipatlas.jobs import JobBoard, default_kinds
from clipatlas.settings import Settings
from tests.web_helpers import write_colour_folder

# clipatlas/cli/embed.py (another feature) passes is_flag/flag_value, which typer deprecates;
# building the command tree in-process would turn that warning into an error here.
pytestmark = pytest.mark.filterwarnings("ignore:The 'is_flag' and 'flag_value':DeprecationWarning")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLIPATLAS_HOME": str(home),
        "CLIPATLAS_MODEL": "fake:64",
        "CLIPATLAS_WORKERS": "-1",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }


def _cli(home: Path, *args: str, check: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "clipatlas", *args],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=120,
    )
    assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def _invoke(home: Path, *args: str) -> str:
    """In-process (fast); the exit-code and error-line paths are checked by subprocess below."""
    result = CliRunner().invoke(app, ["--home", str(home), *args], env=_env(home))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_jobs_commands_list_run_cancel_resume_and_clear(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, model="fake:64", workers=-1)
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=1)
    board = JobBoard(settings, default_kinds())
    first = board.submit("cli", "ingest", {"source": "folder", "options": {"root": str(folder)}})
    second = board.submit("cli", "cluster", {"k": 2})
    assert _invoke(home, "jobs", "cancel", f"cli/{second.id}").startswith("cli/2  cluster")
    listed = json.loads(_invoke(home, "jobs", "list", "--json"))
    assert [(j["key"], j["status"]) for j in listed] == [
        ("cli/2", "cancelled"),
        ("cli/1", "queued"),
    ]
    ran = json.loads(_invoke(home, "worker", "--once", "--json"))
    assert ran == [{"job": "cli/1", "status": "done"}]
    shown = json.loads(_invoke(home, "jobs", "show", f"cli/{first.id}", "--json"))
    assert shown["result"]["stored"] == 5 and shown["logs"][-1]["message"] == "done"
    assert "queued" in _invoke(home, "jobs", "resume", "cli/2")
    assert json.loads(_invoke(home, "worker", "--once", "--json"))[0]["status"] == "done"
    err = _cli(home, "jobs", "resume", "cli/2", check=1).stderr
    assert err.strip() == "error: cannot resume job 2: it is done"
    assert json.loads(_invoke(home, "jobs", "clear", "--json")) == {"removed": 2}
    assert _invoke(home, "jobs", "list").strip() == "no jobs"
    board.close()


def test_a_bad_job_key_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["jobs", "cancel", "nonsense"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith("job key 'nonsense'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    err = _cli(tmp_path, "serve", "--host", "0.0.0.0", check=1).stderr
    assert "give a token" in err


def test_serve_runs_the_app_and_its_worker_until_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "pics"
    write_colour_folder(folder, per_colour=1)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipatlas", "serve", "--port", str(port)],
        env=_env(home),
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert page.status_code == 200 and "clipatlas" in page.text
        token = page.text.split('name="clipatlas-write-token" content="')[1].split('"')[0]
        job = httpx.post(
            base + "/api/jobs",
            headers={"X-Clipatlas-Token": token},
            json={
                "collection": "served",
                "kind": "ingest",
                "params": {"source": "folder", "options": {"root": str(folder)}},
            },
        ).json()
        deadline = time.monotonic() + 60
        while (state := httpx.get(f"{base}/api/jobs/{job['key']}").json())["status"] != "done":
            assert state["status"] in ("queued", "running") and time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(base + "/api/collections/served").json()["stored"] == 5
    finally:
        proc.terminate()
        proc.wait(30)
