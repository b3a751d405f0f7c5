"""``clipatlas build-dataset`` from a folder, as a user runs it (subprocess, fake:64 model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from clipatlas.dataset import safe_name
from tests.dataset_planted import SUBJECT_RGB, PlantedNaver, planted_catalogue, scene

QUERY = 'red 고양이: "best"?'
GREEN = (60, 170, 70)


def _run(
    cwd: Path, *args: str, check: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPATLAS_HOME": str(cwd / "home"), "CLIPATLAS_MODEL": "fake:64",
           "CLIPATLAS_WORKERS": "-1", "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}  # fmt: skip
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


def _naver_env(cwd: Path, naver: PlantedNaver) -> dict[str, str]:
    return {"CLIPATLAS_NAVER_BASE_URL": naver.api_url,
            "CLIPATLAS_NAVER_CLIENT_ID": naver.state.client_id,
            "CLIPATLAS_NAVER_CLIENT_SECRET": naver.state.client_secret}  # fmt: skip


def test_build_dataset_from_naver_pages_by_display_and_reports_drops_and_warnings_in_json(
    tmp_path: Path,
) -> None:
    with PlantedNaver(planted_catalogue(40), "cat") as naver:
        proc = _run(tmp_path, "cat", "--limit", "20", "--display", "15", "--allow-host",
                    "127.0.0.1", "--json", env=_naver_env(tmp_path, naver))  # fmt: skip
        displays = {r.params["display"] for r in naver.requests}
        bad = _run(tmp_path, "cat", "--display", "101", check=2, env=_naver_env(tmp_path, naver))
        assert "display" in bad.stderr and len(naver.requests) == 3
    assert displays == {"15"}, "40 candidates in pages of 15"
    result = json.loads(proc.stdout)
    assert result["candidates"] == 40 and result["decided_by"] in ("size", "only_cluster")
    assert isinstance(result["warnings"], list)
    drops = result["dropped_candidates"]
    assert len(drops) == 40 - result["kept"] and all(d["reason"] for d in drops)
    out = Path(result["out"])
    assert len((out / "dropped.jsonl").read_text("utf-8").splitlines()) == len(drops)


def test_build_dataset_stops_at_a_used_up_daily_quota_after_one_request(tmp_path: Path) -> None:
    with PlantedNaver(planted_catalogue(20), "cat", daily_quota=0) as naver:
        proc = _run(tmp_path, "cat", "--allow-host", "127.0.0.1", check=1,
                    env=_naver_env(tmp_path, naver))  # fmt: skip
        assert len(naver.requests) == 1 and naver.picture_requests == 0
    line = proc.stderr.strip().splitlines()[-1]
    assert "daily quota exceeded" in line and "010" in line and "midnight KST" in line
