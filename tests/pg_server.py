"""A real PostgreSQL server for tests: Debian's `postgresql` binaries, a cluster made by
`initdb` in a temporary directory and started by `pg_ctl` on a free loopback port.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user (`runuser -u postgres -- …`) in a directory that user owns. Trust
authentication is allowed on loopback only (the server listens on 127.0.0.1 and its own
socket directory, nowhere else): a test cluster with no secrets to commit.

Never skipped: when the binaries are missing the test fails and says how to get them.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port

INSTALL_HINT = "`make postgres` (or `apt-get install -y postgresql`) installs it"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, f"PostgreSQL is not installed: {INSTALL_HINT}"
    return Path(found[-1]).parent  # the newest major version


class PostgresServer:
    def __init__(self, port: int | None = None) -> None:
        self.bindir = _bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="govgw-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        # As root, the cluster belongs to `postgres`; otherwise to whoever runs the tests.
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o700)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, check=False, cwd=self.root
        )
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}{done.stderr}"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> PostgresServer:
        self._run("mkdir", "-m", "0700", str(self.sockdir))
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        # Loopback only, and trust there only (the pg_hba.conf initdb wrote is replaced).
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        self._run("sh", "-c", f"printf '{hba}' > {self.datadir / 'pg_hba.conf'}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockdir}"
            " -c fsync=off -c max_connections=200"  # a test cluster: speed over durability
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip
        return self

    def restart(self) -> None:
        """Stop (fast: connections are cut) and start again on the same port and data
        (pg_ctl keeps the options of the first start; the log keeps the server's output
        off our pipes)."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
            "-m", "fast", "-w", "-t", "30", "restart",
        )  # fmt: skip

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                 "-m", "fast", "-w", "stop"],
                capture_output=True, check=False, cwd=self.root,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
