"""The in-process state's file in the data directory (`state.sqlite`, 0600).

`InProcessState` keeps its windows in memory and hands this module, about
once a second, only what changed since the last time: new hits, members
seen again, claims, idempotency values and the suspension list. Writing is
done on a worker thread, so the event loop never waits on the disk, and a
write costs in proportion to the calls since the last one, not to the size
of the windows (an hour-long window may hold millions of hits).

Rows carry their expiry time; expired rows are deleted now and then and on
load, so the file holds about what the windows hold. Entries trimmed from
memory early (a reinstated caller's answers before `since`) may come back on
load: every reader trims them again before counting, so the result is the
same.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from gateway.files import connect_sqlite

logger = logging.getLogger("govgw.state")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, window_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS hits (log INTEGER NOT NULL, t REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS hits_expires ON hits (expires);
CREATE TABLE IF NOT EXISTS members (
  log INTEGER NOT NULL, member TEXT NOT NULL, t REAL NOT NULL, expires REAL NOT NULL,
  UNIQUE (log, member));
CREATE INDEX IF NOT EXISTS members_expires ON members (expires);
CREATE TABLE IF NOT EXISTS suspended (caller TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS vals (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
"""

# Deleting expired rows scans an index: once a minute (at a 1 s interval) is plenty.
PURGE_EVERY = 60


@dataclass
class LogDelta:
    key: str
    window_s: float
    hits: bytes  # array('d') of hit times appended since the last write, in order
    members: list[tuple[str, float]]  # members seen since the last write, oldest first


@dataclass
class Batch:
    """What changed since the last write, copied on the event loop."""

    now: float
    logs: list[LogDelta] = field(default_factory=list)
    claims: list[tuple[str, float]] = field(default_factory=list)
    values: list[tuple[str, str | None, float]] = field(default_factory=list)  # None: forgotten
    suspended: dict[str, str] | None = None  # the whole list, when it changed

    def __bool__(self) -> bool:
        return bool(self.logs or self.claims or self.values or self.suspended is not None)


@dataclass
class Loaded:
    logs: dict[
        str, tuple[float, list[float], list[tuple[str, float]]]
    ]  # key -> window, hits, members
    suspended: dict[str, str]
    claims: dict[str, float]
    values: dict[str, tuple[str, float]]


class SnapshotFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Used from one thread at a time (the lock), but not always the same one.
        self._db = connect_sqlite(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._ids: dict[str, tuple[int, float]] = {}  # log key -> row id, window stored
        self._writes = 0
        with self._lock:
            # FULL: each write (once a second, on a worker thread) is fsynced, so
            # a power cut too loses no more than the documented interval.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def load(self, now: float) -> Loaded:
        """Everything still live at `now`; expired rows are deleted first."""
        with self._lock:
            self._purge(now)
            names = {
                i: (k, w) for i, k, w in self._db.execute("SELECT id, key, window_s FROM logs")
            }
            logs: dict[str, tuple[float, list[float], list[tuple[str, float]]]] = {
                k: (w, [], []) for k, w in names.values()
            }
            # rowid order is write order: the order the deques and dicts had.
            for i, t in self._db.execute("SELECT log, t FROM hits ORDER BY rowid"):
                logs[names[i][0]][1].append(t)
            for i, m, t in self._db.execute("SELECT log, member, t FROM members ORDER BY rowid"):
                logs[names[i][0]][2].append((m, t))
            self._ids = {k: (i, w) for i, (k, w) in names.items()}
            return Loaded(
                logs,
                dict(self._db.execute("SELECT caller, reason FROM suspended")),
                dict(self._db.execute("SELECT key, expires FROM claims")),
                {k: (v, e) for k, v, e in self._db.execute("SELECT key, value, expires FROM vals")},
            )

    def write(self, batch: Batch) -> None:
        """Apply one batch in one transaction (on a worker thread)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for d in batch.logs:
                    i = self._id(d.key, d.window_s)
                    times = array("d")
                    times.frombytes(d.hits)
                    db.executemany(
                        "INSERT INTO hits (log, t, expires) VALUES (?, ?, ?)",
                        [(i, t, t + d.window_s) for t in times],
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO members (log, member, t, expires) VALUES (?,?,?,?)",
                        [(i, m, t, t + d.window_s) for m, t in d.members],
                    )
                db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?)", batch.claims)
                db.executemany(
                    "DELETE FROM vals WHERE key = ?",
                    [(k,) for k, v, _ in batch.values if v is None],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO vals VALUES (?, ?, ?)",
                    [(k, v, e) for k, v, e in batch.values if v is not None],
                )
                if batch.suspended is not None:
                    db.execute("DELETE FROM suspended")
                    db.executemany("INSERT INTO suspended VALUES (?, ?)", batch.suspended.items())
                self._writes += 1
                if self._writes % PURGE_EVERY == 0:
                    self._purge(batch.now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._ids.clear()  # ids inserted in the rolled-back transaction are gone
                raise

    def _id(self, key: str, window_s: float) -> int:
        known = self._ids.get(key)
        if known is not None and known[1] >= window_s:
            return known[0]
        # New here, or used with a longer window than stored (the sweep keeps the longest).
        self._db.execute(
            "INSERT INTO logs (key, window_s) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET window_s = max(window_s, excluded.window_s)",
            (key, window_s),
        )
        i, w = self._db.execute("SELECT id, window_s FROM logs WHERE key = ?", (key,)).fetchone()
        self._ids[key] = (i, w)
        return int(i)

    def _purge(self, now: float) -> None:
        for table in ("hits", "members", "claims", "vals"):
            self._db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))
        self._db.execute(
            "DELETE FROM logs WHERE id NOT IN (SELECT log FROM hits)"
            " AND id NOT IN (SELECT log FROM members)"
        )
        self._ids.clear()

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as e:
                logger.warning("closing %s: %s", self.path.name, type(e).__name__)
