"""The engine context on its own: a feature works on an :class:`Engine` without any Atlas,
an ingest places arrivals on the newest run only through the hook the Atlas sets, and the
Atlas shows the engine's state (the collection row) rather than a copy of it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from clipatlas import Atlas
from clipatlas.analysis.runs import Runs
from clipatlas.engine import Engine, open_store
from clipatlas.errors import CollectionNotFoundError, ConfigError
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from tests.test_style_atlas import COLOURS, picture, write_group


def open_engine(settings: Settings, name: str = "engine") -> Engine:
    return Engine(name, settings, open_store(name, settings), default_registry())


def test_runs_cluster_and_classify_on_an_engine_without_an_atlas(
    settings: Settings, tmp_path: Path
) -> None:
    for seed, colour in enumerate(("red", "blue")):
        write_group(tmp_path / "pictures", colour, COLOURS[colour], 12, seed)
    engine = open_engine(settings)
    try:
        assert engine.ingest(tmp_path / "pictures").embedded == 24
        runs = Runs(engine)
        run = runs.cluster("kmeans", k=2, name=False)
        assert sorted(c.size for c in run.clusters) == [12, 12]
        red = runs.classify(run.id, image=picture(COLOURS["red"], 999))
        members = {i.id for batch in engine.store.iter_items(engine.collection) for i in batch
                   if i.source_key.startswith("red")}  # fmt: skip
        assert {i for i, label in run.label_of().items() if label == red.label} == members

        # no hook: the engine alone leaves later items unplaced
        write_group(tmp_path / "later", "red", COLOURS["red"], 3, 7)
        assert engine.ingest(tmp_path / "later").arrivals is None
        engine.place_arrivals = runs.place_arrivals
        write_group(tmp_path / "later-still", "blue", COLOURS["blue"], 2, 8)
        arrivals = engine.ingest(tmp_path / "later-still").arrivals
        assert arrivals is not None and arrivals["assigned"] == 5 and arrivals["total"] == 5
    finally:
        engine.close()
    with Atlas.open("engine", settings=settings, create=False) as atlas:
        assert [r["id"] for r in atlas.runs()] == [run.id]  # the same collection's database


def test_the_atlas_collection_row_is_the_engines(settings: Settings) -> None:
    with Atlas.open("shared", settings=settings) as atlas:
        assert atlas.collection is atlas.engine.collection
        atlas.engine.bind("fake:64", 64)  # the engine moves on (as a feature's import does)
        assert atlas.collection.embedder_id == "fake:64" and atlas.model_id == "fake:64"
        atlas.collection = atlas.store.get_collection("shared")  # the web app refreshes so
        assert atlas.engine.collection is atlas.collection


def test_atlas_methods_carry_the_signatures_and_docs_of_the_parts_doing_the_work() -> None:
    for name, part in [("ingest", Engine), ("index", Engine), ("cluster", Runs),
                       ("classify", Runs), ("assign_new", Runs)]:  # fmt: skip
        assert inspect.signature(getattr(Atlas, name)) == inspect.signature(getattr(part, name))
        assert getattr(Atlas, name).__doc__ == getattr(part, name).__doc__


def test_open_store_refuses_a_bad_name_and_a_missing_collection(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="collection name"):
        open_store("../up", settings)
    with pytest.raises(CollectionNotFoundError):
        open_store("absent", settings, create=False)
    assert not settings.collection_dir("absent").exists()
