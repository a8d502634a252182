"""The SQLite audit index's queries (gateway.audit.index): each a search on the
index meant for it, never a walk of the whole trail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.audit.chain import IndexStale, from_us, summary, to_us

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


class SqliteQueries:
    """Mixed into AuditIndex, which provides the connection and the chain listing."""

    audit_files: Callable[[], Iterable[Path]]

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _key(self, path: Path) -> str:
        raise NotImplementedError

    def _files(self) -> list[Path]:
        raise NotImplementedError

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
        # `+r.file_id`: look up by subject (records_subject), never walk the file's
        # records by time.
        return self._per_file(
            _SELECT + "FROM records r JOIN shapes s ON s.id=r.shape "
            "WHERE r.subject=? AND r.ts_us>=? AND r.ts_us<? AND +r.file_id=? ORDER BY r.seq",
            (subject_key(subject_hash), to_us(since), to_us(until)),
        )

    def records_of_emergency(self, emergency_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(chain file name, record summary) of the records whose plans came from the
        emergency, in chain order."""
        return self._per_file(
            _SELECT + "FROM record_emergencies e CROSS JOIN records r ON r.id=e.rec "
            "JOIN shapes s ON s.id=r.shape WHERE e.emergency_id=? AND +r.file_id=? ORDER BY r.seq",
            (emergency_id,),
        )

    def _per_file(
        self, query: str, params: tuple[Any, ...]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(chain file name, record summary) of `query`'s rows, chain by chain: the
        file's id is its last parameter."""
        with self._db() as db:
            for fid, path in self._file_ids(db):
                for row in db.execute(query, (*params, fid)).fetchall():
                    yield path.name, _summary(row)

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
    seq, ts_us, ts_raw, rid, subject, *shape = row
    return summary(seq, ts_us, ts_raw, rid, subject, shape)


_HEX = frozenset("0123456789abcdef")


def subject_key(subject: str) -> str | bytes:
    """How a subject hash is stored: 32 bytes for 64 lowercase hex digits (what
    keyring.subject_hash gives; .hex() gives it back exactly), else the text."""
    if len(subject) == 64 and _HEX.issuperset(subject):
        return bytes.fromhex(subject)
    return subject
