"""``clipatlas build-dataset`` from a folder, as a user runs it (subprocess, fake:64 model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from clipatlas.dataset import safe_name
from tests.dataset_planted import SUBJECT_RGB, scene

QUERY = 'red 고양이: "best"?'
GREEN = (60, 170, 70)


def _run(cwd: Path, *args: str, check: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPATLAS_HOME": str(cwd / "home"), "CLIPATLAS_MODEL": "fake:64",
           "CLIPATLAS_WORKERS": "-1", "COLUMNS": "120", "NO_COLOR": "1"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "clipatlas", "build-dataset", *args],
        capture_output=True, text=True, env=env, timeout=300, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def test_build_dataset_from_a_folder_writes_a_portably_named_dataset_and_refuses_to_overwrite(
    tmp_path: Path,
) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(12):
        scene(i, SUBJECT_RGB).save(pictures / f"red-{i:02d}.jpg", quality=90)
    for i in range(6):
        scene(100 + i, GREEN).save(pictures / f"green-{i:02d}.jpg", quality=90)
    scene(200, SUBJECT_RGB, (200, 150)).save(pictures / "red-tiny.jpg", quality=90)
    (pictures / "notes.jpg").write_bytes(b"<html>not a picture</html>")
    proc = _run(tmp_path, QUERY, "--source", "folder", "--input", str(pictures),
                "--limit", "20", "--json")  # fmt: skip
    result = json.loads(proc.stdout)
    out = tmp_path / safe_name(QUERY)
    assert Path(result["out"]) == out.resolve() and out.is_dir()
    assert unicodedata.normalize("NFC", out.name) == out.name and not out.name.endswith((".", " "))
    assert not set('<>:"/\\|?*') & set(out.name)
    assert result["kept"] == 12, result
    assert result["dropped"] == {
        "decode:not_an_image": 1, "meaning:other_cluster": 6, "quality:too_small": 1,
    }  # fmt: skip
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text("utf-8").splitlines()]
    assert all(Path(row["url"]).name.startswith("red-") for row in manifest)
    assert {row["query"] for row in manifest} == {QUERY}
    again = _run(tmp_path, QUERY, "--source", "folder", "--input", str(pictures), check=1)
    assert "exists and is not empty" in again.stderr and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    missing = _run(tmp_path, "x", "--source", "folder", check=1)
    assert "needs --input" in missing.stderr
