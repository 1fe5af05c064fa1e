"""A throwaway PostgreSQL server for the tests: Debian's binaries, `initdb` in a temporary
folder, a unix socket only (no TCP port), stopped and removed at the end.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the `postgres` user
the Debian package creates; the tests connect through the socket as the `apollo` superuser.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

SERVER_USER = "postgres"


def binaries() -> Path:
    """The folder of initdb and pg_ctl (the newest installed major version)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "`bash scripts/setup.sh --dev` installs Debian's postgresql package"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """A server in a temporary folder; `database()` makes an empty database for one test."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="apollo-pg-"))
        self.data, self.socket = self.root / "data", self.root / "sock"
        self.user: str | None = None
        try:
            self._start()
        except BaseException:  # nothing left behind of a server that did not start
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _start(self) -> None:
        self.socket.mkdir()
        if os.geteuid() == 0:
            self.user = SERVER_USER
            entry = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.socket):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._pg(
            "initdb", "-D", str(self.data), "-U", "apollo", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        # Durability off: a test database never outlives its test.
        options = (
            f"-k {self.socket} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        log = str(self.root / "log")
        self._pg(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"
        )

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / tool), *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()}\n{tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://apollo@/{database}?host={self.socket}"

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        try:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
