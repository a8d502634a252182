"""PostgreSQL storage: the shared backend of nodes that act as one.

Connections come from a psycopg-pool pool; the stores run their few, short
statements from threads (the gateway calls them through asyncio.to_thread or from
its cache refresh), never on the event loop.

Changes are announced with PostgreSQL LISTEN/NOTIFY on the channel `govgw_changes`:
each write runs `pg_notify('govgw_changes', <store>)` in its own transaction, and
one listener thread per process (a dedicated connection) bumps that store's
generation, which the stores' caches compare on their next read. Why LISTEN/NOTIFY
rather than Redis pub/sub: it needs no extra component (a node with a database URL
and no Redis still learns of changes), and it is transactional — PostgreSQL delivers
a notification only when its transaction commits, and in commit order, so a node
never reloads for a change that was rolled back, nor misses one that was committed
between its write and a separate publish. When the listener loses its connection it
reconnects and bumps every generation (whatever changed meanwhile is re-read), so a
database restart costs a reload, not a stale cache.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.storage import (
    DuplicateKey,
    Storage,
    StorageError,
    StorageUnavailable,
    _now,
    migrations,
    redact,
)

log = logging.getLogger("govgw.storage")

CHANNEL = "govgw_changes"
SCHEMA = "govgw"  # every table of govgw lives here (a pg_dump -n govgw takes it all)
# Any constant: serializes migrations of nodes starting together.
_MIGRATION_LOCK = 0x676F7667  # "govg"
CONNECT_TIMEOUT_S = 5
# How long the pool retries one new connection (its backoff doubles from 1 s) before
# giving up; the next call that needs one starts again from 1 s. Short: after a long
# outage the database is used again within seconds of its return, not a minute.
RECONNECT_S = 4


class PostgresStorage(Storage):
    kind = "postgresql"
    shared = True

    def __init__(self, url: str, *, target: int | None = None) -> None:
        self.url = url
        self._where = redact(url)
        self._generations: dict[str, int] = defaultdict(int)
        self._epoch = 0  # bumped on every (re)connect of the listener: all stores stale
        self._gen_lock = threading.Lock()
        self._subscribers: dict[str, list[Callable[[], None]]] = defaultdict(list)
        self._stop = threading.Event()
        self._listening = threading.Event()
        try:
            # Fail fast on a wrong URL (bad syntax, no such host, refused, bad database)
            # with the server's own reason, before a pool starts retrying in the back.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as e:
            raise StorageError(
                f"cannot connect to the database {self._where}: {_reason(e)}"
            ) from None
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=8,
            kwargs={"options": f"-c search_path={SCHEMA}", "connect_timeout": CONNECT_TIMEOUT_S},
            open=False,
            name="govgw",
            # How long a store waits for a connection: while the database is down a
            # call fails closed (StorageUnavailable) after this, not after 30 s.
            timeout=CONNECT_TIMEOUT_S,
            reconnect_timeout=RECONNECT_S,
            # A connection the server dropped (restart, failover) is replaced before use,
            # not handed to a store: a database that comes back is used again by itself.
            check=ConnectionPool.check_connection,
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
            self._migrate(target)
        except migrations.SchemaTooNew as e:
            self.pool.close()
            raise StorageError(f"database {self._where}: {e}") from None
        except (psycopg.Error, PoolTimeout) as e:
            self.pool.close()
            raise StorageError(f"database {self._where}: {_reason(e)}") from None
        self._listener = threading.Thread(target=self._listen, name="govgw-listen", daemon=True)
        self._listener.start()
        # Listening before any store loads: a change made after the load is announced.
        if not self._listening.wait(CONNECT_TIMEOUT_S * 2):
            self.close()
            raise StorageError(f"database {self._where}: cannot LISTEN {CHANNEL}")

    def _migrate(self, target: int | None) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"SET LOCAL search_path TO {SCHEMA}")
            migrations.apply(conn, self.kind, placeholder="%s", now=_now(), target=target)

    # ----- what the stores use -----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.errors.UniqueViolation as e:
            raise DuplicateKey(e.diag.message_primary or "duplicate key") from e
        except (psycopg.OperationalError, PoolTimeout) as e:
            # Connection-level only (refused, lost, server shutting down, no connection
            # in time): constraint and syntax errors stay what they are.
            raise StorageUnavailable(f"the database is unavailable: {_reason(e)}") from None

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def announce(self, db: Any, store: str) -> None:
        db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, store))

    def stamp(self, store: str) -> Hashable:
        return (self._epoch, self._generations[store])

    def subscribe(self, store: str, reload: Callable[[], None]) -> None:
        self._subscribers[store].append(reload)

    def _reload(self, stores: Iterable[str]) -> None:
        """The subscribers' reloads, in the listener thread: the event loop then finds
        its caches current and queries nothing."""
        for store in list(stores):
            for reload in list(self._subscribers.get(store, ())):
                try:
                    reload()
                except Exception as e:  # a failed reload is retried by the next read
                    log.warning("reloading %s after a change failed: %s", store, _reason(e))

    def close(self) -> None:
        self._stop.set()
        self.pool.close()
        if hasattr(self, "_listener"):
            self._listener.join(CONNECT_TIMEOUT_S)

    # ----- the listener ------------------------------------------------------------------

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._gen_lock:
                        self._epoch += 1  # missed nothing before, or re-read all after a gap
                    if self._listening.is_set():
                        self._reload(self._subscribers)
                    self._listening.set()
                    backoff = 0.1
                    while not self._stop.is_set():
                        # The timeout bounds how long close() waits for this thread.
                        for note in conn.notifies(timeout=0.5):
                            with self._gen_lock:
                                self._generations[note.payload] += 1
                            self._reload([note.payload])
            except psycopg.Error as e:
                if self._stop.is_set():
                    return
                log.warning("change listener lost the database: %s; reconnecting", _reason(e))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)


def _reason(e: BaseException) -> str:
    """The server's or libpq's one-line reason, without the URL (it may hold a password)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
