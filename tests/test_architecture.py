"""The shape of the house: no import circles, no module over 450 lines, features below the
facade, and lower layers never reaching up (the picture is in ARCHITECTURE.md).

The import graph is read from the source (AST), not by importing: every ``import`` and
``from ... import`` anywhere in a file counts, inside functions and under ``TYPE_CHECKING``
too, relative imports resolved, and ``from package import module`` counted as an import of
that module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clipatlas"
MAX_LINES = 450

# The layers, lowest first; a module may import its own layer and the layers below it only
# (ARCHITECTURE.md draws this). Each entry is a module or a package (with everything in it)
# under clipatlas/; a new module outside every entry fails until it is given a layer here.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "progress", "atomic", "delegation", "wording")),
    (
        "stages",
        (
            "settings",
            "registry",
            "images",
            "fetch",
            "sources",
            "embedders",
            "store",
            "index",
            "pipeline",
        ),
    ),
    ("engine", ("engine",)),
    ("features", ("analysis", "captions", "dataset", "matching")),
    ("facade", ("atlas", "__init__", "tagging", "distributed")),
    ("jobs", ("jobs",)),
    ("edges", ("cli", "web", "__main__")),
)
# Feature modules stand below the facade: they take the engine, never ``clipatlas.atlas``
# (not even under TYPE_CHECKING).
FEATURES = tuple(f"clipatlas.{m}" for m in dict(LAYERS)["features"])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _known(name: str) -> str | None:
    """The module ``name`` lives in: itself, or the nearest enclosing package we have."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported clipatlas module, line) for every import statement in the file."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = _known(alias.name)
                if found:
                    yield found, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                found = _known(f"{target}.{alias.name}") or _known(target)
                if found:
                    yield found, node.lineno


@cache
def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line importing it}."""
    out: dict[str, dict[str, int]] = {}
    for module, path in modules().items():
        edges: dict[str, int] = {}
        for target, line in _imported(module, path):
            edges[target] = min(line, edges.get(target, line))
        out[module] = edges
    return out


def circles() -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in g:
        if start in index:
            continue
        work = [(start, iter(g[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(g[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in g[node]:
                    found.append(sorted(component))
    return found


def _file(module: str) -> str:
    return str(modules()[module].relative_to(ROOT))


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """The rank of a module's layer (0 = lowest), or None when LAYERS does not place it."""
    for rank, (_, members) in enumerate(LAYERS):
        if any(_in(module, f"clipatlas.{m}") for m in members):
            return rank
    if module == "clipatlas":
        return next(r for r, (_, m) in enumerate(LAYERS) if "__init__" in m)
    return None


def test_imports_are_resolved_relative_from_package_lazy_and_type_checking(
    tmp_path: Path,
) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import schema, not_a_module\n"  # a module of the package, a name in it
        "from ..errors import StoreError\n"
        "from .sql import SqlStore\n"
        "import clipatlas.index.exact as exact\n"
        "import numpy\n"
        "if TYPE_CHECKING:\n"
        "    from clipatlas.atlas import Atlas\n"
        "def later():\n"
        "    from clipatlas.cli import render\n",
        encoding="utf-8",
    )
    found = {target for target, _ in _imported("clipatlas.store.probe", source)}
    assert found == {
        "clipatlas.store.schema",
        "clipatlas.store",
        "clipatlas.errors",
        "clipatlas.store.sql",
        "clipatlas.index.exact",
        "clipatlas.atlas",
        "clipatlas.cli.render",
    }


def test_the_import_graph_covers_the_package() -> None:
    g = graph()
    assert len(g) > 150
    assert "clipatlas.store.schema" in g["clipatlas.store.runs"]
    # ``from clipatlas.cli import collection`` is an import of the module, not of the package
    assert "clipatlas.cli.collection" in g["clipatlas.cli.app"]
    assert "clipatlas.cli" not in g["clipatlas.cli.app"]


def test_no_module_imports_itself_or_a_module_that_imports_it_back() -> None:
    found = circles()
    shown = "\n".join("circle: " + ", ".join(_file(m) for m in component) for component in found)
    assert not found, f"import circles among clipatlas modules ({len(found)}):\n{shown}"


def test_no_module_is_longer_than_450_lines() -> None:
    long = {
        _file(m): n
        for m, p in modules().items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    shown = ", ".join(f"{f} ({n} lines)" for f, n in sorted(long.items()))
    assert not long, f"modules over {MAX_LINES} lines (split them by idea): {shown}"


def test_no_feature_module_imports_the_atlas_facade() -> None:
    g = graph()
    bad = sorted(
        f"{_file(m)}:{g[m]['clipatlas.atlas']}"
        for m in g
        if any(_in(m, f) for f in FEATURES) and "clipatlas.atlas" in g[m]
    )
    assert not bad, "feature modules importing clipatlas.atlas: " + ", ".join(bad)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(_file(m) for m in modules() if layer_of(m) is None)
    assert not unplaced, "modules in no layer (add them to LAYERS): " + ", ".join(unplaced)


def test_every_module_imports_only_its_own_layer_and_the_layers_below() -> None:
    g = graph()
    rank = {m: layer_of(m) for m in g}
    bad = sorted(
        f"{_file(m)}:{line} ({LAYERS[low][0]}) imports {t} ({LAYERS[high][0]})"
        for m in g
        for t, line in g[m].items()
        if (low := rank[m]) is not None and (high := rank[t]) is not None and high > low
    )
    assert not bad, "imports reaching up a layer:\n" + "\n".join(bad)
