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
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.audit.log import GENESIS, record_hash, utc_timestamp
from gateway.files import connect_sqlite, private_dir

log = logging.getLogger("govgw.audit.index")

SCHEMA_VERSION = "1"
# New records read and written per transaction: small enough that a second
# refresher (another worker) waits well under a second for its turn, large
# enough that the commit cost is spread over thousands of records.
CHUNK_BYTES = 4 * 1024 * 1024
BUSY_TIMEOUT_S = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HASH_SUFFIX_LEN = len(b',"hash":"') + 64 + len(b'"}\n')
SHAPE_COLUMNS = ("caller", "caller_kind", "department", "purpose", "action", "dataset", "outcome")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,       -- relative to the index's directory when inside it
    name TEXT NOT NULL,
    "offset" INTEGER NOT NULL,       -- bytes indexed (the end of the last indexed record)
    last_start INTEGER NOT NULL,     -- where the last indexed record begins
    seq INTEGER NOT NULL,            -- its seq (0: none yet)
    hash TEXT NOT NULL,              -- its hash (GENESIS: none yet)
    records INTEGER NOT NULL DEFAULT 0,
    broken TEXT NOT NULL DEFAULT '', -- why indexing stopped before the end, if it did
    reindexed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS shapes (
    id INTEGER PRIMARY KEY,
    caller TEXT NOT NULL, caller_kind TEXT NOT NULL, department TEXT NOT NULL,
    purpose TEXT NOT NULL, action TEXT NOT NULL, dataset TEXT NOT NULL, outcome TEXT NOT NULL,
    UNIQUE (caller, caller_kind, department, purpose, action, dataset, outcome)
);
-- The datasets a shape's comma-separated `dataset` names (a call on several).
CREATE TABLE IF NOT EXISTS shape_datasets (
    dataset TEXT NOT NULL, shape INTEGER NOT NULL, PRIMARY KEY (dataset, shape)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    ts_us INTEGER,          -- microseconds since 1970 (NULL: no readable ts)
    ts_raw TEXT,            -- the ts text when it is not ts_us's canonical rendering
    request_id TEXT,        -- NULL when the record has none
    shape INTEGER NOT NULL,
    subject                 -- the keyed subject hash, as 32 bytes when it is 64 hex
                            -- digits (half the size in the row and its index), else
                            -- as text (NULL: none)
);
CREATE INDEX IF NOT EXISTS records_file ON records (file_id, ts_us);
CREATE INDEX IF NOT EXISTS records_shape ON records (shape, ts_us);
CREATE INDEX IF NOT EXISTS records_subject ON records (subject, ts_us) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS record_emergencies (
    emergency_id TEXT NOT NULL, rec INTEGER NOT NULL, PRIMARY KEY (emergency_id, rec)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grant_uses (
    file_id INTEGER NOT NULL, grant_id TEXT NOT NULL, ts_us INTEGER NOT NULL,
    PRIMARY KEY (file_id, grant_id)
) WITHOUT ROWID;
"""
# Emptied by a rebuild. Shapes stay: a dictionary of caller metadata, whose ids
# a process caches (see AuditIndex._shape_ids) for as long as the database
# generation lasts.
_TABLES = ("files", "records", "record_emergencies", "grant_uses")
_ALL_TABLES = (*_TABLES, "shapes", "shape_datasets")


class IndexStale(Exception):
    """A chain changed between the refresh and the read of a full record."""


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _ts_us(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # As the readers' parse_time: a time without zone is read as local time.
    return to_us(at.astimezone(UTC))


@dataclass(frozen=True)
class FileStatus:
    path: str
    records: int
    seq: int
    indexed_bytes: int
    size: int  # on disk now
    broken: str  # why indexing stopped before the end ("" when it did not)
    reindexed: int  # times the file was found replaced or truncated and indexed afresh

    @property
    def pending_bytes(self) -> int:
        return max(self.size - self.indexed_bytes, 0)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "pending_bytes": self.pending_bytes}


@dataclass(frozen=True)
class RefreshStats:
    records: int  # records newly indexed
    reindexed: tuple[str, ...]  # files indexed from scratch because they changed
    seconds: float


@dataclass
class _FileState:
    id: int
    offset: int
    last_start: int
    seq: int
    hash: str
    broken: str


class AuditIndex:
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

    def _state(self, db: sqlite3.Connection, path: Path) -> _FileState:
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
            return _FileState(int(cur.lastrowid or 0), 0, 0, 0, GENESIS, "")
        return _FileState(*row)

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
                    if st.offset and not _anchor_holds(f, st, size):
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
                        st = _FileState(st.id, 0, 0, 0, GENESIS, "")
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
        self, db: sqlite3.Connection, f: Any, path: Path, st: _FileState, size: int
    ) -> tuple[int, bool]:
        """Index complete lines from st.offset, up to about CHUNK_BYTES; (added, more to do)."""
        if size <= st.offset:
            return 0, False
        f.seek(st.offset)
        data = f.read(min(size - st.offset, CHUNK_BYTES))
        end = data.rfind(b"\n") + 1
        while end == 0 and st.offset + len(data) < size:  # one line longer than a chunk
            more = f.read(min(size - st.offset - len(data), CHUNK_BYTES))
            if not more:
                break
            cut = more.find(b"\n")
            data += more
            if cut >= 0:
                end = len(data) - len(more) + cut + 1
        if end == 0:
            return 0, False  # only a torn line: a writer mid-append
        (generation,) = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        if generation != self._generation:
            self._generation, self._shape_ids = generation, {}
        shapes = self._shape_ids
        rows: list[tuple[Any, ...]] = []
        emergencies: list[tuple[str, int]] = []  # (emergency id, index into rows)
        grant_last: dict[str, int] = {}
        offset, seq, prev, last_start = st.offset, st.seq, st.hash, st.last_start
        problem = ""
        pos = 0
        while pos < end:
            nl = data.index(b"\n", pos)
            line = data[pos : nl + 1]
            rec, problem = _parse(line, seq + 1, prev)
            if rec is None:
                break
            seq, prev, last_start = seq + 1, str(rec["hash"]), offset
            ts = rec.get("ts")
            ts_us = _ts_us(ts)
            canonical = ts_us is not None and _canonical_ts(ts)
            shape = tuple(str(rec.get(c, "")) for c in SHAPE_COLUMNS)
            sid = shapes.get(shape)
            if sid is None:
                sid = shapes[shape] = self._shape(db, shape)
            subject = rec.get("subject")
            rid = rec.get("request_id")
            rows.append(
                (
                    st.id,
                    seq,
                    offset,
                    ts_us,
                    None if canonical else str(rec.get("ts", "")),
                    str(rid) if rid else None,
                    sid,
                    _subject_key(subject) if isinstance(subject, str) and subject else None,
                )
            )
            for em in rec.get("emergencies") or ():
                emergencies.append((str(em), len(rows) - 1))
            if rec.get("outcome") == "OK" and rec.get("grants") and ts and ts_us is not None:
                for gid in rec["grants"]:
                    if ts_us > grant_last.get(str(gid), -(2**62)):
                        grant_last[str(gid)] = ts_us
            offset += len(line)
            pos = nl + 1
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
            [(st.id, g, us) for g, us in grant_last.items()],
        )
        broken = f"seq {seq + 1}: {problem}" if problem else ""
        if broken and broken != st.broken:
            log.warning(
                "audit index: chain %s breaks at seq %d (%s); records from there on are not "
                "indexed. Run `govgw audit verify`",
                path.name,
                seq + 1,
                problem,
            )
        db.execute(
            'UPDATE files SET "offset"=?, last_start=?, seq=?, hash=?, broken=?, '
            "records=records+? WHERE id=?",
            (offset, last_start, seq, prev, broken, len(rows), st.id),
        )
        return len(rows), not problem and offset < size and bool(rows)

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

    # -- queries (call refresh() first) -------------------------------------

    def _file_ids(self, db: sqlite3.Connection) -> list[tuple[int, Path]]:
        """(id, path) of the listed chains that are indexed, in the listing's order."""
        ids = dict(db.execute("SELECT path, id FROM files").fetchall())
        out = []
        for path in self._files():
            fid = ids.get(self._key(path))
            if fid is not None:
                out.append((int(fid), path))
        return out

    def records_of_subject(
        self, subject_hash: str, since: datetime, until: datetime
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(chain file name, record summary) of the subject's records with ts in
        [since, until), in chain order (file by file, by seq)."""
        with self._db() as db:
            for fid, path in self._file_ids(db):
                yield from (
                    (path.name, _summary(row))
                    for row in db.execute(
                        # `+r.file_id`: look up by subject (records_subject), never
                        # walk the file's records by time.
                        _SELECT + "FROM records r JOIN shapes s ON s.id=r.shape "
                        "WHERE r.subject=? AND r.ts_us>=? AND r.ts_us<? AND +r.file_id=? "
                        "ORDER BY r.seq",
                        (_subject_key(subject_hash), to_us(since), to_us(until), fid),
                    ).fetchall()
                )

    def records_of_emergency(self, emergency_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(chain file name, record summary) of the records whose plans came from the
        emergency, in chain order."""
        with self._db() as db:
            for fid, path in self._file_ids(db):
                yield from (
                    (path.name, _summary(row))
                    for row in db.execute(
                        _SELECT + "FROM record_emergencies e CROSS JOIN records r ON r.id=e.rec "
                        "JOIN shapes s ON s.id=r.shape "
                        "WHERE e.emergency_id=? AND +r.file_id=? ORDER BY r.seq",
                        (emergency_id, fid),
                    ).fetchall()
                )

    def usage_counts(
        self, dataset: str, since: datetime, until: datetime
    ) -> list[tuple[tuple[str, ...], int, int]]:
        """((caller, caller_kind, department, purpose, action, outcome), calls, subject
        records) of the records on `dataset` with ts in [since, until).

        A call is a distinct request id within a chain file (a record without one
        is a call of its own)."""
        with self._db() as db:
            fids = self._file_ids(db)
            if not fids:
                return []
            marks = ",".join("?" * len(fids))
            rows = db.execute(
                "SELECT s.caller, s.caller_kind, s.department, s.purpose, s.action, s.outcome, "
                "count(DISTINCT r.file_id || '/' || coalesce(r.request_id, f.name || ':' || r.seq)),"
                " count(r.subject) "
                # The dataset's shapes first, then their records by time (records_shape):
                # the work grows with the dataset's records in the period, not with the
                # whole trail's. CROSS JOIN fixes that order; `+` keeps records_file out.
                "FROM shape_datasets d CROSS JOIN records r ON r.shape=d.shape "
                "JOIN shapes s ON s.id=d.shape JOIN files f ON f.id=r.file_id "
                f"WHERE d.dataset=? AND r.ts_us>=? AND r.ts_us<? AND +r.file_id IN ({marks}) "
                "GROUP BY 1, 2, 3, 4, 5, 6",
                (dataset, to_us(since), to_us(until), *(fid for fid, _ in fids)),
            ).fetchall()
        return [(tuple(row[:6]), int(row[6]), int(row[7])) for row in rows]

    def last_uses(self) -> dict[str, datetime]:
        """Grant id -> time of the newest successful call made under it."""
        with self._db() as db:
            fids = self._file_ids(db)
            if not fids:
                return {}
            marks = ",".join("?" * len(fids))
            rows = db.execute(
                f"SELECT grant_id, max(ts_us) FROM grant_uses WHERE file_id IN ({marks}) "
                "GROUP BY grant_id",
                [fid for fid, _ in fids],
            ).fetchall()
        return {gid: from_us(us) for gid, us in rows}

    def records_since(
        self, since: datetime | None, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Whole records with ts in [since, until), read from the chains by offset,
        in chain order. Raises IndexStale if a chain changed since the refresh."""
        lo = -(2**62) if since is None else to_us(since)
        hi = 2**62 if until is None else to_us(until)
        with self._db() as db:
            plan = [
                (path, db.execute(
                    'SELECT seq, "offset" FROM records WHERE file_id=? AND ts_us>=? AND ts_us<? '
                    "ORDER BY seq",
                    (fid, lo, hi),
                ).fetchall())
                for fid, path in self._file_ids(db)
            ]  # fmt: skip
        for path, rows in plan:
            if not rows:
                continue
            with open(path, "rb") as f:
                for seq, offset in rows:
                    f.seek(offset)
                    line = f.readline()
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        rec = None
                    if not isinstance(rec, dict) or rec.get("seq") != seq:
                        raise IndexStale(f"{path.name}: seq {seq} is no longer at offset {offset}")
                    yield rec


_SELECT = (
    "SELECT r.seq, r.ts_us, r.ts_raw, r.request_id, r.subject, s.caller, s.caller_kind, "
    "s.department, s.purpose, s.action, s.dataset, s.outcome "
)


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    """A record as the readers see it: the indexed fields under the audit's names."""
    seq, ts_us, ts_raw, rid, subject, *shape = row
    rec: dict[str, Any] = dict(zip(SHAPE_COLUMNS, shape, strict=True))
    rec["seq"] = seq
    rec["ts"] = ts_raw if ts_raw is not None else utc_timestamp(from_us(ts_us))
    if rid is not None:
        rec["request_id"] = rid
    rec["subject"] = subject.hex() if isinstance(subject, bytes) else subject or ""
    return rec


_HEX = frozenset("0123456789abcdef")


def _subject_key(subject: str) -> str | bytes:
    """How a subject hash is stored: 32 bytes for 64 lowercase hex digits (what
    keyring.subject_hash gives; .hex() gives it back exactly), else the text."""
    if len(subject) == 64 and _HEX.issuperset(subject):
        return bytes.fromhex(subject)
    return subject


def _canonical_ts(ts: Any) -> bool:
    """Is `ts` as utc_timestamp writes it (so ts_us renders it back exactly)?
    Called for a ts that parsed; the fixed width rules out the rest."""
    return (
        isinstance(ts, str)
        and len(ts) == 27
        and ts[-1] == "Z"
        and ts[10] == "T"
        and ts[19] == "."
        and ts[4] == ts[7] == "-"
        and ts[13] == ts[16] == ":"
    )


def _parse(line: bytes, seq: int, prev: str) -> tuple[dict[str, Any] | None, str]:
    """(record, "") when `line` is the chain's next record, else (None, the problem)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None, "line is not valid JSON"
    if not isinstance(rec, dict):
        return None, "line is not a JSON object"
    claimed = rec.get("hash")
    if not isinstance(claimed, str):
        return None, "record has no hash"
    # The writer puts `hash` last after the canonical body: hashing the line's
    # bytes is exact and avoids re-encoding; anything else is re-canonicalized.
    body = line[:-_HASH_SUFFIX_LEN] + b"}"
    if hashlib.sha256(body).hexdigest() != claimed:
        try:
            if record_hash(rec) != claimed:
                return None, "hash mismatch: the record was edited"
        except ValueError:
            return None, "hash mismatch: the record was edited"
    if rec.get("seq") != seq or isinstance(rec.get("seq"), bool):
        return None, f"seq gap: expected {seq}, found {rec.get('seq')!r}"
    if rec.get("prev") != prev:
        return None, "prev mismatch: does not link to the record before it"
    return rec, ""


def _anchor_holds(f: Any, st: _FileState, size: int) -> bool:
    """Is the last indexed record still where, and what, the index says?"""
    if size < st.offset:
        return False
    f.seek(st.last_start)
    line = f.read(st.offset - st.last_start)
    if not line.endswith(b"\n"):
        return False
    try:
        rec = json.loads(line)
    except ValueError:
        return False
    if not isinstance(rec, dict) or rec.get("seq") != st.seq or rec.get("hash") != st.hash:
        return False
    body = line[:-_HASH_SUFFIX_LEN] + b"}"
    if hashlib.sha256(body).hexdigest() == st.hash:
        return True
    try:
        return record_hash(rec) == st.hash
    except ValueError:
        return False
