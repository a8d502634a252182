"""The pool's rows in the embedded SQLite file (`pool.sqlite`, the default).

The gateway reads from many gRPC worker threads at once: every thread gets its
own connection (sqlite3 connections must not be shared mid-statement), and WAL
mode lets those readers run while an import writes. Writers are ordered by
BEGIN IMMEDIATE across processes and by a lock inside one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.files import open_private, private_dir
from gateway.pool.codec import PoolError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    seq     INTEGER NOT NULL DEFAULT 0,
    version TEXT NOT NULL DEFAULT '',
    rows    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dataset_versions (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
    seq         INTEGER NOT NULL,
    version     TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    batch_rows  INTEGER NOT NULL,
    replace_all INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, seq)
);
CREATE TABLE IF NOT EXISTS records (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL,
    bidx        BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    nonce       BLOB NOT NULL,
    ct          BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_subject ON records (dataset_id, bidx);
"""

_SELECT_SUBJECT = (
    "SELECT key_version, nonce, ct FROM records WHERE dataset_id = ? AND bidx = ? ORDER BY id"
)
_DELETE_SUBJECT = "DELETE FROM records WHERE dataset_id = ? AND bidx = ?"
_INSERT = "INSERT INTO records (dataset_id, bidx, key_version, nonce, ct) VALUES (?, ?, ?, ?, ?)"
# A write of more rows than this checkpoints the WAL at once (see Writer.close).
CHECKPOINT_ROWS = 10_000

Sealed = tuple[int, bytes, int, bytes, bytes]  # dataset id, bidx, key version, nonce, ct


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


