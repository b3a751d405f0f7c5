"""One registry through which every pluggable part is found by name.

Names have the form ``kind:argument`` — ``hf:openai/clip-vit-base-patch32``,
``open_clip:ViT-B-32/laion2b_s34b_b79k``, ``sentence-transformers:/models/minilm``,
``fake:64``. The part before the first colon picks a factory; the rest is handed to it.

Built-ins and third-party plugins register the same way: a plugin is a callable
``register(registry)``. Built-ins are listed in :data:`DEFAULT_PLUGINS`; third parties expose
theirs through the ``clipatlas.plugins`` entry-point group::

    [project.entry-points."clipatlas.plugins"]
    my_plugin = "my_package.clipatlas_plugin:register"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from clipatlas.errors import ConfigError, UnknownPluginError

if TYPE_CHECKING:
    from clipatlas.embedders.base import Embedder
    from clipatlas.settings import Settings
    from clipatlas.sources.base import Source, SourceContext

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "Registry", "default_registry", "split_spec"]

ENTRY_POINT_GROUP = "clipatlas.plugins"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "clipatlas.embedders.hf_clip:register",
    "clipatlas.embedders.open_clip:register",
    "clipatlas.embedders.sentence:register",
    "clipatlas.embedders.fake:register",
    "clipatlas.sources.folder:register",
    "clipatlas.sources.civitai:register",
    "clipatlas.sources.naver:register",
    "clipatlas.sources.urls:register",
)

EmbedderFactory = Callable[[str, "Settings"], "Embedder"]
SourceFactory = Callable[..., "Source"]


def split_spec(spec: str) -> tuple[str, str]:
    """Split ``kind:argument`` at the first colon; the argument may be empty."""
    kind, sep, arg = spec.partition(":")
    if not sep or not kind:
        raise ConfigError(f"expected 'kind:name', got {spec!r}")
    return kind.strip(), arg.strip()


@dataclass
class Registry:
    """Factories for embedders and sources, keyed by kind."""

    embedders: dict[str, EmbedderFactory] = field(default_factory=dict)
    sources: dict[str, SourceFactory] = field(default_factory=dict)

    def add_embedder(self, kind: str, factory: EmbedderFactory) -> None:
        self.embedders[kind] = factory

    def add_source(self, kind: str, factory: SourceFactory) -> None:
        self.sources[kind] = factory

    def create_embedder(self, spec: str, settings: Settings) -> Embedder:
        kind, arg = split_spec(spec)
        factory = self.embedders.get(kind)
        if factory is None:
            raise UnknownPluginError("embedder", kind, list(self.embedders))
        return factory(arg, settings)

    def create_source(self, kind: str, context: SourceContext, **options: Any) -> Source:
        """Build a source: its factory is called as ``factory(context, **options)``."""
        factory = self.sources.get(kind)
        if factory is None:
            raise UnknownPluginError("source", kind, list(self.sources))
        return factory(context, **options)

    def load(self, target: str | Callable[[Registry], None]) -> None:
        """Run one plugin: a ``module:function`` path or the callable itself."""
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            register = getattr(importlib.import_module(module_name), attr or "register")
        else:
            register = target
        register(self)


def default_registry(*, with_entry_points: bool = True) -> Registry:
    """A registry holding the built-ins and every installed third-party plugin."""
    registry = Registry()
    for plugin in DEFAULT_PLUGINS:
        registry.load(plugin)
    if with_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            registry.load(ep.load())
    return registry
