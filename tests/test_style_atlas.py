"""The style atlas on a run: cluster names, renaming, classify (file, bytes, URL), prompt
recommendations and later arrivals, on real pictures embedded by the colour-aware ``fake:``
embedder (whose text tower pulls colour words towards pictures of that colour)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipatlas import Atlas
from clipatlas.analysis.clustering.naming import distinctive_tags, style_terms
from clipatlas.errors import (
    ClusteringError,
    ClusterParameterError,
    ConfigError,
    ImageError,
    RunNotFoundError,
)
from clipatlas.settings import Settings
from clipatlas.store.runs import ClusterRun
from tests.test_cli import run as run_cli

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
}
MAGENTA = (230, 20, 230)


def picture(rgb: tuple[int, int, int], seed: int) -> Image.Image:
    """A picture of one colour with a few darker blotches (distinct per seed)."""
    rng = np.random.default_rng(seed)
    jitter = rng.integers(-12, 13, 3)
    base = np.clip(np.asarray(rgb) + jitter, 0, 255)
    pixels = np.tile(base, (48, 64, 1)).astype(np.int16)
    pixels += rng.integers(-8, 9, pixels.shape, dtype=np.int16)
    for _ in range(3):
        y, x = rng.integers(0, 40), rng.integers(0, 56)
        pixels[y : y + 8, x : x + 8] = (pixels[y : y + 8, x : x + 8] * 0.7).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_group(folder: Path, colour: str, rgb: tuple[int, int, int], n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        picture(rgb, seed * 1000 + i).save(folder / f"{colour}-{seed}-{i:02d}.png")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def colours(settings: Settings, tmp_path: Path) -> tuple[Atlas, ClusterRun]:
    folder = tmp_path / "pictures"
    for seed, (colour, rgb) in enumerate(COLOURS.items()):
        write_group(folder, colour, rgb, 30, seed)
    atlas = Atlas.open("colours", settings=settings)
    atlas.ingest(folder)
    return atlas, atlas.cluster("kmeans", k=4)


def label_of_colour(atlas: Atlas, run: ClusterRun) -> dict[str, int]:
    """Colour -> the label holding (all of) its pictures."""
    items = {
        i.id: i.source_key for batch in atlas.store.iter_items(atlas.collection) for i in batch
    }
    out: dict[str, set[int]] = {}
    for item_id, label in run.label_of().items():
        out.setdefault(items[item_id].split("-")[0], set()).add(label)
    assert all(len(labels) == 1 for labels in out.values()), out
    return {colour: labels.pop() for colour, labels in out.items()}


def test_clusters_get_distinct_names_and_colour_words_name_their_colour(
    colours: tuple[Atlas, ClusterRun],
) -> None:
    atlas, run = colours
    names = [c.name for c in run.clusters]
    assert all(names) and len(set(names)) == 4  # named at creation, from the default vocabulary
    assert all(c.meta["named_by"] == "auto" and len(c.meta["terms"]) == 5 for c in run.clusters)

    named = atlas.name_clusters(run.id, vocabulary=[*COLOURS, "white", "black", "purple"])
    by_label = {n["label"]: n["name"] for n in named}
    assert {colour: by_label[label] for colour, label in label_of_colour(atlas, run).items()} == {
        c: c for c in COLOURS
    }
    stored = {c.label: c.name for c in atlas.run(run.id).clusters}
    assert stored == by_label


def test_a_renamed_cluster_keeps_its_name_until_forced(colours: tuple[Atlas, ClusterRun]) -> None:
    atlas, run = colours
    label = run.clusters[0].label
    drawn = atlas.map(run.id)
    before = Path(drawn.coords).read_bytes()
    done = atlas.rename_cluster(run.id, label, "  Crimson   studio <b>")
    assert atlas.run(run.id).clusters[0].name == "Crimson studio <b>"
    # the map is drawn again with the new name (escaped), on the same stored layout
    page = Path(done["map"]).read_text(encoding="utf-8")
    assert "Crimson studio &lt;b&gt;" in page and "Crimson studio <b>" not in page
    assert Path(drawn.coords).read_bytes() == before
    kept = {n["label"]: n for n in atlas.name_clusters(run.id, vocabulary=list(COLOURS))}
    assert kept[label]["kept"] and kept[label]["name"] == "Crimson studio <b>"
    assert atlas.run(run.id).clusters[0].meta["named_by"] == "user"
    atlas.name_clusters(run.id, vocabulary=list(COLOURS), force=True)
    assert atlas.run(run.id).clusters[0].name in COLOURS

    with pytest.raises(ClusterParameterError, match="has clusters"):
        atlas.rename_cluster(run.id, 42, "nothing")
    with pytest.raises(ConfigError, match="empty"):
        atlas.rename_cluster(run.id, label, "   ")
    with pytest.raises(RunNotFoundError):
        atlas.rename_cluster(run.id + 5, label, "x")


def test_a_new_picture_lands_in_its_colour_and_a_foreign_one_is_unknown(
    colours: tuple[Atlas, ClusterRun], tmp_path: Path
) -> None:
    atlas, run = colours
    red = label_of_colour(atlas, run)["red"]
    path = tmp_path / "new-red.png"
    picture(COLOURS["red"], 99_001).save(path)
    answer = atlas.classify(image=path)  # the newest run by default
    assert answer.run_id == run.id and answer.label == red and not answer.unknown
    assert answer.scores[0].within and answer.scores[0].cosine >= answer.scores[0].threshold
    assert answer.margin is not None and answer.margin > 0.05
    assert [s.cosine for s in answer.scores] == sorted(
        (s.cosine for s in answer.scores), reverse=True
    )
    assert "falls inside" in answer.explanation and "Runner-up" in answer.explanation

    foreign = atlas.classify(run.id, image=png(picture(MAGENTA, 5)))
    assert foreign.unknown and foreign.label is None
    assert not foreign.scores[0].within and "unknown" in foreign.explanation
    assert foreign.as_dict()["unknown"] is True and foreign.as_dict()["name"] is None


def test_classify_refuses_bad_requests_clearly(
    colours: tuple[Atlas, ClusterRun], tmp_path: Path
) -> None:
    atlas, run = colours
    with pytest.raises(ConfigError, match="exactly one"):
        atlas.classify(run.id)
    with pytest.raises(ConfigError, match="exactly one"):
        atlas.classify(run.id, image=b"x", url="http://127.0.0.1/x.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ImageError, match=r"broken\.png"):
        atlas.classify(run.id, image=tmp_path / "broken.png")
    with pytest.raises(RunNotFoundError, match="999"):
        atlas.classify(999, image=tmp_path / "broken.png")


def test_a_collection_without_runs_or_clusters_says_so(settings: Settings, tmp_path: Path) -> None:
    write_group(tmp_path / "p", "red", COLOURS["red"], 12, 0)
    with Atlas.open("none", settings=settings) as atlas:
        atlas.ingest(tmp_path / "p")
        with pytest.raises(RunNotFoundError, match="cluster it first"):
            atlas.recommend("red")
        only_noise = atlas.cluster("dbscan", eps=0.0001, min_samples=12)
        assert only_noise.n_clusters == 0
        with pytest.raises(ClusteringError, match="no clusters"):
            atlas.classify(only_noise.id, image=png(picture(COLOURS["red"], 1)))


def test_recommend_ranks_the_cluster_a_prompt_names_and_its_nearest_items(
    colours: tuple[Atlas, ClusterRun],
) -> None:
    atlas, run = colours
    labels = label_of_colour(atlas, run)
    found = atlas.recommend("something blue", top=2, items=3)
    best = found["clusters"][0]
    assert best["label"] == labels["blue"] and best["rank"] == 1
    assert found["clusters"][0]["cosine"] > found["clusters"][1]["cosine"]
    assert len(best["items"]) == 3 and best["models"] == []  # no CivitAI provenance here
    assert all("blue" in i["uri"] for i in best["items"])
    cosines = [i["cosine"] for i in best["items"]]
    assert cosines == sorted(cosines, reverse=True)
    with pytest.raises(ConfigError, match="empty"):
        atlas.recommend("  ")


def test_arrivals_are_assigned_without_refit_and_a_new_style_advises_reclustering(
    colours: tuple[Atlas, ClusterRun], tmp_path: Path
) -> None:
    atlas, run = colours
    labels = label_of_colour(atlas, run)
    write_group(tmp_path / "more", "green", COLOURS["green"], 20, 50)
    report = atlas.ingest(tmp_path / "more", assign=False)
    assert report.arrivals is None
    first = atlas.assign_new()
    # by construction about 5% of same-style arrivals fall outside the 95% radius
    assert first.assigned == 20 and first.unknown <= 3
    assert set(first.per_cluster) <= {labels["green"], -1} and not first.advise_recluster
    assert atlas.assign_new().assigned == 0  # stored: nothing is placed twice

    write_group(tmp_path / "new-style", "magenta", MAGENTA, 25, 60)
    arrivals = atlas.ingest(tmp_path / "new-style").arrivals  # placed by the ingest itself
    assert arrivals is not None and arrivals["assigned"] == 25
    second = atlas.assign_new(run.id)
    assert second.assigned == 0 and second.unknown == first.unknown + 25 and second.total == 45
    assert second.advise_recluster and "re-clustering advised" in second.advice
    assert atlas.run(run.id).n_clusters == 4  # the run itself is unchanged


def test_naming_evidence_tf_idf_tags_and_contrast_terms() -> None:
    metas = {
        0: [{"model_id": m, "tags": ["style", "anime", "girl"]} for m in range(4)]
        + [{"model_id": 4, "tags": ["style", "landscape"]}],
        1: [{"model_id": 10 + m, "tags": ["style", "landscape", "photo"]} for m in range(5)]
        # one model with many images counts once
        + [{"model_id": 99, "tags": ["anime"]}] * 30,
    }
    tags = distinctive_tags(metas)
    # class-based TF-IDF: the tags of this cluster first; the tag every cluster has is no
    # evidence at all (issue 22: "style" on every model named clusters)
    assert {t["tag"] for t in tags[0][:2]} == {"anime", "girl"}
    assert "style" not in {t["tag"] for t in tags[0] + tags[1]} and tags[0][0]["share"] == 0.8
    assert [t["tag"] for t in tags[1][:2]] == ["photo", "landscape"]
    assert "anime" not in {t["tag"] for t in tags[1]}  # 1 model of 6: below the 20% share

    centroids = np.eye(3, dtype=np.float32)[:2]
    words = np.asarray([[0.9, 0.1, 0.4], [0.1, 0.9, 0.4], [0.5, 0.5, 0.7]], np.float32)
    ranked = style_terms(centroids, words, ["a", "b", "generic"])
    assert ranked[0][0]["term"] == "a" and ranked[1][0]["term"] == "b"


def test_the_style_commands_work_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, model="fake:64", workers=-1, database_url=None)
    folder = tmp_path / "pictures"
    for seed, (colour, rgb) in enumerate(COLOURS.items()):
        write_group(folder, colour, rgb, 12, seed)
    with Atlas.open("cli", settings=settings) as atlas:
        atlas.ingest(folder)
        made = atlas.cluster("kmeans", k=4)
    (tmp_path / "words.txt").write_text("# colours\nred\ngreen\nblue\nyellow\n")
    named = json.loads(
        run_cli(home, "name-clusters", "-c", "cli", "--vocabulary", str(tmp_path / "words.txt"),
                "--json").stdout
    )  # fmt: skip
    assert sorted(n["name"] for n in named) == sorted(COLOURS)
    red = next(n["label"] for n in named if n["name"] == "red")
    picture(COLOURS["red"], 7777).save(tmp_path / "q.png")
    answer = json.loads(
        run_cli(home, "classify", str(tmp_path / "q.png"), "-c", "cli", "--json").stdout
    )
    assert answer["label"] == red and answer["name"] == "red" and answer["run"] == made.id
    text = run_cli(home, "classify", str(tmp_path / "q.png"), "-c", "cli").stdout
    assert f"cluster {red} (red)" in text and "falls inside" in text
    found = json.loads(
        run_cli(home, "recommend", "red", "-c", "cli", "--top", "1", "--json").stdout
    )
    assert found["clusters"][0]["name"] == "red"
    renamed = json.loads(
        run_cli(home, "rename-cluster", str(red), "Scarlet", "-c", "cli", "--json").stdout
    )
    assert renamed == {"run": made.id, "label": red, "name": "Scarlet", "map": None}
    assigned = json.loads(run_cli(home, "assign", "-c", "cli", "--json").stdout)
    assert assigned["assigned"] == 0 and assigned["advise_recluster"] is False
    write_group(tmp_path / "new", "magenta", MAGENTA, 24, 9)
    text = run_cli(home, "ingest", str(tmp_path / "new"), "-c", "cli").stdout
    assert "re-clustering advised: 100% of the 24 items" in text
    failed = run_cli(home, "classify", "-c", "cli", "--run", "77", str(tmp_path / "q.png"), check=1)
    assert "no clustering run 77" in failed.stderr


def test_naming_and_recommend_run_through_a_real_clip_text_tower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hf: loading path (a tiny random-weight CLIP saved by the test): names come from the
    default vocabulary through the real tokenizer and text tower, recommend ranks clusters."""
    from tests.tiny_models import build_tiny_hf_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = build_tiny_hf_clip(tmp_path / "tiny-clip")
    settings = Settings(
        home=tmp_path / "home", model=f"hf:{model_dir}", workers=-1, batch_size=8,
        database_url=None, device="cpu", precision="fp32",
    )  # fmt: skip
    for seed, (colour, rgb) in enumerate(COLOURS.items()):
        write_group(tmp_path / "p", colour, rgb, 8, seed)
    with Atlas.open("tiny", settings=settings) as atlas:
        atlas.ingest(tmp_path / "p")
        run = atlas.cluster("kmeans", k=3)
        named = [c for c in run.clusters if c.label >= 0]
        assert len({c.name for c in named}) == 3
        assert all(c.meta["zero_shot"] and len(c.meta["terms"]) == 5 for c in named)
        found = atlas.recommend("an oil painting", top=3)
        assert sorted(c["label"] for c in found["clusters"]) == [0, 1, 2]
