"""The storage seam: where the shared stores live.

`open_storage(database_url, data_dir)` returns the one `Storage` a process uses:

- no URL: SQLite and files in the data directory (the embedded default, as before —
  nothing to install, one node);
- `postgresql://…` (`--database-url` / `GOVGW_DATABASE_URL`): PostgreSQL, shared by
  every node and the `govgw` command, so nodes act as one.

Both apply their schema migrations (storage/migrations.py) at open, and an open that
fails — an unreachable or wrong URL, a schema newer than this govgw — raises
`StorageError` naming the problem before anything else starts: never a half-started
node.

A store talks to its backend through the few calls here: `transaction()` (one
transaction, committed on leaving; a duplicate key raises `DuplicateKey`), `sql()`
(the backend's placeholders), `announce()` (in the writing transaction, tell every
process that a store changed) and `stamp()` (a cheap token that differs once a store
changed, for the stores' in-memory caches).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.files import connect_sqlite, private_dir
from gateway.storage import migrations

ENV_URL = "GOVGW_DATABASE_URL"
SQLITE_FILE = "callers.sqlite"  # the caller registry's file, as before the seam


class StorageError(ValueError):
    """The storage cannot be opened (unreachable, wrong URL, schema too new): a bad
    setting, reported as the command's error, never a traceback."""


class DuplicateKey(Exception):
    """A write hit a unique key (e.g. a caller id that exists)."""


class StorageUnavailable(ConnectionError):
    """The shared database cannot be reached now (refused, connection lost, no
    connection within the pool's wait). Not a bad input and not a defect: the call
    that needed the database fails closed (UNAVAILABLE, reason DATABASE_UNAVAILABLE)
    and a later call succeeds once the database is back. The message never holds
    the URL (it may carry a password). A ConnectionError, so that a command prints it
    as its error, and a cache's reload keeps what it last loaded."""


def database_url(explicit: str | None = None) -> str:
    """The database URL given on the command line, else GOVGW_DATABASE_URL, else ''."""
    return (explicit if explicit is not None else os.environ.get(ENV_URL, "")).strip()


def redact(url: str) -> str:
    """The URL without its password, fit for an error message or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Storage:
    """What the stores use; SqliteStorage and PostgresStorage implement it."""

    kind = ""
    shared = False  # do other nodes see what this storage holds?

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def sql(self, text: str) -> str:
        return text

    def announce(self, db: Any, store: str) -> None:
        """Tell every process, in the writing transaction `db`, that `store` changed."""

    def stamp(self, store: str) -> Hashable:
        raise NotImplementedError

    def subscribe(self, store: str, reload: Callable[[], None]) -> None:
        """Call `reload` (from a background thread) once `store` changed, so a cache is
        refreshed off the event loop; a backend without announcements never calls it."""

    def schema_version(self) -> int:
        with self.transaction() as db:
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        pass


class SqliteStorage(Storage):
    """The embedded default: the caller registry's SQLite file in the data directory.
    Another process's change is seen by a stat of the file (no notification needed
    on one host)."""

    kind = "sqlite"

    def __init__(self, path: Path, *, target: int | None = None) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        try:
            db = connect_sqlite(self.path, timeout=10, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")  # one writer migrates; others wait
                migrations.apply(db, self.kind, placeholder="?", now=_now(), target=target)
                db.execute("COMMIT")
            finally:
                db.close()
        except migrations.SchemaTooNew as e:
            raise StorageError(f"{self.path}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path}: not a usable SQLite database ({e})") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = connect_sqlite(self.path, timeout=10)
        try:
            with db:
                yield db
        except sqlite3.IntegrityError as e:
            raise DuplicateKey(str(e)) from e
        finally:
            db.close()

    def stamp(self, store: str) -> Hashable:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)


def open_storage(url: str | None, data_dir: Path, *, target: int | None = None) -> Storage:
    """The storage for `url` (PostgreSQL) or, with none, the data directory's SQLite.
    `target` stops the migrations at a version (tests of upgrading only)."""
    url = (url or "").strip()
    if not url:
        return SqliteStorage(Path(data_dir) / SQLITE_FILE, target=target)
    scheme = urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres"):
        raise StorageError(
            f"database URL {redact(url)!r}: must start with postgresql:// (got {scheme or 'none'!r})"
        )
    from gateway.storage.postgres import PostgresStorage  # psycopg only when asked for

    return PostgresStorage(url, target=target)
