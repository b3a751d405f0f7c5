"""Composition by delegation: a facade object (the :class:`~clipatlas.Atlas`) that shows its
parts' methods and attributes as its own, each defined once, in the part that does the work.

    class Atlas:
        collection = Forwarded[CollectionInfo]("engine")  # atlas.collection is engine's
        ingest = delegate(Engine.ingest, "engine")        # atlas.ingest(...) calls it

A delegated method keeps the part's signature (for type checkers, ``inspect`` and ``help``)
and docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

__all__ = ["Forwarded", "delegate"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Part = TypeVar("Part")


def delegate(
    method: Callable[Concatenate[Part, P], R], part: str
) -> Callable[Concatenate[Any, P], R]:
    """``method`` of the facade's attribute ``part``, as a method of the facade itself."""

    @functools.wraps(method)
    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, part), *args, **kwargs)

    return call


class Forwarded(Generic[T]):
    """An attribute of the facade that lives on its attribute ``part`` (read and set there)."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, facade: None, owner: type | None = None) -> Forwarded[T]: ...
    @overload
    def __get__(self, facade: object, owner: type | None = None) -> T: ...
    def __get__(self, facade: object | None, owner: type | None = None) -> T | Forwarded[T]:
        if facade is None:
            return self
        value: T = getattr(getattr(facade, self.part), self.name)
        return value

    def __set__(self, facade: object, value: T) -> None:
        setattr(getattr(facade, self.part), self.name, value)
