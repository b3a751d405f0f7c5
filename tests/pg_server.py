"""A throwaway PostgreSQL server for the test session (127.0.0.1 only).

``CLIPATLAS_TEST_POSTGRES_URL`` points the tests at a server someone else started (``.ci/run``
does). Otherwise a private cluster is created with ``initdb`` in a temporary directory and
stopped at the end of the session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.pg_ctl = pg_ctl
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self._prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")
        self._run(
            [
                initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {base} -c fsync=off"
        self._run(
            [pg_ctl, "-D", str(self.data), "-l", str(base / "log"), "-o", opts, "-w", "start"]
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start listening")

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(self._prefix + cmd, check=True, capture_output=True, cwd=self.base)

    def stop(self) -> None:
        subprocess.run(
            [*self._prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=self.base,
        )
