"""Whole-collection aggregates (counts, sources, tags) cached per collection version, with a
bounded share of a core spent recounting them (see :meth:`SqlStore.cached_summary
<clipatlas.store.sql.SqlStore.cached_summary>`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["RECOUNT_SHARE", "SummaryCache"]

RECOUNT_SHARE = 0.02  # of one core, at most, spent recounting summaries (cached_summary)


@dataclass(slots=True)
class _Entry:
    version: int  # the collection version the value was computed at
    computed: float  # time.monotonic() the computation started
    value: Any
    cost: float  # seconds the computation took
    confirmed: float  # time.monotonic() the version was last seen unchanged


class SummaryCache:
    """Values by key, each stamped with the collection version it was computed at and the last
    time that version was confirmed current; one thread recounts a key at a time."""

    def __init__(self) -> None:
        self._values: dict[Hashable, _Entry] = {}
        self._locks: dict[Hashable, threading.Lock] = {}

    def get(
        self,
        key: Hashable,
        version: Callable[[], int],
        compute: Callable[[], Any],
        max_age: float,
        ttl: float,
    ) -> Any:
        """The value of ``key`` at the collection's current ``version()``, computed again only
        when the cached one is not fresh: of another version and older than ``max_age``
        (stretched to its cost divided by :data:`RECOUNT_SHARE`), or older than ``ttl``.

        ``version()`` (a database read) is skipped while the value was computed, or confirmed
        current, less than ``max_age`` seconds ago: it may lag the writes by that much anyway."""
        cached = self._values.get(key)
        if cached is not None and max_age > 0:
            floor = cached.cost / RECOUNT_SHARE
            max_age, ttl = max(max_age, floor), max(ttl, floor)
            now = time.monotonic()
            if now - cached.computed < ttl and now - cached.confirmed < max_age:
                return cached.value
        current = version()
        if cached is not None and self._fresh(cached, current, max_age, ttl):
            cached.confirmed = time.monotonic()  # still this version
            return cached.value
        lock = self._locks.setdefault(key, threading.Lock())
        if max_age > 0 and cached is not None:
            if not lock.acquire(blocking=False):
                return cached.value  # another thread is recounting; 50 threads need not
        else:
            lock.acquire()
        try:
            cached = self._values.get(key)  # counted while this thread waited?
            if cached is not None and self._fresh(cached, current, 0.0, ttl):
                return cached.value
            started = time.monotonic()
            value = compute()
            done = time.monotonic()
            self._values[key] = _Entry(current, started, value, done - started, started)
            return value
        finally:
            lock.release()

    @staticmethod
    def _fresh(cached: _Entry, version: int, max_age: float, ttl: float) -> bool:
        age = time.monotonic() - cached.computed
        return age < ttl and (cached.version == version or age < max_age)

    def forget(self, key: Hashable) -> None:
        """Drop a cached value (its data changed without a version bump)."""
        self._values.pop(key, None)
