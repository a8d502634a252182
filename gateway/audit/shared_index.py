"""The audit index on PostgreSQL: every node's chains in one index.

Each node keeps its own append-only chains (gateway.audit.log, fsynced before the
answer, unchanged) and indexes them into the shared tables `audit_files` (per chain,
keyed by node id and file name: its anchor, which is also the head the node has
indexed, and why indexing stopped if it did), `audit_records` (per record what the
readers query: the caller metadata, datasets, keyed subject hash, emergency ids;
never a raw key) and `audit_grant_uses`. So a usage report, a data subject's "who
used my data", the unused-grant sweep and an emergency's sealing list on any node
count the calls of every node. The policy impact replay reads whole records from
the chain files and stays node-local (its own SQLite index of this node's chains).

Who indexes a chain: its node, every second while serving (server.py) and before
each read; and any process that reads the index indexes, besides its own, the
chains of other nodes that are reachable from here (nodes.py), so on a shared mount
a read sees a call acknowledged a moment ago on another node. Each chunk is one
transaction holding the chain's `audit_files` row lock (SELECT … FOR UPDATE), so two
indexers of one chain serialize and never index a record twice.

A chain found shorter than, or different at, its indexed head is indexed afresh as
in the SQLite index, but the head it lost is kept in `audit_files.lost` until
`govgw audit reindex`: `govgw audit verify` reports it as a break (a truncated
chain still verifies by itself; the recorded head is its witness).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.audit.chain import (
    BaseAuditIndex,
    FileState,
    FileStatus,
    RefreshStats,
    anchor_holds,
    from_us,
    read_chunk,
    summary,
    to_us,
    warn_if_newly_broken,
)
from gateway.audit.index import AuditIndex
from gateway.audit.log import GENESIS
from gateway.audit.nodes import Node, node_id, nodes, register
from gateway.config import Layout
from gateway.storage import Storage

log = logging.getLogger("govgw.audit.index")


def database(storage: Storage) -> contextlib.AbstractContextManager[Any]:
    """A transaction of the shared index. A lost database raises the storage's
    StorageUnavailable: UNAVAILABLE DATABASE_UNAVAILABLE for a call (the pipeline maps
    it, fail closed, retryable), a plain error for a command; never INTERNAL."""
    return storage.transaction()


class SharedAuditIndex(BaseAuditIndex):
    """This node's view of the shared index: it indexes its chains (`audit_files()`,
    in `audit_dir`) under `node`, and reads every node's."""

    def __init__(
        self,
        storage: Storage,
        node: str,
        audit_dir: Path,
        audit_files: Callable[[], list[Path]],
    ) -> None:
        self.storage = storage
        self.node = node
        self.audit_dir = Path(audit_dir)
        self.audit_files = audit_files
        self._registered = False

    def _tx(self) -> Any:
        return database(self.storage)

    # -- refreshing ---------------------------------------------------------

    def register(self) -> None:
        with self._tx() as db:
            register(db, self.node, self.audit_dir)
        self._registered = True

    def register_quietly(self) -> None:
        """register(), a failure logged (the periodic indexing registers later)."""
        try:
            self.register()
        except Exception as e:
            log.warning("audit index: cannot register node %s yet: %s", self.node, _reason(e))

    def refresh(self, progress: Callable[[int], None] | None = None) -> RefreshStats:
        """Index what was appended to this node's chains, and to the reachable chains
        of other nodes, since the last refresh."""
        started = time.monotonic()
        if not self._registered:
            self.register()
        added, reindexed = 0, []
        own = list(self.audit_files())
        self._forget_vanished({p.name for p in own})
        chains = [(self.node, p) for p in own] + [
            (n.node, p) for n in self.other_nodes() if n.reachable() for p in n.chains()
        ]
        for node, path in chains:
            n, fresh = self._refresh_file(node, path, progress)
            added += n
            if fresh:
                reindexed.append(path.name)
        return RefreshStats(added, tuple(reindexed), time.monotonic() - started)

    def rebuild(self, progress: Callable[[int], None] | None = None) -> RefreshStats:
        """Drop this node's rows (and any lost head) and index its chains afresh."""
        with self._tx() as db:
            db.execute("DELETE FROM audit_files WHERE node=%s", (self.node,))
        return self.refresh(progress)

    def other_nodes(self) -> list[Node]:
        with self._tx() as db:
            return [n for n in nodes(db) if n.node != self.node]

    def _forget_vanished(self, names: set[str]) -> None:
        """Rows of this node's chains that are gone are dropped (never served), but a
        chain that had indexed records keeps its row with the head it lost: chains are
        never deleted by govgw, so `audit verify` reports it until `audit reindex`."""
        with self._tx() as db:
            rows = db.execute(
                'SELECT id, name, "offset", seq, hash FROM audit_files WHERE node=%s',
                (self.node,),
            ).fetchall()
            for fid, name, offset, seq, digest in rows:
                if name in names:
                    continue
                if not offset and not seq:  # never indexed, or its loss already noted
                    db.execute("DELETE FROM audit_files WHERE id=%s AND lost=''", (fid,))
                    continue
                lost = f"seq {seq} (hash {digest[:16]}…) was indexed, but the chain file is gone"
                log.warning("audit index: chain %s is gone; its rows were dropped", name)
                self._reset(db, fid, lost)

    def _state(self, db: Any, node: str, name: str) -> FileState:
        query = (
            'SELECT id, "offset", last_start, seq, hash, broken FROM audit_files '
            "WHERE node=%s AND name=%s FOR UPDATE"
        )
        row = db.execute(query, (node, name)).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO audit_files (node, name, hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (node, name) DO NOTHING",
                (node, name, GENESIS),
            )
            row = db.execute(query, (node, name)).fetchone()
        return FileState(*row)

    def _refresh_file(
        self, node: str, path: Path, progress: Callable[[int], None] | None
    ) -> tuple[int, bool]:
        added, fresh = 0, False
        reported: int | None = None
        try:
            f = open(path, "rb")  # noqa: SIM115 - held across the chunk loop
        except FileNotFoundError:
            return 0, False
        with f:
            while True:
                with self._tx() as db:
                    st = self._state(db, node, path.name)
                    size = os.fstat(f.fileno()).st_size
                    if st.offset and not anchor_holds(f, st, size):
                        self._lost(db, node, path, st, size)
                        st = FileState(st.id, 0, 0, 0, GENESIS, "")
                        fresh = True
                    if reported is None:
                        reported = st.offset
                    n, more = self._index_chunk(db, f, path, st, size)
                added += n
                if progress is not None:
                    at = f.tell() if more else size
                    progress(max(0, at - reported))
                    reported = at
                if not more:
                    return added, fresh

    @staticmethod
    def _lost(db: Any, node: str, path: Path, st: FileState, size: int) -> None:
        how = (
            f"it is now {size} bytes, shorter than the {st.offset} indexed: truncated"
            if size < st.offset
            else "it no longer holds that record there: rewritten or replaced"
        )
        lost = f"seq {st.seq} (hash {st.hash[:16]}…) was indexed, but {how}"
        log.warning(
            "audit index: chain %s of %s: %s; indexing it from scratch", path.name, node, lost
        )
        SharedAuditIndex._reset(db, st.id, lost)

    @staticmethod
    def _reset(db: Any, fid: int, lost: str) -> None:
        """Drop a chain's rows, to be indexed from its start, noting the head it lost."""
        db.execute("DELETE FROM audit_records WHERE file_id=%s", (fid,))
        db.execute("DELETE FROM audit_grant_uses WHERE file_id=%s", (fid,))
        # The first lost head is kept: it is what the chain was before it changed.
        db.execute(
            'UPDATE audit_files SET "offset"=0, last_start=0, seq=0, hash=%s, records=0, '
            "broken='', reindexed=reindexed+1, lost=CASE WHEN lost='' THEN %s ELSE lost END "
            "WHERE id=%s",
            (GENESIS, lost, fid),
        )

    def _index_chunk(
        self, db: Any, f: Any, path: Path, st: FileState, size: int
    ) -> tuple[int, bool]:
        chunk = read_chunk(f, st, size)
        if not chunk.rows and not chunk.broken:
            return 0, False  # nothing new, or only a torn line: a writer mid-append
        with db.cursor() as cur:
            cur.executemany(
                'INSERT INTO audit_records (file_id, seq, "offset", ts_us, ts_raw, request_id, '
                "caller, caller_kind, department, purpose, action, dataset, outcome, datasets, "
                "subject, emergencies) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (st.id, r.seq, r.offset, r.ts_us, r.ts_raw, r.request_id, *r.shape,
                     sorted(set(r.shape[5].split(","))), r.subject, list(r.emergencies))
                    for r in chunk.rows
                ],
            )  # fmt: skip
            cur.executemany(
                "INSERT INTO audit_grant_uses (file_id, grant_id, ts_us) VALUES (%s, %s, %s) "
                "ON CONFLICT (file_id, grant_id) DO UPDATE "
                "SET ts_us=GREATEST(audit_grant_uses.ts_us, excluded.ts_us)",
                [(st.id, g, us) for g, us in chunk.grant_last.items()],
            )
        warn_if_newly_broken(path, chunk.broken, st.broken)
        db.execute(
            'UPDATE audit_files SET "offset"=%s, last_start=%s, seq=%s, hash=%s, broken=%s, '
            "records=records+%s WHERE id=%s",
            (chunk.offset, chunk.last_start, chunk.seq, chunk.hash, chunk.broken,
             len(chunk.rows), st.id),
        )  # fmt: skip
        return len(chunk.rows), chunk.more

    # -- status -------------------------------------------------------------

    def status(self) -> list[FileStatus]:
        """How far this node's chains are indexed (without refreshing)."""
        with self._tx() as db:
            known = {
                row[0]: row[1:]
                for row in db.execute(
                    'SELECT name, records, "offset", seq, broken, reindexed FROM audit_files '
                    "WHERE node=%s",
                    (self.node,),
                ).fetchall()
            }
        out = []
        for path in self.audit_files():
            size = path.stat().st_size if path.exists() else 0
            count, offset, seq, broken, reindexed = known.get(path.name, (0, 0, 0, "", 0))
            out.append(FileStatus(str(path), count, seq, offset, size, broken, reindexed))
        return out

    # -- queries (call refresh() first) -------------------------------------

    def _chains(self, db: Any) -> list[tuple[int, str]]:
        """(id, name the readers see) of every indexed chain: this node's, in its
        listing's order, by file name (as the SQLite index names them); then other
        nodes' as node/file."""
        own = {p.name: i for i, p in enumerate(self.audit_files())}
        mine, others = [], []
        for fid, node, name in db.execute("SELECT id, node, name FROM audit_files").fetchall():
            if node == self.node:
                if name in own:
                    mine.append((own[name], int(fid), name))
            else:
                others.append((f"{node}/{name}", int(fid)))
        return [(fid, name) for _, fid, name in sorted(mine)] + [
            (fid, name) for name, fid in sorted(others)
        ]

    def _each_chain(self, where: str, args: tuple[Any, ...]) -> Iterator[tuple[str, dict]]:
        """(chain name, record summary) of the records matching `where`, chain by chain,
        by seq."""
        with self._tx() as db:
            chains = self._chains(db)
            rows = db.execute(
                "SELECT r.file_id, r.seq, r.ts_us, r.ts_raw, r.request_id, r.subject, r.caller, "
                "r.caller_kind, r.department, r.purpose, r.action, r.dataset, r.outcome "
                f"FROM audit_records r WHERE {where} AND r.file_id = ANY(%s) "
                "ORDER BY r.file_id, r.seq",
                (*args, [fid for fid, _ in chains]),
            ).fetchall()
        by_file: dict[int, list[tuple[Any, ...]]] = {}
        for fid, *row in rows:
            by_file.setdefault(fid, []).append(tuple(row))
        for fid, name in chains:
            for seq, us, raw, rid, subject, *shape in by_file.get(fid, ()):
                yield name, summary(seq, us, raw, rid, subject, shape)

    def records_of_subject(
        self, subject_hash: str, since: datetime, until: datetime
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return self._each_chain(
            "r.subject=%s AND r.ts_us>=%s AND r.ts_us<%s",
            (subject_hash, to_us(since), to_us(until)),
        )

    def records_of_emergency(self, emergency_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return self._each_chain("r.emergencies @> ARRAY[%s]::text[]", (emergency_id,))

    def usage_counts(
        self, dataset: str, since: datetime, until: datetime
    ) -> list[tuple[tuple[str, ...], int, int]]:
        """As AuditIndex.usage_counts, over every node's chains: a call is a distinct
        request id within a chain (a record without one is a call of its own)."""
        with self._tx() as db:
            ids = [fid for fid, _ in self._chains(db)]
            rows = db.execute(
                "SELECT r.caller, r.caller_kind, r.department, r.purpose, r.action, r.outcome, "
                "count(DISTINCT r.file_id::text || '/' || "
                "coalesce(r.request_id, f.name || ':' || r.seq::text)), count(r.subject) "
                "FROM audit_records r JOIN audit_files f ON f.id=r.file_id "
                "WHERE r.datasets @> ARRAY[%s]::text[] AND r.ts_us>=%s AND r.ts_us<%s "
                "AND r.file_id = ANY(%s) GROUP BY 1, 2, 3, 4, 5, 6",
                (dataset, to_us(since), to_us(until), ids),
            ).fetchall()
        return [(tuple(row[:6]), int(row[6]), int(row[7])) for row in rows]

    def last_uses(self) -> dict[str, datetime]:
        with self._tx() as db:
            ids = [fid for fid, _ in self._chains(db)]
            rows = db.execute(
                "SELECT grant_id, max(ts_us) FROM audit_grant_uses WHERE file_id = ANY(%s) "
                "GROUP BY grant_id",
                (ids,),
            ).fetchall()
        return {gid: from_us(int(us)) for gid, us in rows}


def index_for(layout: Layout, storage: Storage) -> BaseAuditIndex:
    """The audit index the readers of this data directory use: the shared one on a
    shared database (every node's calls), else the directory's own SQLite file."""
    if storage.shared:
        node = node_id(layout.data_dir)
        return SharedAuditIndex(storage, node, layout.audit_dir, layout.audit_files)
    return AuditIndex(layout.audit_index, layout.audit_files)


class PeriodicIndexer:
    """Keeps this node's chains indexed while it serves, so the other nodes' readers see
    its calls (not only when one of its own readers refreshes). Its own daemon thread:
    the event loop never waits on the database, and a stop never waits for a refresh
    stuck on a lost database (the chains are durable; the next start catches up)."""

    def __init__(self, index: SharedAuditIndex, interval_s: float = 1.0) -> None:
        self.index = index
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="govgw-audit-index", daemon=True)

    def start(self) -> PeriodicIndexer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                self.index.refresh()
            except Exception as e:  # the database away: said once, retried every interval
                if not failing:
                    log.warning("audit index: cannot index into the shared index: %s", _reason(e))
                failing = True
            else:
                if failing:
                    log.info("audit index: indexing into the shared index again")
                failing = False


def _reason(e: BaseException) -> str:
    """The first line of the error, without a URL's password (libpq never repeats it)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
