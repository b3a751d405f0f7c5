from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipatlas.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated in a temp home, with the fast deterministic embedder."""
    return Settings(
        home=tmp_path / "home", model="fake:64", workers=-1, batch_size=8, database_url=None
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("CLIPATLAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from tests.pg_server import LocalPostgres

    base = Path(tempfile.mkdtemp(prefix="clipatlas-pg-"))
    try:
        server = LocalPostgres(base)
    except (RuntimeError, OSError) as exc:  # no server binaries here
        if os.environ.get("CLIPATLAS_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
