"""Session fixtures for the embedder tests: tiny models on disk, loaded through the registry.

Test modules pull these in with ``pytest_plugins = ("tests.embedder_fixtures",)``. Every
fixture that loads a model first forces the Hugging Face hub offline, so nothing touches the
network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clipatlas.embedders.base import Embedder
from clipatlas.registry import DEFAULT_PLUGINS, Registry
from clipatlas.settings import Settings
from tests.tiny_models import TINY_BUILDERS


@pytest.fixture(scope="session")
def hub_offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield


@pytest.fixture(scope="session")
def embedder_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """CPU, and a batch size small enough that five inputs take three batches."""
    # fp32: these tests compare against reference pipelines to 1e-5 (bf16 is tested apart)
    return Settings(
        home=tmp_path_factory.mktemp("home"), device="cpu", batch_size=2, precision="fp32"
    )


@pytest.fixture(scope="session")
def embedder_registry() -> Registry:
    """A registry holding the built-in embedder plugins, exactly as DEFAULT_PLUGINS lists them."""
    registry = Registry()
    for plugin in DEFAULT_PLUGINS:
        if plugin.startswith("clipatlas.embedders."):
            registry.load(plugin)
    return registry


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {name: build(root / name) for name, (_, build) in TINY_BUILDERS.items()}


@pytest.fixture(scope="session")
def tiny_specs(tiny_model_dirs: dict[str, Path]) -> dict[str, str]:
    return {name: f"{TINY_BUILDERS[name][0]}:{tiny_model_dirs[name]}" for name in TINY_BUILDERS}


@pytest.fixture(scope="session")
def tiny_embedders(
    tiny_specs: dict[str, str], embedder_registry: Registry, embedder_settings: Settings
) -> dict[str, Embedder]:
    return {
        name: embedder_registry.create_embedder(spec, embedder_settings)
        for name, spec in tiny_specs.items()
    }
