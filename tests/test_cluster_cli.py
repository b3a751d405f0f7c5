"""``clipatlas cluster``, ``runs`` and ``eval-clusters`` end to end (subprocess, --json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipatlas import Atlas
from clipatlas.analysis.clustering import read_labels
from clipatlas.analysis.clustering.synthetic import make_groups
from clipatlas.errors import GroundTruthError
from clipatlas.settings import Settings
from tests.test_cli import run
from tests.test_cluster_quality import load_synthetic


def test_cluster_runs_and_eval_clusters_work_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = make_groups(5, dim=32, sizes=(20, 30), spread=0.05, noise_share=0.05, seed=1)
    settings = Settings(home=home, model="fake:64", workers=-1, database_url=None)
    with Atlas.open("cli", settings=settings) as atlas:
        load_synthetic(atlas, data, tmp_path / "vectors")

    made = json.loads(
        run(home, "cluster", "-c", "cli", "--method", "kmeans", "--k-max", "10", "--json").stdout
    )
    assert made["method"] == "kmeans" and made["chosen_k"] == 5 and made["clusters"] == 5
    assert made["selection"]["ks"] == list(range(2, 11)) and made["explanation"]
    assert sum(c["size"] for c in made["cluster_stats"]) == len(data.keys)
    text = run(home, "cluster", "-c", "cli", "--method", "dbscan", "--eps", "0.3").stdout
    assert "dbscan, 5 clusters" in text and "cohesion" in text and "noise" in text
    listed = json.loads(run(home, "runs", "-c", "cli", "--json").stdout)
    assert [r["id"] for r in listed] == [made["id"] + 1, made["id"]]

    (tmp_path / "truth.csv").write_text(
        "key,label\n" + "".join(f"{k},{v}\n" for k, v in zip(data.keys, data.labels, strict=True))
    )
    scores = json.loads(
        run(home, "eval-clusters", str(made["id"]), str(tmp_path / "truth.csv"), "-c", "cli",
            "--json").stdout
    )  # fmt: skip
    assert scores["n"] == len(data.keys) and scores["ari"] >= 0.9
    assert set(scores) >= {"ari", "nmi", "purity", "n"}

    drawn = json.loads(run(home, "map", str(made["id"]), "-c", "cli", "--json").stdout)
    assert drawn["points"] == len(data.keys)
    coords = np.load(drawn["coords"])
    assert coords["coords"].shape == (len(data.keys), 2) and np.isfinite(coords["coords"]).all()
    html = Path(drawn["html"]).read_text()
    assert '<script src="http' not in html and "cluster 0" in html
    with Image.open(drawn["png"]) as png:
        assert png.format == "PNG" and png.width > 300


def test_cluster_cli_errors_are_one_clear_line_with_exit_code_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Atlas.open(
        "void", settings=Settings(home=home, model="fake:64", workers=-1, database_url=None)
    ).close()
    empty = run(home, "cluster", "-c", "void", check=1)
    assert "no items with vectors" in empty.stderr and "Traceback" not in empty.stderr
    (tmp_path / "t.csv").write_text("a,b\n")
    unknown = run(home, "eval-clusters", "7", str(tmp_path / "t.csv"), "-c", "void", check=1)
    assert "no clustering run 7" in unknown.stderr


def test_labels_files_are_read_from_csv_or_jsonl_and_unusable_ones_are_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.csv").write_text("key,label\nx.jpg,cat\n12,dog\n")
    (tmp_path / "a.jsonl").write_text('{"key": "x.jpg", "label": "cat"}\n{"id": 12, "label": 3}\n')
    expected = {"x.jpg": "cat", "12": "dog"}
    assert read_labels(tmp_path / "a.csv") == expected
    assert read_labels(tmp_path / "a.jsonl") == {**expected, "12": "3"}
    (tmp_path / "bad.jsonl").write_text('{"key": "x"}\n')
    (tmp_path / "one.csv").write_text("lonely\n")
    for bad in ("none.csv", "bad.jsonl", "one.csv", "a.txt"):
        (tmp_path / "a.txt").write_text("x,y")
        with pytest.raises(GroundTruthError):
            read_labels(tmp_path / bad)
