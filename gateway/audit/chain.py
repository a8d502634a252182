"""Reading audit chains for the index: what both index backends share.

A chain file is read from where the index got to (its anchor: byte offset, seq and
hash of the last indexed record). `anchor_holds` tells whether the file still holds
that record there (else it was replaced, truncated or rewritten below the indexed
point); `read_chunk` parses the complete records appended since, checking each one's
hash, seq and link, and stops at the first that fails (a break: nothing after it can
be trusted) or at a torn last line (a writer mid-append, left for the next refresh).
The backends (index.py: SQLite in the data directory; shared_index.py: PostgreSQL,
every node's chains) only store what a chunk yields.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from gateway.audit.log import record_hash, utc_timestamp

# New records read and written per transaction: small enough that a second
# refresher (another worker) waits well under a second for its turn, large
# enough that the commit cost is spread over thousands of records.
CHUNK_BYTES = 4 * 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HASH_SUFFIX_LEN = len(b',"hash":"') + 64 + len(b'"}\n')
SHAPE_COLUMNS = ("caller", "caller_kind", "department", "purpose", "action", "dataset", "outcome")


class IndexStale(Exception):
    """A chain changed between the refresh and the read of a full record."""


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def ts_us(value: object) -> int | None:
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
class FileState:
    """How far a chain is indexed: its anchor, and why indexing stopped if it did."""

    id: int
    offset: int
    last_start: int
    seq: int
    hash: str
    broken: str


@dataclass(frozen=True)
class Row:
    """One indexed record: what the readers query, nothing more."""

    seq: int
    offset: int
    ts_us: int | None
    ts_raw: str | None  # the ts text when ts_us does not render it back exactly
    request_id: str | None
    shape: tuple[str, ...]  # SHAPE_COLUMNS' values
    subject: str | None  # the keyed subject hash the record carries
    emergencies: tuple[str, ...]


@dataclass
class Chunk:
    """The records read from one chunk of a chain, and the anchor after them."""

    rows: list[Row] = field(default_factory=list)
    grant_last: dict[str, int] = field(default_factory=dict)  # grant -> newest OK use (us)
    offset: int = 0
    last_start: int = 0
    seq: int = 0
    hash: str = ""
    broken: str = ""  # "seq N: problem" when a record failed
    more: bool = False  # complete records remain after this chunk


def read_chunk(f: BinaryIO, st: FileState, size: int) -> Chunk:
    """Parse complete lines from st.offset, up to about CHUNK_BYTES."""
    out = Chunk(offset=st.offset, last_start=st.last_start, seq=st.seq, hash=st.hash)
    if size <= st.offset:
        return out
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
    pos = 0
    problem = ""
    while pos < end:
        nl = data.index(b"\n", pos)
        line = data[pos : nl + 1]
        rec, problem = parse(line, out.seq + 1, out.hash)
        if rec is None:
            break
        out.seq, out.hash, out.last_start = out.seq + 1, str(rec["hash"]), out.offset
        ts = rec.get("ts")
        us = ts_us(ts)
        subject, rid = rec.get("subject"), rec.get("request_id")
        out.rows.append(
            Row(
                out.seq,
                out.offset,
                us,
                None if us is not None and canonical_ts(ts) else str(rec.get("ts", "")),
                str(rid) if rid else None,
                tuple(str(rec.get(c, "")) for c in SHAPE_COLUMNS),
                subject if isinstance(subject, str) and subject else None,
                tuple(str(em) for em in rec.get("emergencies") or ()),
            )
        )
        if rec.get("outcome") == "OK" and rec.get("grants") and ts and us is not None:
            for gid in rec["grants"]:
                if us > out.grant_last.get(str(gid), -(2**62)):
                    out.grant_last[str(gid)] = us
        out.offset += len(line)
        pos = nl + 1
    out.broken = f"seq {out.seq + 1}: {problem}" if problem else ""
    out.more = not problem and out.offset < size and bool(out.rows)
    return out


def summary(
    seq: int, ts_us_: int | None, ts_raw: str | None, rid: str | None, subject: Any, shape: Any
) -> dict[str, Any]:
    """A record as the readers see it: the indexed fields under the audit's names."""
    rec: dict[str, Any] = dict(zip(SHAPE_COLUMNS, shape, strict=True))
    rec["seq"] = seq
    rec["ts"] = ts_raw if ts_raw is not None else utc_timestamp(from_us(int(ts_us_ or 0)))
    if rid is not None:
        rec["request_id"] = rid
    rec["subject"] = subject.hex() if isinstance(subject, bytes) else subject or ""
    return rec


def canonical_ts(ts: Any) -> bool:
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


def parse(line: bytes, seq: int, prev: str) -> tuple[dict[str, Any] | None, str]:
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
    if not _hash_holds(line, rec, claimed):
        return None, "hash mismatch: the record was edited"
    if rec.get("seq") != seq or isinstance(rec.get("seq"), bool):
        return None, f"seq gap: expected {seq}, found {rec.get('seq')!r}"
    if rec.get("prev") != prev:
        return None, "prev mismatch: does not link to the record before it"
    return rec, ""


def _hash_holds(line: bytes, rec: dict[str, Any], claimed: str) -> bool:
    # The writer puts `hash` last after the canonical body: hashing the line's
    # bytes is exact and avoids re-encoding; anything else is re-canonicalized.
    body = line[:-_HASH_SUFFIX_LEN] + b"}"
    if hashlib.sha256(body).hexdigest() == claimed:
        return True
    try:
        return record_hash(rec) == claimed
    except ValueError:
        return False


def anchor_holds(f: BinaryIO, st: FileState, size: int) -> bool:
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
    return _hash_holds(line, rec, st.hash)


class BaseAuditIndex:
    """What the readers (usage reports, "who used my data", the sweep, sealing lists,
    the impact replay) call: `refresh()` first (in a worker thread), then a query.
    AuditIndex keeps it in the data directory (one node); SharedAuditIndex
    (shared_index.py) in PostgreSQL, every node's chains."""

    def refresh(self, progress: Callable[[int], None] | None = None) -> RefreshStats:
        raise NotImplementedError

    def records_of_subject(
        self, subject_hash: str, since: datetime, until: datetime
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def records_of_emergency(self, emergency_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def usage_counts(
        self, dataset: str, since: datetime, until: datetime
    ) -> list[tuple[tuple[str, ...], int, int]]:
        raise NotImplementedError

    def last_uses(self) -> dict[str, datetime]:
        raise NotImplementedError


def warn_if_newly_broken(path: Path, broken: str, known: str) -> None:
    """Say once (not at every refresh) that indexing stopped at a break of a chain."""
    if broken and broken != known:
        logging.getLogger("govgw.audit.index").warning(
            "audit index: chain %s breaks at %s; records from there on are not "
            "indexed. Run `govgw audit verify`",
            path.name,
            broken,
        )
