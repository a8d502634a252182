"""The pool's rows in PostgreSQL (with a database URL): shared by every node.

The database holds what `gateway.pool.codec` makes and nothing else: blind
indexes (keyed HMACs) and sealed rows (AES-256-GCM / SM4-GCM), in the tables
`govgw.pool_datasets`, `pool_dataset_versions` and `pool_records`. A `pg_dump`
shows no name, ID number or phone (tests/storage/test_pool_dump.py checks it).

Reads are a network round trip: the gateway runs them in worker threads (the
pool says `remote`), on a connection pool of their own in autocommit (one
round trip per read: no BEGIN/COMMIT, and no check of the connection before
use; a read that meets a connection the server dropped is tried once more after
the pool is checked). A database that fails a read raises `StorageUnavailable`,
which the pipeline answers as UNAVAILABLE. Writes (imports, rotation steps) take
an advisory lock, so the nodes' and commands' writers go one at a time as on
SQLite, load rows with binary COPY, and announce `pool` in their transaction:
the nodes refresh the dataset versions they hold from the listener thread.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.storage import Storage, StorageError, StorageUnavailable
from gateway.storage.postgres import CONNECT_TIMEOUT_S, RECONNECT_S, SCHEMA

STORE = "pool"  # what a write announces (gateway.storage.Storage.announce)
READERS = 16  # connections for reads; more threads wait CONNECT_TIMEOUT_S for one
SCAN_ROWS = 2_000
ANALYZE_ROWS = 10_000  # an import of more rows refreshes the planner's statistics  # rows a maintenance walk fetches per round trip
_WRITE_LOCK = 0x676F7670  # "govp": one pool writer at a time across nodes
_COPY = "COPY pool_records (dataset_id, bidx, key_version, nonce, ct) FROM STDIN (FORMAT BINARY)"
_SELECT = (
    "SELECT key_version, nonce, ct FROM pool_records"
    " WHERE dataset_id = %s AND bidx = ANY(%s) ORDER BY id"
)
_SELECT_MANY = (
    "SELECT bidx, key_version, nonce, ct FROM pool_records"
    " WHERE dataset_id = %s AND bidx = ANY(%s) ORDER BY id"
)
_cursor_names = itertools.count(1)
T = TypeVar("T")

Sealed = tuple[int, bytes, int, bytes, bytes]


def _reason(e: BaseException) -> str:
    """The server's one-line reason, never the URL (it may hold a password)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class PostgresRows:
    remote = True  # a read is a network round trip: never on the event loop

    def __init__(self, storage: Storage) -> None:
        url: str = getattr(storage, "url")  # noqa: B009 (PostgresStorage only)
        self.storage = storage
        self._local = threading.local()  # the connection of a snapshot() on this thread
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=READERS,
            kwargs={
                "options": f"-c search_path={SCHEMA}",
                "connect_timeout": CONNECT_TIMEOUT_S,
                "autocommit": True,
            },
            open=False,
            name="govgw-pool-rows",
            # As the storage's pool: a call fails closed after this while the database is
            # down, and reconnection starts afresh rather than backing off for a minute.
            timeout=CONNECT_TIMEOUT_S,
            reconnect_timeout=RECONNECT_S,
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout as e:
            self.pool.close()
            raise StorageError(f"pool: cannot connect to the database ({_reason(e)})") from None

    def close(self) -> None:
        self.pool.close()

    # -- reads -------------------------------------------------------------

    def _read(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is not None:  # inside snapshot(): its transaction
            return self._guard(fn, conn)
        try:
            with self.pool.connection() as conn:
                return fn(conn)
        except psycopg.OperationalError:
            # Likely an idle connection the server dropped (a restart): drop those
            # and try once more; a second failure is an outage.
            self.pool.check()
            try:
                with self.pool.connection() as conn:
                    return fn(conn)
            except (psycopg.OperationalError, PoolTimeout) as e:
                raise StorageUnavailable(f"pool: database unavailable ({_reason(e)})") from None
        except PoolTimeout as e:
            raise StorageUnavailable(f"pool: no database connection ({_reason(e)})") from None

    @staticmethod
    def _guard(fn: Callable[[psycopg.Connection[Any]], T], conn: psycopg.Connection[Any]) -> T:
        try:
            return fn(conn)
        except psycopg.OperationalError as e:
            raise StorageUnavailable(f"pool: database unavailable ({_reason(e)})") from None

    def dataset_ids(self, names: Iterable[str]) -> dict[str, int]:
        def run(conn: psycopg.Connection[Any]) -> dict[str, int]:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO pool_datasets (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                    [(n,) for n in names],
                )
                return dict(cur.execute("SELECT name, id FROM pool_datasets").fetchall())

        try:
            return self._read(run)
        except StorageUnavailable as e:
            raise StorageError(str(e)) from None

    def select(self, ds_id: int, bidxs: Sequence[bytes]) -> list[tuple[int, bytes, bytes]]:
        """(key version, nonce, ct) of the rows under any of `bidxs`, in write order."""
        return self._read(lambda c: c.execute(_SELECT, (ds_id, list(bidxs))).fetchall())

    def newest_key_version(self) -> int:
        """The newest pool key version recorded for this database (gateway/keycheck.py
        records each keyring's versions; a rotation records its new one before moving
        any row), 0 for none: a node whose keys are older cannot find moved rows."""
        row = self._read(
            lambda c: c.execute(
                "SELECT max(version) FROM keyring_fingerprints WHERE kind = 'pool'"
            ).fetchone()
        )
        return int(row[0] or 0) if row else 0

    def select_many(
        self, ds_id: int, bidxs: Sequence[bytes]
    ) -> list[tuple[bytes, int, bytes, bytes]]:
        """(bidx, key version, nonce, ct) of the rows under any of `bidxs`, in write
        order: one round trip for a batch's items."""
        if not bidxs:
            return []
        return self._read(lambda c: c.execute(_SELECT_MANY, (ds_id, list(bidxs))).fetchall())

    def _stream(self, query: str, params: tuple[Any, ...]) -> Iterator[Any]:
        """A maintenance walk: a server-side cursor, SCAN_ROWS rows per round trip."""
        name = f"govgw_walk_{next(_cursor_names)}"
        conn = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                with conn.cursor(name=name) as cur:
                    cur.itersize = SCAN_ROWS
                    yield from cur.execute(query, params)
                return
            with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name=name) as cur,
            ):
                cur.itersize = SCAN_ROWS
                yield from cur.execute(query, params)
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise StorageUnavailable(f"pool: database unavailable ({_reason(e)})") from None

    def iter_dataset(self, ds_id: int) -> Iterator[tuple[bytes, int, bytes, bytes]]:
        return self._stream(
            "SELECT bidx, key_version, nonce, ct FROM pool_records WHERE dataset_id = %s",
            (ds_id,),
        )

    def scan(
        self, ds_id: int, after: bytes, inclusive: bool
    ) -> Iterator[tuple[bytes, int, bytes, bytes]]:
        op = ">=" if inclusive else ">"
        return self._stream(
            "SELECT bidx, key_version, nonce, ct FROM pool_records"
            f" WHERE dataset_id = %s AND bidx {op} %s ORDER BY bidx, id",
            (ds_id, after),
        )

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads on this thread in the block see one state (REPEATABLE READ)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise StorageUnavailable(f"pool: database unavailable ({_reason(e)})") from None

    def versions(self) -> dict[str, str]:
        return dict(self._read(lambda c: c.execute("SELECT name, version FROM pool_datasets")))

    def count(self, ds_id: int) -> int:
        found = self._read(
            lambda c: c.execute("SELECT rows FROM pool_datasets WHERE id = %s", (ds_id,)).fetchone()
        )
        return int(found[0])

    def history(self, ds_id: int) -> list[dict[str, Any]]:
        def run(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            cur = conn.execute(
                "SELECT version, rows, batch_rows, replace_all, imported_at"
                " FROM pool_dataset_versions WHERE dataset_id = %s ORDER BY seq DESC",
                (ds_id,),
            )
            cols = [d.name for d in cur.description or ()]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

        return self._read(run)

    def rows_not_on(self, version: int) -> int:
        found = self._read(
            lambda c: c.execute(
                "SELECT count(*) FROM pool_records WHERE key_version != %s", (version,)
            ).fetchone()
        )
        return int(found[0])

    # -- writes ------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction; writers of every node and command go one at a time."""
        try:
            with self.pool.connection() as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                    writer = _Writer(conn)
                    yield writer
                    if writer.changed:
                        self.storage.announce(conn, STORE)
                if writer.inserted > ANALYZE_ROWS:
                    # Fresh statistics now, not when autovacuum comes by: a planner
                    # that knows no rows may scan the whole table for each lookup.
                    conn.execute("ANALYZE pool_records")
        except (psycopg.Error, PoolTimeout) as e:
            raise StorageError(f"pool: the database refused the write ({_reason(e)})") from None


class _Writer:
    """The statements of one write transaction (`PostgresRows.write`)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.changed = False
        self.inserted = 0

    def header(self, ds_id: int) -> tuple[int, int]:
        found = self.conn.execute(
            "SELECT rows, seq FROM pool_datasets WHERE id = %s", (ds_id,)
        ).fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    def delete_dataset(self, ds_id: int) -> int:
        return self.conn.execute(
            "DELETE FROM pool_records WHERE dataset_id = %s", (ds_id,)
        ).rowcount

    def delete_subjects(self, ds_id: int, bidxs: Sequence[bytes]) -> int:
        return self.conn.execute(
            "DELETE FROM pool_records WHERE dataset_id = %s AND bidx = ANY(%s)",
            (ds_id, list(bidxs)),
        ).rowcount

    def insert(self, sealed: Sequence[Sealed]) -> None:
        # Binary COPY: a million rows load in tens of seconds, not the hours of
        # one INSERT per row over the network.
        with self.conn.cursor().copy(_COPY) as copy:
            copy.set_types(["int4", "bytea", "int4", "bytea", "bytea"])
            for row in sealed:
                copy.write_row(row)
        self.changed = True
        self.inserted += len(sealed)

    def finish(
        self, ds_id: int, seq: int, version: str, total: int, batch: int, replace: bool, at: str
    ) -> None:
        self.conn.execute(
            "UPDATE pool_datasets SET seq = %s, version = %s, rows = %s WHERE id = %s",
            (seq, version, total, ds_id),
        )
        self.conn.execute(
            "INSERT INTO pool_dataset_versions"
            " (dataset_id, seq, version, rows, batch_rows, replace_all, imported_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (ds_id, seq, version, total, batch, int(replace), at),
        )
        self.changed = True

    def subjects_after(self, ds_id: int, after: bytes, limit: int) -> list[bytes]:
        cur = self.conn.execute(
            "SELECT DISTINCT bidx FROM pool_records WHERE dataset_id = %s AND bidx > %s"
            " ORDER BY bidx LIMIT %s",
            (ds_id, after, limit),
        )
        return [bytes(b) for (b,) in cur]

    def rows_off(
        self, ds_id: int, bidx: bytes, version: int
    ) -> list[tuple[int, int, bytes, bytes]]:
        """(id, key version, nonce, ct) of the subject's rows not on `version`."""
        return self.conn.execute(
            "SELECT id, key_version, nonce, ct FROM pool_records"
            " WHERE dataset_id = %s AND bidx = %s AND key_version != %s ORDER BY id",
            (ds_id, bidx, version),
        ).fetchall()

    def update(self, updates: Sequence[tuple[bytes, int, bytes, bytes, int]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE pool_records SET bidx = %s, key_version = %s, nonce = %s, ct = %s"
                " WHERE id = %s",
                updates,
            )
        self.changed = self.changed or bool(updates)

    def rows_not_on(self, version: int) -> int:
        found = self.conn.execute(
            "SELECT count(*) FROM pool_records WHERE key_version != %s", (version,)
        ).fetchone()
        assert found is not None
        return int(found[0])
