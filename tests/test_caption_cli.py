"""The caption commands end to end through the real CLI (subprocesses), against the fake
OpenAI-compatible server: import, caption a new picture, find it, evaluate, inspect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.caption_data import CAPTIONS, solid, write_dataset
from tests.fake_openai import FakeOpenAI, follow_examples


def _run(home: Path, *args: str, env: dict[str, str], check: int = 0) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "clipatlas", *args],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CLIPATLAS_HOME": str(home), "CLIPATLAS_MODEL": "fake:64",
             "CLIPATLAS_TEXT_MODEL": "fake:32", "CLIPATLAS_WORKERS": "-1", "NO_COLOR": "1",
             "COLUMNS": "120", **env},
    )  # fmt: skip
    assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc.stdout if check == 0 else proc.stderr


def test_import_caption_search_and_evaluate_from_the_command_line(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data", "token", missing=("green_2.png",))
    new = tmp_path / "new.png"
    solid((40, 50, 215)).save(new)
    home = tmp_path / "home"

    def answer(prompt: str, picture: object) -> str:
        return follow_examples(prompt, picture).rstrip(" .") + " near a lighthouse"  # type: ignore[arg-type]

    with FakeOpenAI("tiny-vlm", answer=answer) as server:
        env = {"CLIPATLAS_CAPTION_BASE_URL": server.base_url,
               "CLIPATLAS_CAPTION_MODEL": "openai-compatible:tiny-vlm"}  # fmt: skip
        imported = json.loads(_run(home, "import-captions", str(root), "-c", "f",
                                   "--test-fraction", "0.3", "--json", env=env))  # fmt: skip
        assert imported["items"] == len(CAPTIONS) - 1
        assert [e["reason"] for e in imported["errors"]] == ["missing_image"]
        run = json.loads(_run(home, "caption", str(new), "-c", "f", "-k", "2", "--json", env=env))
        assert run["captioned"] == 1 and run["files"] == []
        [(item_id, text)] = run["captions"].items()
        assert "boat" in text and "lighthouse" in text  # the blue neighbours' captions
        hits = json.loads(_run(home, "search", "lighthouse", "--captions", "-c", "f", "-k", "3",
                               "--json", env=env))  # fmt: skip
        assert hits[0]["id"] == int(item_id) and "lighthouse" in hits[0]["caption"]
        # per-ranking ranks and scores, and whether a caption holds every query word
        assert hits[0]["exact"] is True and hits[0]["ranks"]["keyword"] == 1
        assert set(hits[0]["ranks"]) == set(hits[0]["scores"]) == {"clip", "caption", "keyword"}
        shown = json.loads(_run(home, "captions", item_id, "-c", "f", "--json", env=env))
        assert shown[0]["provenance"]["neighbours"] and "boat" in shown[0]["provenance"]["prompt"]
        report = json.loads(_run(home, "caption-eval", "-c", "f", "-n", "5",
                                 "--out", str(tmp_path / "eval"), "--json", env=env))  # fmt: skip
        assert (tmp_path / "eval" / "report.html").is_file()
        assert set(report["summary"]) == {"plain", "rag"} and report["n"] >= 1
        human = _run(home, "caption", "-c", "f", env=env)
        assert "already done" in human

    down = {"CLIPATLAS_CAPTION_BASE_URL": "http://127.0.0.1:9/v1",
            "CLIPATLAS_CAPTION_MODEL": "openai-compatible:tiny-vlm",
            "CLIPATLAS_CAPTION_RETRIES": "0"}  # fmt: skip
    failed = json.loads(_run(home, "caption", "-c", "f", "--redo", "--json", env=down))
    assert failed["failed"] == failed["total"] and set(failed["reasons"]) == {"unreachable"}
    error = _run(home, "import-captions", str(tmp_path / "nowhere"), "-c", "f", env={}, check=1)
    [line] = [ln for ln in error.splitlines() if ln.strip()]  # one line (after the bar)
    assert line.startswith("error: cannot import captions from") and "no such file" in line
