"""The PostgreSQL side of backup and restore: `pg_dump` of the govgw schema, `psql` back.

Generic on purpose: the whole schema `govgw` is dumped and restored, whatever tables
other stores put there, with `--no-owner --no-privileges` so a restore into another
cluster (another role) works. Debian's client programs are used; they are found on
PATH or under /usr/lib/postgresql/*/bin (the newest major version: pg_dump must be at
least the server's).

The password never appears on a command line (a `ps` would show it): the URL is passed
as a conninfo string without it and the password travels in PGPASSWORD.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gateway.storage import StorageError, redact

SCHEMA = "govgw"  # gateway.storage.postgres.SCHEMA
TIMEOUT_S = 3600  # a large pool's dump takes minutes, not hours


def client_program(name: str) -> str:
    """`pg_dump`/`psql` of the newest installed major version, else the one on PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise StorageError(
            f"{name} not found (PATH, /usr/lib/postgresql/*/bin): install the PostgreSQL"
            " client programs (Debian: apt-get install postgresql-client)"
        )
    return on_path


def _conninfo_and_env(url: str) -> tuple[str, dict[str, str]]:
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise StorageError(f"database URL {redact(url)!r}: {e}") from None
    password = params.pop("password", None)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def _run(argv: list[str], env: dict[str, str], what: str, url: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        # The first error line names the problem (libpq never echoes a password).
        reason = next(
            (ln for ln in lines if "ERROR" in ln or "error" in ln), lines[0] if lines else ""
        )
        raise StorageError(f"{what} of {redact(url)} failed: {reason.strip()}")


def dump(url: str, out: Path) -> None:
    """The govgw schema of `url` as plain SQL into `out` (one consistent snapshot)."""
    conninfo, env = _conninfo_and_env(url)
    _run(
        [client_program("pg_dump"), "--schema", SCHEMA, "--no-owner", "--no-privileges",
         "--format", "plain", "--file", str(out), "--dbname", conninfo],
        env, "pg_dump", url,
    )  # fmt: skip


def existing_schema(url: str) -> int | None:
    """How many tables the govgw schema of `url` has, or None when it has no such schema."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone():
                row = conn.execute(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (SCHEMA,)
                ).fetchone()
                return int(row[0]) if row else 0
    except psycopg.Error as e:
        lines = str(e).strip().splitlines()
        raise StorageError(
            f"cannot connect to the database {redact(url)}: {lines[0] if lines else e}"
        ) from None
    return None


def load(url: str, sql: Path) -> None:
    """Run a dump into `url` in one transaction: all of it, or nothing on an error."""
    conninfo, env = _conninfo_and_env(url)
    _run(
        [client_program("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
         "--single-transaction", "--file", str(sql), "--dbname", conninfo],
        env, "restoring the database", url,
    )  # fmt: skip
