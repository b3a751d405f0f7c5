"""``clipatlas import-records``, ``calibrate-match`` and ``match`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import coloured_picture

COLOURS = {
    "red": (210, 20, 20),
    "blue": (20, 40, 210),
    "green": (20, 170, 40),
    "yellow": (230, 210, 20),
}


ENV = {
    "CLIPATLAS_MODEL": "fake:64",
    "CLIPATLAS_MATCH_TEXT_MODEL": "fake:32",
    "CLIPATLAS_WORKERS": "-1",
    "COLUMNS": "160",
    "NO_COLOR": "1",
}


def run(home: Path, *args: str) -> str:
    """The command in-process (fast); its stdout. Exit code 0 required."""
    from typer.testing import CliRunner

    from clipatlas.cli.app import app

    result = CliRunner().invoke(
        app, list(args), env={**ENV, "CLIPATLAS_HOME": str(home)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def run_process(home: Path, *args: str, check: int) -> subprocess.CompletedProcess[str]:
    """The real ``python -m clipatlas`` (exit codes and one-line errors come from main())."""
    env = {**os.environ, **ENV, "CLIPATLAS_HOME": str(home)}
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
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("match-cli")
    rows = []
    for i, (colour, rgb) in enumerate(COLOURS.items()):
        coloured_picture(rgb).save(base / f"{colour}.png")
        rows.append(
            {
                "id": f"lost-{i}",
                "kind": "lost",
                "category": "umbrella",
                "description": f"lost {colour} umbrella",
                "photo": f"{colour}.png",
            }
        )
        rows.append(
            {
                "id": f"found-{i}",
                "kind": "found",
                "category": "umbrella",
                "description": f"found a {colour} umbrella at the station",
            }
        )
        rows.append(
            {
                "id": f"found-x{i}",
                "kind": "found",
                "category": "notebook",
                "description": f"found a {colour} notebook at the station",
            }
        )
    rows.append({"id": "bad"})
    (base / "records.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pairs = ["left,right,same"] + [
        f"lost-{i},{kind}-{j},{int(i == j and kind == 'found')}"
        for i in range(4)
        for j in range(4)
        for kind in ("found", "found-x")
    ]
    pairs = [p.replace("found-x-", "found-x") for p in pairs]
    (base / "pairs.csv").write_text("\n".join(pairs) + "\n")
    home = base / "home"
    report = json.loads(
        run(home, "import-records", str(base / "records.jsonl"), "-c", "lf", "--json")
    )
    return home, base, report


def test_import_records_reports_counts_and_each_bad_record(
    collection: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, _, report = collection
    assert report["imported"] == 12 and report["with_photo"] == 4 and report["failed"] == 1
    assert report["errors"] == [
        {
            "record": "bad",
            "reason": "missing_field",
            "detail": "needs 'description' or 'photo'",
            "line": 13,
        }
    ]


def test_calibrate_then_match_a_stored_record_and_a_new_one(
    collection: tuple[Path, Path, dict[str, Any]],
) -> None:
    home, base, _ = collection
    cal = json.loads(
        run(
            home,
            "calibrate-match",
            str(base / "pairs.csv"),
            "-c",
            "lf",
            "--category-rule",
            "gate",
            "--json",
        )
    )
    assert cal["source"] == "fitted" and cal["category_rule"] == "gate"
    assert cal["report"]["pairs"] == 32 and cal["report"]["f1"] == 1.0
    out = json.loads(run(home, "match", "lost-1", "-c", "lf", "--against", "found", "--json"))
    # one shape for a stored id, a new record and --batch (docs/matching.md)
    assert set(out) == {"calibration", "threshold_override", "results"}
    assert out["calibration"]["id"] == cal["id"]
    assert out["calibration"]["method"] == cal["method"]
    [entry] = out["results"]
    assert entry["record"] == "lost-1" and [m["key"] for m in entry["matches"]] == ["found-1"]
    explanation = entry["matches"][0]["explanation"]
    assert explanation["pattern"] in ("no_photo", "one_photo", "both_photos")
    assert explanation["method"] == cal["method"]
    new = json.loads(
        run(
            home,
            "match",
            "-c",
            "lf",
            "--text",
            "found a green umbrella",
            "--category",
            "umbrella",
            "--against",
            "lost",
            "--json",
        )
    )
    assert set(new) == set(out) and new["results"][0]["record"] == "<query>"
    assert new["results"][0]["matches"][0]["key"] == "lost-2"
    photo_only = json.loads(
        run(
            home,
            "match",
            "-c",
            "lf",
            "--photo",
            str(base / "blue.png"),
            "--against",
            "lost",
            "-k",
            "1",
            "--threshold",
            "0",
            "--json",
        )
    )
    assert photo_only["threshold_override"] == 0.0
    assert photo_only["results"][0]["matches"][0]["key"] == "lost-1"
    batch = json.loads(
        run(home, "match", "--batch", "-c", "lf", "--kind", "lost", "--against", "found",
            "-k", "1", "--json")
    )  # fmt: skip
    assert set(batch) == set(out)
    assert {e["record"]: [m["key"] for m in e["matches"]] for e in batch["results"]} == {
        f"lost-{i}": [f"found-{i}"] for i in range(4)
    }
    latest = json.loads(run(home, "match", "--batch", "-c", "lf", "--json"))
    got = {e["record"] for e in latest["results"]}
    assert got == {f"{p}{i}" for p in ("lost-", "found-", "found-x") for i in range(4)}
    assert not any(e["matches"] for e in latest["results"])  # nothing outside the one import
    # a rerun of the import adds nothing and fails nothing
    again = json.loads(
        run(home, "import-records", str(base / "records.jsonl"), "-c", "lf", "--json")
    )
    assert again["imported"] == 0 and again["already_present"] == 12
    assert again["reasons"] == {"missing_field": 1}  # the bad row of the file, as before
    text = run(home, "import-records", str(base / "records.jsonl"), "-c", "lf")
    assert "nothing new: 12 records already present, 0 added" in text


def test_bad_usage_and_unknown_records_fail_with_one_line(
    collection: tuple[Path, Path, dict[str, Any]],
) -> None:
    home, base, _ = collection
    assert "no record 'nobody'" in run_process(home, "match", "nobody", "-c", "lf", check=1).stderr
    run_process(home, "match", "-c", "lf", check=2)
    missing = run_process(home, "calibrate-match", str(base / "nope.csv"), "-c", "lf", check=1)
    assert "nope.csv" in missing.stderr


def test_match_config_shows_and_changes_the_parameters_without_labels(tmp_path: Path) -> None:
    home = tmp_path / "home"
    records = tmp_path / "r.jsonl"
    records.write_text(
        json.dumps({"id": "a", "description": "a purse", "category": "purse"})
        + "\n"
        + json.dumps({"id": "b", "description": "a purse", "category": "wallet"})
        + "\n"
    )
    run(home, "import-records", str(records), "-c", "c")
    shown = json.loads(run(home, "match-config", "-c", "c", "--json"))
    assert shown["source"] == "default" and shown["id"] is None
    (tmp_path / "syn.json").write_text('{"Purse": "wallet"}')
    before = json.loads(run(home, "match", "a", "-c", "c", "--threshold", "0", "--json"))
    assert before["results"][0]["matches"][0]["explanation"]["category"]["same"] is False
    changed = json.loads(
        run(home, "match-config", "-c", "c", "--category-rule", "gate", "--synonyms",
            str(tmp_path / "syn.json"), "--threshold", "0.2", "--json")
    )  # fmt: skip
    assert changed["category_synonyms"] == {"purse": "wallet"} and changed["threshold"] == 0.2
    after = json.loads(run(home, "match", "a", "-c", "c", "--json"))
    [m] = after["results"][0]["matches"]
    assert m["explanation"]["category"]["same"] is True
    assert m["explanation"]["threshold"] == 0.2
    bad = run_process(home, "match-config", "-c", "c", "--category-rule", "maybe", check=1)
    assert "category_rule" in bad.stderr