class SqliteRows:
    """Sealed rows in the data directory's SQLite file; safe to share between threads."""

    remote = False  # reads are local file reads: fine on the event loop

    def newest_key_version(self) -> int:
        """0: a data directory's own pool lives beside its own keyring (nothing newer)."""
        return 0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        # Weak, so that a finished thread's connection closes with its
        # thread-local storage; close() closes whatever is still alive.
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        # Create the file ourselves so that it is private from the first byte;
        # SQLite gives the -wal and -shm files the same mode. A pool made by an
        # older govgw is tightened here (gateway.files).
        private_dir(self.path.parent)
        os.close(open_private(self.path, os.O_RDONLY))

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
            factory=_Connection,
        )
        # An import that returned is on disk, power cut or not.
        conn.execute("PRAGMA synchronous=FULL")
        # A million-row import leaves a WAL as big as the pool; once it is
        # checkpointed, give the space back. (mmap was measured: no faster
        # for lookups, and it bloats the server's resident size.)
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("PRAGMA cache_size=-8192")
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    def _conn(self) -> _Connection:
        if self._closed:
            raise PoolError("the pool is closed")
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._conns_lock:
                if self._closed:
                    conn.close()
                    raise PoolError("the pool is closed")
                self._conns.add(conn)
            self._local.conn = conn
        return conn

    def dataset_ids(self, names: Iterable[str]) -> dict[str, int]:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        # Every statement is IF NOT EXISTS, so two processes racing here is harmless.
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
            elif found[0] != SCHEMA_VERSION:
                raise PoolError(
                    f"pool file has schema version {found[0]}, this gateway needs {SCHEMA_VERSION}"
                )
            conn.executemany(
                "INSERT OR IGNORE INTO datasets (name) VALUES (?)", [(n,) for n in names]
            )
            ids = dict(conn.execute("SELECT name, id FROM datasets").fetchall())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            conn.close()

    # -- reads -------------------------------------------------------------

    def select(self, ds_id: int, bidxs: Sequence[bytes]) -> list[tuple[int, bytes, bytes]]:
        """(key version, nonce, ct) of the rows under any of `bidxs`, in write order."""
        if len(bidxs) == 1:
            return self._conn().execute(_SELECT_SUBJECT, (ds_id, bidxs[0])).fetchall()
        return [row[1:] for row in self.select_many(ds_id, bidxs)]  # mid-rotation

    def select_many(
        self, ds_id: int, bidxs: Sequence[bytes]
    ) -> list[tuple[bytes, int, bytes, bytes]]:
        """(bidx, key version, nonce, ct) of the rows under any of `bidxs`, in write
        order: one query for a batch's items (SQLite's bound-parameter limit, 32,766
        since 3.32, is far above the batch path's chunk)."""
        if not bidxs:
            return []
        marks = ",".join("?" * len(bidxs))
        return (
            self._conn()
            .execute(
                "SELECT bidx, key_version, nonce, ct FROM records WHERE dataset_id = ?"
                f" AND bidx IN ({marks}) ORDER BY id",
                (ds_id, *bidxs),
            )
            .fetchall()
        )

    def iter_dataset(self, ds_id: int) -> Iterator[tuple[bytes, int, bytes, bytes]]:
        yield from self._conn().execute(
            "SELECT bidx, key_version, nonce, ct FROM records WHERE dataset_id = ?", (ds_id,)
        )

    def scan(
        self, ds_id: int, after: bytes, inclusive: bool
    ) -> Iterator[tuple[bytes, int, bytes, bytes]]:
        op = ">=" if inclusive else ">"
        cur = self._conn().execute(
            "SELECT bidx, key_version, nonce, ct FROM records"
            f" WHERE dataset_id = ? AND bidx {op} ? ORDER BY bidx, id",
            (ds_id, after),
        )
        try:
            yield from cur
        finally:
            cur.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction in WAL mode: imports go on meanwhile, unseen."""
        conn = self._conn()
        if conn.in_transaction:  # already inside one: it is the snapshot
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def versions(self) -> dict[str, str]:
        return dict(self._conn().execute("SELECT name, version FROM datasets").fetchall())

    def count(self, ds_id: int) -> int:
        found = self._conn().execute("SELECT rows FROM datasets WHERE id = ?", (ds_id,)).fetchone()
        return int(found[0])

    def history(self, ds_id: int) -> list[dict[str, Any]]:
        cur = self._conn().execute(
            "SELECT version, rows, batch_rows, replace_all, imported_at FROM dataset_versions"
            " WHERE dataset_id = ? ORDER BY seq DESC",
            (ds_id,),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def rows_not_on(self, version: int) -> int:
        found = (
            self._conn()
            .execute("SELECT count(*) FROM records WHERE key_version != ?", (version,))
            .fetchone()
        )
        return int(found[0])

    # -- writes ------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction, the only one of every process on this file."""
        conn = self._conn()
        writer = _Writer(conn)
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield writer
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if writer.inserted > CHECKPOINT_ROWS:
                # Copy the big WAL into the pool now and shrink it, rather
                # than leave a second copy of the pool on disk. Best effort:
                # a busy reader only defers this to the next checkpoint.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class _Writer:
    """The statements of one write transaction (`SqliteRows.write`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.inserted = 0

    def header(self, ds_id: int) -> tuple[int, int]:
        """(rows, seq) of the dataset now."""
        rows, seq = self.conn.execute(
            "SELECT rows, seq FROM datasets WHERE id = ?", (ds_id,)
        ).fetchone()
        return int(rows), int(seq)

    def delete_dataset(self, ds_id: int) -> int:
        return self.conn.execute("DELETE FROM records WHERE dataset_id = ?", (ds_id,)).rowcount

    def delete_subjects(self, ds_id: int, bidxs: Sequence[bytes]) -> int:
        return self.conn.executemany(_DELETE_SUBJECT, [(ds_id, b) for b in bidxs]).rowcount

    def insert(self, sealed: Sequence[Sealed]) -> None:
        self.conn.executemany(_INSERT, sealed)
        self.inserted += len(sealed)

    def finish(
        self, ds_id: int, seq: int, version: str, total: int, batch: int, replace: bool, at: str
    ) -> None:
        self.conn.execute(
            "UPDATE datasets SET seq = ?, version = ?, rows = ? WHERE id = ?",
            (seq, version, total, ds_id),
        )
        self.conn.execute(
            "INSERT INTO dataset_versions"
            " (dataset_id, seq, version, rows, batch_rows, replace_all, imported_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ds_id, seq, version, total, batch, int(replace), at),
        )

    def subjects_after(self, ds_id: int, after: bytes, limit: int) -> list[bytes]:
        return [
            b
            for (b,) in self.conn.execute(
                "SELECT DISTINCT bidx FROM records WHERE dataset_id = ? AND bidx > ?"
                " ORDER BY bidx LIMIT ?",
                (ds_id, after, limit),
            )
        ]

    def rows_off(
        self, ds_id: int, bidx: bytes, version: int
    ) -> list[tuple[int, int, bytes, bytes]]:
        """(id, key version, nonce, ct) of the subject's rows not on `version`."""
        return self.conn.execute(
            "SELECT id, key_version, nonce, ct FROM records"
            " WHERE dataset_id = ? AND bidx = ? AND key_version != ? ORDER BY id",
            (ds_id, bidx, version),
        ).fetchall()

    def update(self, updates: Sequence[tuple[bytes, int, bytes, bytes, int]]) -> None:
        self.conn.executemany(
            "UPDATE records SET bidx = ?, key_version = ?, nonce = ?, ct = ? WHERE id = ?",
            updates,
        )

    def rows_not_on(self, version: int) -> int:
        found = self.conn.execute(
            "SELECT count(*) FROM records WHERE key_version != ?", (version,)
        ).fetchone()
        return int(found[0])
