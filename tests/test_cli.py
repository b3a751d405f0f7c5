from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import coloured_picture, write_corpus

SNAPSHOTS = Path(__file__).parent / "snapshots"


def run(
    home: Path, *args: str, check: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLIPATLAS_HOME": str(home),
        "CLIPATLAS_MODEL": "fake:64",
        "CLIPATLAS_WORKERS": "1",
        "CLIPATLAS_BATCH_SIZE": "8",
        "COLUMNS": "120",
        "NO_COLOR": "1",
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "clipatlas", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str | None]]:
    base = tmp_path_factory.mktemp("cli")
    expected = write_corpus(base / "corpus")
    for name, rgb in {"red": (220, 20, 20), "blue": (20, 30, 220)}.items():
        coloured_picture(rgb, size=(80, 60)).save(base / "corpus" / f"{name}.png")
        expected[f"{name}.png"] = None
    run(base / "home", "ingest", str(base / "corpus"), "-c", "demo")
    return base, base / "home", expected


def test_ingest_prints_counts_per_reason_and_json_output_is_parseable(
    ingested: tuple[Path, Path, dict[str, str | None]],
) -> None:
    base, home, expected = ingested
    again = json.loads(run(home, "ingest", str(base / "corpus"), "-c", "demo", "--json").stdout)
    assert again["skipped"] == len(expected) and again["stored"] == 0
    info = json.loads(run(home, "info", "-c", "demo", "--json").stdout)
    assert info["stored"] == sum(v is None for v in expected.values())
    assert info["rejected"] == sum(v is not None for v in expected.values())
    assert info["embedder"] == "fake:64" and info["dim"] == 64


def test_info_output_matches_its_snapshot(
    ingested: tuple[Path, Path, dict[str, str | None]],
) -> None:
    _, home, _ = ingested
    out = run(home, "info", "-c", "demo").stdout.replace(str(home), "$HOME")
    snapshot = SNAPSHOTS / "info.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(out)
    assert out == snapshot.read_text()


def test_search_by_text_and_by_image_from_the_command_line(
    ingested: tuple[Path, Path, dict[str, str | None]],
) -> None:
    base, home, _ = ingested
    hits = json.loads(
        run(home, "search", "something red", "-c", "demo", "-k", "3", "--json").stdout
    )
    assert hits[0]["source_key"] == "red.png" and len(hits) == 3
    hits = json.loads(
        run(
            home,
            "search",
            "--image",
            str(base / "corpus" / "blue.png"),
            "-c",
            "demo",
            "-k",
            "1",
            "--json",
        ).stdout
    )
    assert hits[0]["source_key"] == "blue.png" and hits[0]["score"] > 0.99
    table = run(home, "search", "blue", "-c", "demo", "-k", "2").stdout
    assert "blue.png" in table and "score" in table


def test_errors_are_one_line_with_a_nonzero_exit_code(
    ingested: tuple[Path, Path, dict[str, str | None]], tmp_path: Path
) -> None:
    base, home, _ = ingested
    bad = run(
        home, "search", "--image", str(base / "corpus" / "missing.jpg"), "-c", "demo", check=1
    )
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    usage = run(home, "search", "-c", "demo", check=2)
    assert "exactly one of" in usage.stderr
    mismatch = run(home, "ingest", str(tmp_path), "-c", "demo", "--model", "fake:32", check=1)
    assert "refusing vectors of 'fake:32'" in mismatch.stderr
    assert run(home, "collections", "--json").stdout.strip().startswith("[")


def test_reading_a_collection_that_does_not_exist_fails_without_creating_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    for args in (("search", "x", "-c", "nope"), ("info", "-c", "nope")):
        out = run(home, *args, check=1)
        assert out.stderr.strip() == "error: no collection named 'nope'"
    assert not (home / "collections" / "nope").exists()


def test_a_bad_setting_is_one_clear_line_and_exit_code_1(tmp_path: Path) -> None:
    bad = run(tmp_path / "home", "--precision", "fp64", "collections", check=1)
    assert "invalid settings" in bad.stderr and "precision" in bad.stderr
    assert "Traceback" not in bad.stderr
    env_bad = run(tmp_path / "home", "collections", check=1, env={"CLIPATLAS_BATCH_SIZE": "x"})
    assert "batch_size" in env_bad.stderr and "Traceback" not in env_bad.stderr
