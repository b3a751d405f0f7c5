"""Dataset builder end to end: a planted mixture behind a fake Naver search, on 127.0.0.1."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipatlas import Atlas
from clipatlas.dataset import ExportConfig, QualityConfig
from clipatlas.errors import (
    BuildCancelledError,
    DatasetExistsError,
    DatasetOutputError,
    NaverQuotaError,
    NoCandidatesError,
)
from clipatlas.images.hashing import sha256_hex
from clipatlas.progress import ProgressEvent
from tests.dataset_planted import (
    Planted,
    PlantedEmbedder,
    PlantedNaver,
    planted_catalogue,
    planted_registry,
    planted_settings,
)

QUERY = "고양이"


@pytest.fixture(scope="module")
def catalogue() -> list[Planted]:
    return planted_catalogue(100)


@pytest.fixture
def naver(catalogue: list[Planted]) -> Iterator[PlantedNaver]:
    with PlantedNaver(catalogue, QUERY) as fake:
        fake.state.totals["nothing at all"] = 0
        yield fake


def _open(tmp_path: Path, naver: PlantedNaver, name: str = "cats") -> Atlas:
    settings = planted_settings(tmp_path / "home", naver)
    return Atlas.open(name, settings=settings, registry=planted_registry())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_a_planted_mixture_exports_the_subject_with_high_precision_and_recall_and_says_why(
    tmp_path: Path, naver: PlantedNaver, catalogue: list[Planted]
) -> None:
    out = tmp_path / "datasets" / QUERY
    with _open(tmp_path, naver) as atlas:
        result = atlas.build_dataset(QUERY, out, limit=60, export=ExportConfig(hf_metadata=True))
    by_hash = {sha256_hex(p.body): p for p in catalogue if p.status == 200}
    subject_hashes = {h for h, p in by_hash.items() if p.kind == "subject"}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    kept_hashes = [row["sha256"] for row in manifest]
    assert len(kept_hashes) == len(set(kept_hashes)) == result.kept
    true_kept = sum(h in subject_hashes for h in kept_hashes)
    precision, recall = true_kept / len(kept_hashes), true_kept / len(subject_hashes)
    assert precision >= 0.95 and recall >= 0.85, (precision, recall, result.dropped)
    # every junk result is dropped, with the reason its kind calls for
    for row in result.outcomes:
        planted = catalogue[row["meta"]["rank"] - 1]
        if planted.expected_reason is None:
            continue
        if planted.kind == "duplicate" and row["outcome"] == "kept":
            # the copy ranked above its original: then the original is the dropped duplicate
            twin = [r for r in result.outcomes if r["item_id"] and r["reason"] == "duplicate"]
            assert twin, "one of the two identical files must be dropped as a duplicate"
            continue
        assert row["outcome"] == "dropped", (planted.kind, row)
        assert row["reason"] == planted.expected_reason, (planted.kind, row)
    lookalikes = [
        r for r in result.outcomes if catalogue[r["meta"]["rank"] - 1].kind == "lookalike"
    ]
    assert all(r["outcome"] == "dropped" and r["stage"] == "meaning" for r in lookalikes)
    # the files: numbered JPEGs, manifests, report; nothing temporary left behind
    names = sorted(p.name for p in out.iterdir())
    images = [n for n in names if n.startswith("img_")]
    assert images == [f"img_{i:04d}.jpg" for i in range(1, result.kept + 1)]
    assert all((out / n).read_bytes()[:3] == b"\xff\xd8\xff" for n in images)
    assert {"manifest.jsonl", "manifest.parquet", "metadata.jsonl", "report.html",
            "dropped.jsonl"} <= set(names)  # fmt: skip
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text("utf-8").splitlines()]
    assert len(dropped) == result.candidates - result.kept == len(result.dropped_candidates)
    assert dropped == json.loads(json.dumps(result.as_dict()["dropped_candidates"]))
    assert {d["reason"] for d in dropped} >= {"blurry", "other_cluster", "http_error"}
    assert all(d["stage"] and d["url"] and d["rank"] for d in dropped)
    assert _leftovers(out.parent) == []
    first = manifest[0]
    for key in ("query", "file", "source", "url", "sha256", "width", "height", "sharpness",
                "cluster", "query_similarity"):  # fmt: skip
        assert key in first, key
    assert first["query"] == QUERY and first["source"] == "naver"
    assert first["cluster"] == result.chosen_cluster
    table = pq.read_table(out / "manifest.parquet")
    assert table.num_rows == result.kept and "query_similarity" in table.column_names
    hf = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in hf] == images
    # JPEG originals are exported byte for byte; PNGs are re-encoded
    for row in manifest:
        data = (out / row["file"]).read_bytes()
        assert (sha256_hex(data) == row["sha256"]) == (row["format"] == "JPEG")
    # the report shows the reasons, the chosen cluster and inlined thumbnails, escaped
    report = (out / "report.html").read_text(encoding="utf-8")
    for reason in ("blurry", "too_small", "duplicate", "near_duplicate", "not_an_image",
                   "truncated", "http_error", "other_cluster"):  # fmt: skip
        assert reason in report, reason
    assert "chosen cluster" in report and "data:image/jpeg;base64," in report
    assert "more</p>" not in report.split("<h2>Clusters")[0], "the whole kept set is shown"
    kept_part = report.split(f"<h2>Kept ({result.kept})</h2>")[1].split("<h2>")[0]
    assert kept_part.count("<figure") == result.kept
    assert "photo 1 &amp; friends &quot;1&quot;" in report, "upstream titles are escaped"
    assert len(report) < 400_000, "thumbnails are inlined small"
    assert "<script" not in report and 'src="http' not in report


def test_an_interrupted_build_resumes_without_refetching_or_re_embedding(
    tmp_path: Path, naver: PlantedNaver
) -> None:
    out = tmp_path / "out"
    PlantedEmbedder.embedded = 0
    state = {"stop": False}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "ingest" and event.done >= 30:
            state["stop"] = True

    with _open(tmp_path, naver) as atlas, pytest.raises(BuildCancelledError):
        atlas.build_dataset(QUERY, out, limit=50, progress=progress,
                            should_stop=lambda: state["stop"])  # fmt: skip
    assert not out.exists() and _leftovers(tmp_path) == []
    api_calls = len(naver.requests)
    with _open(tmp_path, naver) as atlas:
        done_before = sum(atlas.store.counts(atlas.collection)[k] for k in ("ok", "rejected"))
        fetched_before, embedded_before = naver.picture_requests, PlantedEmbedder.embedded
        assert 30 <= done_before < 100
        result = atlas.build_dataset(QUERY, out, limit=50)
        stored = atlas.store.counts(atlas.collection)["ok"]
    assert result.resumed and result.kept == 50
    assert len(naver.requests) == api_calls, "the stored listing is replayed, not re-requested"
    assert fetched_before == 100, "every picture was downloaded (and committed) before ingest"
    assert naver.picture_requests == fetched_before, "the rerun fetched nothing again"
    assert max(naver.state.image_hits.values()) == 1
    assert PlantedEmbedder.embedded == stored, "every stored picture was embedded exactly once"
    assert embedded_before <= done_before
    # a finished build is not overwritten by accident; with overwrite it re-filters from the
    # stored pictures and vectors (new thresholds, no network, no model)
    with _open(tmp_path, naver) as atlas:
        with pytest.raises(DatasetExistsError):
            atlas.build_dataset(QUERY, out, limit=50)
        fetched, embedded = naver.picture_requests, PlantedEmbedder.embedded
        again = atlas.build_dataset(
            QUERY, out, limit=50, quality=QualityConfig(min_side=340),
            export=ExportConfig(overwrite=True),
        )  # fmt: skip
    assert (naver.picture_requests, PlantedEmbedder.embedded) == (fetched, embedded)
    assert again.dropped["quality:too_small"] > result.dropped["quality:too_small"]
    assert len(list(out.glob("img_*.jpg"))) == again.kept
    assert _leftovers(tmp_path) == []


def test_empty_search_results_end_with_a_clear_error_and_write_nothing(
    tmp_path: Path, naver: PlantedNaver
) -> None:
    out = tmp_path / "out"
    with _open(tmp_path, naver) as atlas, pytest.raises(NoCandidatesError, match="no pictures"):
        atlas.build_dataset("nothing at all", out, limit=10)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_daily_quota_met_mid_listing_builds_from_what_was_listed_and_says_so(
    tmp_path: Path, catalogue: list[Planted]
) -> None:
    out = tmp_path / "out"
    with PlantedNaver(catalogue, QUERY, daily_quota=2) as naver, _open(tmp_path, naver) as atlas:
        result = atlas.build_dataset(QUERY, out, limit=50, source_options={"display": 30})
        assert len(naver.requests) == 3, "two pages, then one 429 010 that is not retried"
        assert naver.picture_requests == 60
    assert result.candidates == 60 and result.kept > 0
    assert [w["code"] for w in result.warnings] == ["partial_listing"]
    assert "midnight KST" in result.warnings[0]["message"]
    assert json.loads((out / "build.json").read_text())["warnings"] == result.warnings


def test_a_daily_quota_met_at_once_fails_after_one_request_and_writes_nothing(
    tmp_path: Path, catalogue: list[Planted]
) -> None:
    out = tmp_path / "out"
    with PlantedNaver(catalogue, QUERY, daily_quota=0) as naver, _open(tmp_path, naver) as atlas:
        with pytest.raises(NaverQuotaError, match="Query limit exceeded") as info:
            atlas.build_dataset(QUERY, out, limit=50)
        assert info.value.scope == "daily" and len(naver.requests) == 1
        assert naver.picture_requests == 0
        row = atlas.store.engine.connect().exec_driver_sql(
            "SELECT status, error FROM dataset_builds"
        ).one()  # fmt: skip
    assert row[0] == "failed" and "quota" in row[1]
    assert not out.exists() and _leftovers(tmp_path) == []


def test_an_output_folder_that_cannot_be_written_fails_before_any_work(
    tmp_path: Path, naver: PlantedNaver
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with _open(tmp_path, naver) as atlas:
        with pytest.raises(DatasetOutputError, match="cannot write the dataset"):
            atlas.build_dataset(QUERY, blocker / "out", limit=10)
        with pytest.raises(DatasetOutputError, match="a file of that name exists"):
            atlas.build_dataset(QUERY, blocker, limit=10)
    assert naver.requests == [] and naver.picture_requests == 0
    assert blocker.read_text() == "not a folder"


def test_a_cancel_during_export_leaves_no_output_and_no_temp_folder(
    tmp_path: Path, naver: PlantedNaver
) -> None:
    out = tmp_path / "out"
    exported = Counter[str]()

    def progress(event: ProgressEvent) -> None:
        exported[event.stage] = event.done

    with _open(tmp_path, naver) as atlas, pytest.raises(BuildCancelledError, match="export"):
        atlas.build_dataset(QUERY, out, limit=20, progress=progress,
                            should_stop=lambda: exported["export"] >= 5)  # fmt: skip
    assert exported["export"] == 5
    assert not out.exists() and _leftovers(tmp_path) == []
