"""The one SQLAlchemy ``MetaData`` every table of a clipatlas database registers in.

The core tables (:mod:`clipatlas.store.schema`) and the feature tables (``*_tables.py``) both
import it from here, so the schema's migrations can import the feature tables without them
importing the schema back.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData()
