"""The atlas map: PCA -> UMAP layout, and its HTML/PNG renderings."""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from clipatlas.analysis.atlas_map import MapLayout, layout, render_html, render_png
from clipatlas.errors import ConfigError

HOSTILE = '<script>alert("x")</script> & "quotes"'


def separated_groups(n: int, groups: int = 6, d: int = 64, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.arange(n) % groups
    x = centres[labels] + rng.normal(size=(n, d)) * 0.15 / np.sqrt(d) * 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def knn_label_agreement(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)[1][:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


@pytest.fixture(scope="module")
def groups() -> tuple:
    return separated_groups(360)


@pytest.fixture(scope="module")
def full_layout(groups: tuple) -> MapLayout:
    return layout(groups[0], seed=3)


def test_layout_keeps_well_separated_groups_apart_in_two_dimensions(groups, full_layout):
    x, labels = groups
    assert full_layout.strategy == "umap"
    assert full_layout.coords.shape == (len(x), 2)
    assert full_layout.coords.dtype == np.float32
    assert knn_label_agreement(full_layout.coords, labels) >= 0.9
    assert trustworthiness(x, full_layout.coords, n_neighbors=10) >= 0.9
    assert {"pca", "umap_fit", "total"} <= set(full_layout.seconds)
    assert full_layout.params["pca_dims_used"] == 50


def test_layout_is_identical_for_the_same_seed(groups, full_layout):
    again = layout(groups[0], seed=3)
    np.testing.assert_array_equal(again.coords, full_layout.coords)


@pytest.mark.parametrize("placement", ["transform", "knn"])
def test_layout_above_the_sample_size_fits_a_sample_and_places_the_rest_as_well(placement):
    x, labels = separated_groups(900, seed=2)
    events = []
    result = layout(x, sample=300, seed=0, placement=placement, progress=events.append)
    assert result.strategy == f"umap-sample+{placement}"
    assert result.params["fitted_on"] == 300
    assert "place" in result.seconds
    assert np.isfinite(result.coords).all()
    assert knn_label_agreement(result.coords, labels) >= 0.9
    assert events and events[-1].done == events[-1].total == 900
    again = layout(x, sample=300, seed=0, placement=placement)
    np.testing.assert_array_equal(again.coords, result.coords)


def test_knn_placement_without_faiss_falls_back_to_numpy_with_the_same_quality(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # "import faiss" now raises ImportError
    x, labels = separated_groups(900, seed=2)
    result = layout(x, sample=300, seed=0, placement="knn")
    assert result.strategy == "umap-sample+knn"
    assert knn_label_agreement(result.coords, labels) >= 0.9


def test_automatic_placement_says_which_it_used():
    x, _ = separated_groups(400, seed=4)
    result = layout(x, sample=300, seed=0)
    assert result.params["placement_used"] == "transform"
    assert result.strategy == "umap-sample+transform"


@pytest.mark.parametrize(("n", "strategy"), [(0, "empty"), (1, "single"), (2, "pca"), (5, "pca")])
def test_layout_of_a_handful_of_vectors_falls_back_without_crashing(n, strategy):
    x, _ = separated_groups(max(n, 1))
    result = layout(x[:n])
    assert result.strategy == strategy
    assert result.coords.shape == (n, 2)
    assert np.isfinite(result.coords).all()


def test_layout_of_one_dimensional_vectors_still_gives_two_columns():
    result = layout(np.arange(4, dtype=np.float32)[:, None])
    assert result.strategy == "pca"
    assert result.coords.shape == (4, 2)


def test_layout_of_identical_vectors_puts_every_point_at_the_origin():
    result = layout(np.ones((40, 8), np.float32))
    assert result.strategy == "identical"
    assert not result.coords.any()


@pytest.mark.parametrize(
    "bad", [np.zeros(5, np.float32), np.full((20, 4), np.nan, np.float32)], ids=["1-d", "nan"]
)
def test_layout_rejects_malformed_vectors_with_a_config_error(bad):
    with pytest.raises(ConfigError):
        layout(bad)


def write_jpeg(path: Path, colour: tuple[int, int, int]) -> str:
    Image.new("RGB", (320, 200), colour).save(path, "JPEG")
    return str(path)


@pytest.fixture
def map_points(tmp_path):
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(12, 2)).astype(np.float32)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, -1, -1, 0])
    hover = [{"name": f"item {i}", "source": "civitai", "model": f"lora-{i}"} for i in range(12)]
    hover[3] = {"name": HOSTILE, "source": "folder", "path": "/x/<img src=x onerror=alert(1)>"}
    thumbs: list[str | None] = [
        write_jpeg(tmp_path / f"t{i}.jpg", (20 * i, 100, 200)) for i in range(10)
    ] + [None, str(tmp_path / "missing.jpg")]
    names = {0: HOSTILE, 1: "watercolor", 2: "pixel art"}
    return coords, labels, names, hover, thumbs


