"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL with the same code.

Rows and their vectors are written in one transaction (:meth:`SqlStore.write_batch`), so a
crash at any moment leaves either the whole batch or none of it. Import from here; the
modules split it by idea:

* ``engine``: opening a database (engine, SQLite pragmas and WAL, migrations under a lock),
  :func:`transaction`, :func:`sqlite_url`
* ``store``: :class:`SqlStore`, the API: collections, reads, and the transactions of writes
* ``writes``: the SQL of writing items and vectors, on the caller's connection
* ``rows``: statements and row decoding shared by the reads
* ``summaries``: whole-collection aggregates cached per collection version
"""

from __future__ import annotations

from clipatlas.store.sql.engine import sqlite_url, transaction
from clipatlas.store.sql.store import SqlStore

__all__ = ["SqlStore", "sqlite_url", "transaction"]
