"""Opening a clipatlas database: the SQLAlchemy engine, SQLite's pragmas, the migrations.

SQLite (embedded default) and PostgreSQL go through the same code; database errors surface as
:class:`~clipatlas.errors.StoreError`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from clipatlas.errors import StoreError
from clipatlas.store.schema import ensure_schema

__all__ = ["open_engine", "sqlite_url", "transaction"]

_MIGRATION_LOCK = 0x636C6970  # "clip": advisory lock id for concurrent PostgreSQL migrations


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; database errors surface as :class:`StoreError`."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(str(exc)) from exc


def sqlite_url(path: Path) -> str:
    return f"sqlite+pysqlite:///{path}"


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may wait for locks
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _switch_to_wal(cur: Any, wait: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried while other connections hold the file: switching a
    NEW database to WAL needs it to itself, and SQLite may answer "database is locked" at once
    instead of waiting (seen with 8 processes creating one file at once on a loaded machine)."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def open_engine(url: str) -> tuple[Engine, str]:
    """The engine of the database at ``url``, migrated to the current schema, and its dialect
    name (``sqlite``, ``postgresql``)."""
    parsed = make_url(url)
    dialect = parsed.get_backend_name()
    if dialect == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        # a served collection is read by dozens of request threads at once: SQLite gets
        # more pooled connections than SQLAlchemy's 5 + 10 (a file handle each);
        # PostgreSQL keeps the default, its server caps connections for all collections
        pool = {"pool_size": 10, "max_overflow": 40} if dialect == "sqlite" else {}
        engine = create_engine(url, future=True, pool_pre_ping=True, **pool)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from exc
    if dialect == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
    try:
        with engine.connect() as conn:
            # one opener migrates at a time: PostgreSQL by advisory lock, SQLite by taking
            # the write lock up front (two processes creating a new file at once would
            # otherwise both see no tables and the second CREATE TABLE would fail)
            if dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            elif dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            ensure_schema(conn)
            conn.commit()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine, dialect