def test_html_map_is_self_contained_escaped_and_embeds_thumbnails(tmp_path, map_points):
    coords, labels, names, hover, thumbs = map_points
    out = render_html(
        tmp_path / "map.html",
        coords,
        labels=labels,
        names=names,
        hover=hover,
        thumbnails=thumbs,
        title=f"styles {HOSTILE}",
    )
    page = out.path.read_text(encoding="utf-8")
    assert out.points == 12 and out.thumbnails == 10 and out.thumbnails_failed == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "plotly.js v" in page  # the library itself is embedded
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    assert not re.search(r"https?://|<link|<iframe", markup, re.I)  # nothing loaded from afar
    # plotly writes "<", ">" and "/" inside its JSON as \u escapes; undo them, then the text
    # from upstream must still be HTML-escaped
    decoded = re.sub(r"\\u00(3c|3e|2f|26)", lambda m: chr(int(m[1], 16)), page)
    assert 'alert("x")</script>' not in decoded and "<img src=x" not in decoded
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in decoded
    assert "<title>styles &lt;script&gt;" in page
    uris = re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", decoded)
    assert len(set(uris)) == 10
    with Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1]))) as thumb:
        assert max(thumb.size) <= 96
    assert "#9e9e9e" in page  # noise is grey
    assert not list(tmp_path.glob(".tmp-*"))


def test_html_map_embeds_at_most_the_thumbnail_cap(tmp_path, map_points):
    coords, labels, names, hover, thumbs = map_points
    out = render_html(
        tmp_path / "map.html",
        coords,
        labels=labels,
        names=names,
        hover=hover,
        thumbnails=thumbs,
        title="cap",
        max_thumbnails=4,
    )
    assert out.thumbnails + out.thumbnails_failed == 4
    page = out.path.read_text(encoding="utf-8").replace("\\u002f", "/")
    assert len(set(re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", page))) <= 4
    assert "item 11" in page  # points beyond the cap keep their text


def test_html_map_rejects_hover_of_the_wrong_length(tmp_path, map_points):
    coords, labels, names, hover, _ = map_points
    with pytest.raises(ConfigError):
        render_html(
            tmp_path / "m.html",
            coords,
            labels=labels,
            names=names,
            hover=hover[:3],
            thumbnails=None,
            title="t",
        )


def test_png_map_is_a_valid_picture_of_reasonable_size(tmp_path, map_points):
    coords, labels, names, _, _ = map_points
    names = {**names, 1: "cost $5 a $pin"}  # a lone "$" must not start mathtext
    path = render_png(tmp_path / "map.png", coords, labels=labels, names=names, title="a $ map")
    assert 5_000 < path.stat().st_size < 2_000_000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= 600 and im.size[1] >= 400


def test_png_map_of_no_points_is_still_written(tmp_path):
    path = render_png(tmp_path / "empty.png", np.zeros((0, 2)), labels=[], names={}, title="none")
    with Image.open(path) as im:
        assert im.format == "PNG"


def test_png_legend_lists_every_cluster_and_each_label_is_written_on_its_cluster(tmp_path):
    """Issue 22: the legend showed 12 of 21 clusters and the plot carried no labels."""
    from clipatlas.analysis.map_render import LEGEND_ROWS, label_anchors, legend_entries

    rng = np.random.default_rng(0)
    centres = rng.uniform(-50, 50, size=(30, 2))
    labels = np.repeat(np.arange(30), 20)
    coords = centres[labels] + rng.normal(scale=0.5, size=(600, 2))
    labels[:15] = -1
    names = {label: f"style {label}" for label in range(30)}
    order = [(int(lb), int((labels == lb).sum())) for lb in [*range(30), -1]]
    entries = legend_entries(order, names)
    assert len(entries) == 31 and entries[0] == "0: style 0 (5)" and entries[-1] == "noise (15)"
    anchors = label_anchors(coords.astype(np.float32), labels)
    assert sorted(anchors) == list(range(30))
    for label, (x, y) in anchors.items():
        assert np.hypot(*(np.array([x, y]) - centres[label])) < 3.0  # on its own cluster
    wide = render_png(tmp_path / "many.png", coords, labels=labels, names=names)
    few = render_png(tmp_path / "few.png", coords[labels < 5], labels=labels[labels < 5])
    with Image.open(wide) as a, Image.open(few) as b:
        assert LEGEND_ROWS < 31 and a.size[0] > b.size[0]  # the long legend took a second column
