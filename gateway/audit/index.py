"""The audit index: what the audit trail's readers query, without reading it whole.

Usage reports, a data subject's "who used my data", the unused-grant sweep,
emergency sealing lists and the policy impact replay used to read every audit
chain from its first record on every call. A county gateway writes about
100k records a day, so that grew to gigabytes per call. This index is a SQLite
database in the data directory (Layout.audit_index) holding, per record, only
what the audit already holds and the queries need: chain file, seq, byte
offset, time, request id, the caller metadata (caller, kind, department,
purpose, action, dataset, outcome; stored once per distinct combination),
the keyed subject hash, and the ids of the emergencies whose plans it used.
Grant ids are kept as what the sweep asks of them: per chain file and grant,
the newest successful use. No new personal data: subject hashes are the
keyed hashes the trail already carries.

It is derived data: `govgw audit reindex` (or deleting the file) rebuilds it
from the chains, and the writer (gateway.audit.log) knows nothing of it; the
index is built from the files. Each reader calls `refresh()` first (in a
worker thread), which reads only what was appended to each chain since the
last refresh:

- per chain file the index keeps how far it got: byte offset, seq and hash
  of the last indexed record (the anchor). A refresh first re-reads the
  anchor; if the file is shorter or the anchor is not the record indexed
  there, the file was replaced, truncated or rewritten below the indexed
  point: its rows are dropped and it is indexed from scratch (a warning is
  logged), so rows of a vanished chain are never served;
- each new record must carry its own hash, the next seq and the anchor's hash
  as `prev`. A record that does not stops the file's indexing there (a broken
  chain: `govgw audit verify` names the break; index-status shows it). Records
  after a break are not served, as nothing after it can be trusted;
- a torn last line (a writer mid-append, or a crash) is left for the next
  refresh.

Several gateway worker processes and the CLI may refresh at once: each chunk
of new records is read and written inside one `BEGIN IMMEDIATE` transaction
that first re-reads the file's progress, so two refreshers serialize chunk by
chunk and never index a record twice; readers (WAL mode) are not blocked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gateway.audit.chain import (
    BaseAuditIndex,
    FileState,
    FileStatus,
    IndexStale,
    RefreshStats,
    anchor_holds,
    read_chunk,
    warn_if_newly_broken,
)
from gateway.audit.index_queries import _ALL_TABLES, _SCHEMA, _TABLES, SqliteQueries, subject_key
from gateway.audit.log import GENESIS
from gateway.files import connect_sqlite, private_dir

# Re-exported: the readers and tests import them from here, as before the split.
__all__ = ["AuditIndex", "BaseAuditIndex", "FileStatus", "IndexStale", "RefreshStats"]

log = logging.getLogger("govgw.audit.index")

SCHEMA_VERSION = "1"
BUSY_TIMEOUT_S = 60.0


class AuditIndex(SqliteQueries, BaseAuditIndex):
    """The index of the chains `audit_files()` lists, kept at `path`.

    Holds no connection: each call opens its own (a few hundred microseconds),
    so one object serves every thread of a process."""

    def __init__(self, path: Path, audit_files: Callable[[], Iterable[Path]]) -> None:
        self.path = Path(path)
        self.audit_files = audit_files
        self._generation = ""
        self._shape_ids: dict[tuple[str, ...], int] = {}

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> AuditIndex:
        from gateway.config import Layout

        layout = Layout(Path(data_dir))
        return cls(layout.audit_index, layout.audit_files)

    # -- connections --------------------------------------------------------

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    def _connect(self, retry: bool = True) -> sqlite3.Connection:
        private_dir(self.path.parent)
        db = connect_sqlite(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # derived data: a lost tail is re-read
            # Indexing inserts by subject hash and caller metadata, i.e. at random
            # places in two indexes: a larger page cache keeps that from seeking.
            db.execute("PRAGMA cache_size=-65536")
            # Checked on every connection: the file may have been deleted (it is
            # derived data) or built by another govgw version meanwhile.
            try:
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            except sqlite3.OperationalError:
                row = None
            if row is None or row[0] != SCHEMA_VERSION:
                self._ensure_schema(db)
        except sqlite3.OperationalError:
            db.close()
            raise
        except sqlite3.DatabaseError:
            db.close()
            if not retry:
                raise
            # Not a database (any more): derived data, so set it aside and rebuild.
            log.warning("audit index %s is unreadable; rebuilding it", self.path)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}{suffix}", f"{self.path}{suffix}.corrupt")
            return self._connect(retry=False)
        return db

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            version = (
                db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if exists
                else None
            )
            if version is None or version[0] != SCHEMA_VERSION:
                # Another layout (an older govgw): derived data, so start afresh.
                for table in (*_ALL_TABLES, "meta"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                    (SCHEMA_VERSION,),
                )
                # A new database (the old one deleted, or another layout): cached
                # shape ids of the old one must not be used with it.
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', ?)",
                    (secrets.token_hex(8),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _key(self, path: Path) -> str:
        real = os.path.realpath(path)
        home = os.path.realpath(self.path.parent)
        rel = os.path.relpath(real, home)
        # Relative inside the data directory, so a moved data directory keeps its index.
        return rel if not rel.startswith("..") else real

    def _files(self) -> list[Path]:
        return [Path(p) for p in self.audit_files()]

    # -- refreshing ---------------------------------------------------------

    def refresh(self, progress: Callable[[int], None] | None = None) -> RefreshStats:
        """Index what was appended to every chain since the last refresh
        (`progress(bytes)` after each chunk)."""
        started = time.monotonic()
        added = 0
        reindexed: list[str] = []
        files = self._files()
        with self._db() as db:
            self._forget_vanished(db)
            for path in files:
                n, fresh = self._refresh_file(db, path, progress)
                added += n
                if fresh:
                    reindexed.append(path.name)
        return RefreshStats(added, tuple(reindexed), time.monotonic() - started)

    def rebuild(self, progress: Callable[[int], None] | None = None) -> RefreshStats:
        """Drop everything and index every chain from its start."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        with contextlib.suppress(sqlite3.Error), self._db() as db:
            db.execute("VACUUM")  # give the space back; a busy reader only delays that
        return self.refresh(progress)

    def _forget_vanished(self, db: sqlite3.Connection) -> None:
        gone = [
            (fid, key)
            for fid, key in db.execute("SELECT id, path FROM files").fetchall()
            if not self._resolve(key).exists()
        ]
        for fid, key in gone:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM files WHERE id=?", (fid,)).fetchone():
                    self._drop_rows(db, fid)
                    db.execute("DELETE FROM files WHERE id=?", (fid,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            log.warning("audit index: chain %s is gone; its rows were dropped", key)

    def _resolve(self, key: str) -> Path:
        p = Path(key)
        return p if p.is_absolute() else self.path.parent / p

    @staticmethod
    def _drop_rows(db: sqlite3.Connection, fid: int) -> None:
        db.execute(
            "DELETE FROM record_emergencies WHERE rec IN (SELECT id FROM records WHERE file_id=?)",
            (fid,),
        )
        db.execute("DELETE FROM records WHERE file_id=?", (fid,))
        db.execute("DELETE FROM grant_uses WHERE file_id=?", (fid,))

    def _state(self, db: sqlite3.Connection, path: Path) -> FileState:
        key = self._key(path)
        row = db.execute(
            'SELECT id, "offset", last_start, seq, hash, broken FROM files WHERE path=?', (key,)
        ).fetchone()
        if row is None:
            cur = db.execute(
                'INSERT INTO files (path, name, "offset", last_start, seq, hash) '
                "VALUES (?, ?, 0, 0, 0, ?)",
                (key, path.name, GENESIS),
            )
            return FileState(int(cur.lastrowid or 0), 0, 0, 0, GENESIS, "")
        return FileState(*row)

    def _refresh_file(
        self, db: sqlite3.Connection, path: Path, progress: Callable[[int], None] | None = None
    ) -> tuple[int, bool]:
        """(records added, whether the file was indexed afresh) for one chain."""
        added, fresh = 0, False
        reported: int | None = None  # file offset progress was last reported at
        try:
            f = open(path, "rb")  # noqa: SIM115 - held across the chunk loop
        except FileNotFoundError:
            return 0, False
        with f:
            while True:
                db.execute("BEGIN IMMEDIATE")
                try:
                    st = self._state(db, path)
                    size = os.fstat(f.fileno()).st_size
                    if st.offset and not anchor_holds(f, st, size):
                        log.warning(
                            "audit index: chain %s was replaced, truncated or rewritten below "
                            "the indexed point (seq %d); indexing it from scratch",
                            path.name,
                            st.seq,
                        )
                        self._drop_rows(db, st.id)
                        db.execute(
                            'UPDATE files SET "offset"=0, last_start=0, seq=0, hash=?, '
                            "records=0, broken='', reindexed=reindexed+1 WHERE id=?",
                            (GENESIS, st.id),
                        )
                        st = FileState(st.id, 0, 0, 0, GENESIS, "")
                        fresh = True
                    if reported is None:
                        reported = st.offset
                    n, more = self._index_chunk(db, f, path, st, size)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    self._shape_ids = {}  # ids cached in the rolled-back transaction
                    raise
                added += n
                if progress is not None:
                    at = f.tell() if more else size
                    progress(max(0, at - reported))
                    reported = at
                if not more:
                    return added, fresh

    def _index_chunk(
        self, db: sqlite3.Connection, f: Any, path: Path, st: FileState, size: int
    ) -> tuple[int, bool]:
        """Index complete lines from st.offset, up to about CHUNK_BYTES; (added, more to do)."""
        chunk = read_chunk(f, st, size)
        if not chunk.rows and not chunk.broken:
            return 0, False  # nothing new, or only a torn line: a writer mid-append
        (generation,) = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        if generation != self._generation:
            self._generation, self._shape_ids = generation, {}
        shapes = self._shape_ids
        rows: list[tuple[Any, ...]] = []
        emergencies: list[tuple[str, int]] = []  # (emergency id, index into rows)
        for row in chunk.rows:
            sid = shapes.get(row.shape)
            if sid is None:
                sid = shapes[row.shape] = self._shape(db, row.shape)
            rows.append(
                (
                    st.id,
                    row.seq,
                    row.offset,
                    row.ts_us,
                    row.ts_raw,
                    row.request_id,
                    sid,
                    None if row.subject is None else subject_key(row.subject),
                )
            )
            emergencies.extend((em, len(rows) - 1) for em in row.emergencies)
        db.executemany(
            'INSERT INTO records (file_id, seq, "offset", ts_us, ts_raw, request_id, shape, '
            "subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if emergencies:
            # The rows just went in, in order, under this transaction's write lock,
            # so their ids are the last len(rows) ones.
            (last_id,) = db.execute("SELECT max(id) FROM records").fetchone()
            first = int(last_id) - len(rows) + 1
            db.executemany(
                "INSERT OR IGNORE INTO record_emergencies (emergency_id, rec) VALUES (?, ?)",
                [(em, first + i) for em, i in emergencies],
            )
        db.executemany(
            "INSERT INTO grant_uses (file_id, grant_id, ts_us) VALUES (?, ?, ?) "
            "ON CONFLICT (file_id, grant_id) DO UPDATE SET ts_us=max(ts_us, excluded.ts_us)",
            [(st.id, g, us) for g, us in chunk.grant_last.items()],
        )
        warn_if_newly_broken(path, chunk.broken, st.broken)
        db.execute(
            'UPDATE files SET "offset"=?, last_start=?, seq=?, hash=?, broken=?, '
            "records=records+? WHERE id=?",
            (chunk.offset, chunk.last_start, chunk.seq, chunk.hash, chunk.broken, len(rows), st.id),
        )
        return len(rows), chunk.more

    @staticmethod
    def _shape(db: sqlite3.Connection, shape: tuple[str, ...]) -> int:
        row = db.execute(
            "SELECT id FROM shapes WHERE caller=? AND caller_kind=? AND department=? AND "
            "purpose=? AND action=? AND dataset=? AND outcome=?",
            shape,
        ).fetchone()
        if row is not None:
            return int(row[0])
        cur = db.execute(
            "INSERT INTO shapes (caller, caller_kind, department, purpose, action, dataset, "
            "outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
            shape,
        )
        sid = int(cur.lastrowid or 0)
        db.executemany(
            "INSERT OR IGNORE INTO shape_datasets (dataset, shape) VALUES (?, ?)",
            [(d, sid) for d in set(shape[5].split(","))],
        )
        return sid

    # -- status -------------------------------------------------------------

    def status(self) -> list[FileStatus]:
        """How far each chain is indexed (without refreshing)."""
        out = []
        with self._db() as db:
            known = {
                row[0]: row[1:]
                for row in db.execute(
                    'SELECT path, records, "offset", seq, broken, reindexed FROM files'
                ).fetchall()
            }
            for path in self._files():
                size = path.stat().st_size if path.exists() else 0
                row = known.get(self._key(path))
                if row is None:
                    out.append(FileStatus(str(path), 0, 0, 0, size, "", 0))
                    continue
                count, offset, seq, broken, reindexed = row
                out.append(FileStatus(str(path), count, seq, offset, size, broken, reindexed))
        return out

    def size_bytes(self) -> int:
        return sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
