from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from clipatlas.embedders.fake import FakeEmbedder
from clipatlas.errors import ConfigError, UnknownPluginError
from clipatlas.registry import Registry, default_registry, split_spec
from clipatlas.settings import Settings, load_settings


def test_specs_split_at_the_first_colon_only() -> None:
    assert split_spec("hf:openai/clip-vit-base-patch32") == ("hf", "openai/clip-vit-base-patch32")
    assert split_spec("open_clip:hf-hub:org/repo") == ("open_clip", "hf-hub:org/repo")
    assert split_spec("fake:") == ("fake", "")
    with pytest.raises(ConfigError):
        split_spec("no-kind-here")


def test_unknown_kinds_name_the_registered_ones(settings: Settings) -> None:
    registry = default_registry()
    with pytest.raises(UnknownPluginError) as err:
        registry.create_embedder("nope:model", settings)
    assert {"hf", "open_clip", "sentence-transformers", "fake"} <= set(err.value.known)
    with pytest.raises(UnknownPluginError, match="unknown source 'ftp'"):
        registry.create_source("ftp", "x")


def test_a_third_party_plugin_is_found_through_its_entry_point(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myplugin.py").write_text(
        textwrap.dedent(
            """
            from clipatlas.embedders.fake import FakeEmbedder

            class Tagged(FakeEmbedder):
                pass

            def register(registry):
                registry.add_embedder("mine", lambda arg, settings: Tagged(int(arg or 16)))
            """
        )
    )
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[clipatlas.plugins]\nmine = myplugin:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    embedder = default_registry().create_embedder("mine:24", settings)
    assert type(embedder).__name__ == "Tagged" and embedder.dim == 24
    assert "mine" not in default_registry(with_entry_points=False).embedders
    sys.modules.pop("myplugin", None)


def test_plugins_load_the_same_way_from_a_path_or_a_callable() -> None:
    registry = Registry()
    registry.load("clipatlas.embedders.fake:register")
    registry.load(lambda r: r.add_embedder("other", lambda arg, s: FakeEmbedder(8)))
    assert set(registry.embedders) == {"fake", "other"}


def test_settings_come_from_clipatlas_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIPATLAS_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CLIPATLAS_MODEL", "fake:32")
    monkeypatch.setenv("CLIPATLAS_BATCH_SIZE", "7")
    settings = load_settings(precision="fp32")
    assert (settings.home, settings.model, settings.batch_size, settings.precision) == (
        tmp_path / "h",
        "fake:32",
        7,
        "fp32",
    )
    assert settings.collection_dir("c") == tmp_path / "h" / "collections" / "c"
    monkeypatch.setenv("CLIPATLAS_BATCH_SIZE", "-1")
    with pytest.raises(ConfigError, match="batch_size"):
        load_settings()
