"""Ray local mode: the distributed run stores exactly what a single-process ingest stores."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipatlas import Atlas
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs

ray = pytest.importorskip("ray", reason="the distributed extra (ray[data]) is not installed")

from clipatlas.distributed import embed_with_ray  # noqa: E402

# Ray's own modules warn about their internal settings (ray.data.context), and Ray 2.30
# (locks/lowest.txt) leaves its log monitor's file open when it starts (ray/_private/node.py),
# which the garbage collector reports at a random later moment; not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:ray.*",
    "ignore::FutureWarning:ray.*",
    r"ignore:Exception ignored in. <_io\.FileIO:pytest.PytestUnraisableExceptionWarning",
)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (starting Ray takes seconds); runs reuse it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=10**8)
    yield
    ray.shutdown()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Pictures with duplicates in one batch and across batches, a bad file and a subfolder."""
    root = tmp_path / "pics"
    paths = write_good_jpegs(root, 11, size=(96, 64))
    write_good_jpegs(root / "sub", 3, size=(64, 96), seed=1)
    shutil.copy(paths[0], root / "s0-0000-copy.jpg")  # same batch as the original
    shutil.copy(paths[1], root / "zz-late-copy.jpg")  # a later batch than the original
    (root / "notes.jpg").write_bytes(b"not a picture at all")
    return root


def _state(atlas: Atlas) -> tuple[list[dict[str, object]], np.ndarray, np.ndarray]:
    items = [
        {**asdict(it), "meta": dict(it.meta)}
        for page in atlas.store.iter_items(atlas.collection)
        for it in page
    ]
    ids, vectors = atlas.store.load_vectors(atlas.collection)
    return items, ids, vectors


def test_a_ray_run_stores_exactly_what_a_local_ingest_stores(
    local_ray: None, settings: Settings, folder: Path
) -> None:
    with Atlas.open("local", settings=settings) as atlas:
        local_report = atlas.ingest(folder)
        local = _state(atlas)
    with Atlas.open("ray", settings=settings) as atlas:
        ray_report = embed_with_ray(atlas, folder)
        distributed = _state(atlas)
    expected = {**local_report.as_dict(), "seconds": None}
    assert {**ray_report.as_dict(), "seconds": None} == expected
    assert (ray_report.stored, ray_report.rejected) == (14, 3)
    assert dict(ray_report.reasons) == {"duplicate": 2, "not_an_image": 1}
    assert distributed[0] == local[0]  # every row: ids, keys, hashes, reasons, meta, thumbs
    np.testing.assert_array_equal(distributed[1], local[1])
    assert distributed[2].tobytes() == local[2].tobytes()  # bit-identical vectors


def test_a_second_run_writes_nothing_and_the_command_adds_new_files(
    local_ray: None, settings: Settings, folder: Path
) -> None:
    from clipatlas.cli.app import app

    with Atlas.open("again", settings=settings) as atlas:
        embed_with_ray(atlas, folder)
        before = atlas.store.fingerprint(atlas.collection)
        again = embed_with_ray(atlas, folder)
        assert (again.skipped, again.stored, again.rejected) == (again.scanned, 0, 0)
        assert atlas.store.fingerprint(atlas.collection) == before
    write_good_jpegs(folder / "new", 2, size=(80, 80), seed=7)
    env = {
        "CLIPATLAS_HOME": str(settings.home),
        "CLIPATLAS_MODEL": "fake:64",
        "CLIPATLAS_WORKERS": "-1",
    }
    result = CliRunner().invoke(
        app, ["embed", str(folder), "-c", "again", "--ray", "--json"], env={**os.environ, **env}
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["stored"], report["skipped"]) == (2, again.scanned)
    with Atlas.open("again", settings=settings) as atlas:
        assert atlas.stats().vectors == 16
        hit = atlas.search_image(folder / "new" / "s7-0001.jpg", k=1)[0]
        assert hit.source_key == "new/s7-0001.jpg" and hit.score > 0.999
