"""The audit trail (操作留痕): an append-only, hash-chained JSONL file.

Every gateway call, allowed or denied, is one record. A response may be sent
only after its record is durable, so `append` blocks until the record has
been written and fsynced, and raises `AuditUnavailable` if that cannot be
guaranteed: the caller then fails the call closed.

Throughput comes from group commit: one writer thread drains everything the
request threads have queued, writes it with one `write`, syncs once and wakes
the whole batch through one shared event. Work that can fail because of the
event itself (serialization, the personal-data guard) runs in the appending
thread, so a bad event is that caller's error and never poisons a batch.

Record format (one per line): the event's fields plus `seq` (1-based,
contiguous), `ts` (RFC 3339 UTC, microseconds), `prev` (the previous record's
hash, 64 zeros for the first) and `hash`, the SHA-256 hex digest of the
canonical JSON (sorted keys, separators (",", ":"), ensure_ascii=False) of the
record without `hash`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from gateway.files import open_private
from gateway.metrics import Metrics
from gateway.subjects import stdnum_valid

log = logging.getLogger("govgw.audit")

GENESIS = "0" * 64
# Fields the log owns; an event may not set them.
CHAIN_FIELDS = frozenset({"seq", "ts", "prev", "hash"})
_TAIL_CHUNK = 64 * 1024
# Stands in for the values of `prev`, `seq` and `ts` while an event is
# serialized (see _Pending). Random per process, so no event can contain it.
_MARK = f"@govgw-audit-{secrets.token_hex(16)}"
_QUOTED_MARK = f'"{_MARK}"'.encode()

# Guard against a raw subject key or mobile number reaching the trail (design
# §5). Text is mapped to character classes (digit -> 0, ASCII letter -> a,
# anything else -> space) so that candidates are found by plain substring
# search, about ten times faster than a regex; letters count as part of a
# token so that hex digests and request ids do not match by chance.
_SHAPES = bytearray(b" " * 256)
for _c in b"0123456789":
    _SHAPES[_c] = ord("0")
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
    _SHAPES[_c] = ord("a")
_SHAPE_TABLE = bytes(_SHAPES)
_ID_SHAPES = (b" " + b"0" * 18 + b" ", b" " + b"0" * 17 + b"a ")
_MOBILE_SHAPE = b" " + b"0" * 11 + b" "


class AuditUnavailable(Exception):
    """The record could not be made durable (I/O error, closed log, timeout)."""


class AuditEventRejected(AuditUnavailable, ValueError):
    """The event itself is unfit for the trail (a chain field, raw personal data,
    not plain JSON). A defect in the caller, but the call fails closed all the
    same, so it is an AuditUnavailable too."""


@dataclass(frozen=True)
class AuditRecordRef:
    seq: int
    hash: str


@dataclass(frozen=True)
class AuditStats:
    records: int  # records made durable
    batches: int  # write+sync rounds, i.e. fsyncs
    largest_batch: int
    failed: bool

    @property
    def records_per_sync(self) -> float:
        return self.records / self.batches if self.batches else 0.0


# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(obj: Mapping[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 text as is."""
    return _ENCODER.encode(obj)


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: over its canonical JSON without `hash`."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def utc_timestamp(moment: datetime | None = None) -> str:
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    # isoformat: the same text as strftime("%Y-%m-%dT%H:%M:%S.%f") at a fifth of the cost
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _candidates(text: bytes, shape: bytes, needle: bytes) -> Iterator[bytes]:
    start = shape.find(needle)
    while start >= 0:
        # shape has one leading pad byte, so shape[start] is the byte before.
        yield text[start : start + len(needle) - 2]
        start = shape.find(needle, start + 1)


def _looks_like_id_number(candidate: bytes) -> bool:
    # Check digit and birth date, not the region: stdnum's region table lags
    # behind renamed and new counties, and a guard must not miss real keys.
    # Any exception from stdnum means "not an ID number" (it raises more than
    # ValidationError on some inputs: gateway.subjects.stdnum_valid).
    number = candidate.decode().upper()
    return stdnum_valid(lambda n: n[-1] == ric.calc_check_digit(n), number) and stdnum_valid(
        ric.get_birth_date, number
    )


def personal_data_kind(text: bytes) -> str | None:
    """What kind of raw personal data `text` seems to hold, or None."""
    shape = b" " + text.translate(_SHAPE_TABLE) + b" "
    for needle in _ID_SHAPES:
        for cand in _candidates(text, shape, needle):
            if _looks_like_id_number(cand):
                return "an ID number"
    for cand in _candidates(text, shape, _MOBILE_SHAPE):
        if cand[:1] == b"1" and cand[1:2] in b"3456789":
            return "a mobile phone number"
    return None


def _offending_field(event: Mapping[str, Any], prefix: str = "") -> str:
    """Name (never show) the field that carries personal data."""
    for k, v in event.items():
        if personal_data_kind(str(k).encode()):
            return f"{prefix or '(top level)'} <a key>"  # the key itself is the data
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            inner = _offending_field(v, path + ".")
            if inner != "?":
                return inner
        else:
            strings: list[str] = []
            _collect_strings([v], strings)
            if personal_data_kind("\n".join(strings).encode()):
                return path
    return "?"


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _collect_strings(values: Iterable[Any], out: list[str]) -> None:
    """Gather the text of nested values and keys for the personal-data guard.

    Only text is scanned: numbers are metrics here, and a large count must not
    pass for a phone number. On the way, refuse non-string keys in nested
    objects: json would turn them into strings that sort differently when the
    record is re-canonicalized, so the hash could never verify. (Top-level keys
    need no check: sorting them beside "prev", "seq" and "ts" raises TypeError
    in the encoder.)
    """
    for v in values:
        t = type(v)
        if t is str:
            out.append(v)
        elif t in _SCALARS:
            continue
        elif isinstance(v, dict):
            for k in v:
                if type(k) is not str:
                    raise AuditEventRejected("audit event keys must be strings")
            out.extend(v)
            _collect_strings(v.values(), out)
        elif isinstance(v, list | tuple):
            _collect_strings(v, out)
        elif isinstance(v, str):
            out.append(v)


class _Pending:
    """One event, serialized in the appending thread around the log's fields.

    The event is encoded once with a marker for `prev`, `seq` and `ts`; sorted
    keys put the three markers in that order, so splitting on the marker gives
    the text between them and the writer builds the canonical record by
    concatenation, with no json work on the single (serial) writer thread.
    """

    __slots__ = ("cancelled", "index", "parts", "ticket", "ts", "waiter")

    def __init__(self, event: Mapping[str, Any]) -> None:
        if not CHAIN_FIELDS.isdisjoint(event):
            raise AuditEventRejected(
                f"audit event may not set the chain fields {sorted(CHAIN_FIELDS & set(event))}"
            )
        record = {**event, "prev": _MARK, "seq": _MARK, "ts": _MARK}
        strings: list[str] = []
        _collect_strings(event.values(), strings)
        try:
            text = _ENCODER.encode(record).encode()
        except (TypeError, ValueError) as e:  # also UnicodeEncodeError: lone surrogates
            raise AuditEventRejected(f"audit event is not plain JSON: {e}") from e
        parts = text.split(_QUOTED_MARK)
        if len(parts) != 4:
            raise AuditEventRejected("audit event contains the log's internal marker")
        strings.extend(event)  # str by now: the encoder sorted them beside "prev"
        kind = personal_data_kind("\n".join(strings).encode())
        if kind:
            raise AuditEventRejected(
                f"audit event field {_offending_field(event)} looks like {kind}; "
                "the trail keeps keyed hashes of subject keys only"
            )
        self.parts = parts
        self.ts = ""
        self.cancelled = False
        # Set when queued: who waits for this record, and at which position.
        self.waiter: _Waiter
        self.index = 0
        self.ticket = 0

    def line(self, seq: int, prev: str) -> tuple[bytes, str]:
        a, b, c, d = self.parts
        body = b"".join(
            (a, b'"', prev.encode(), b'"', b, str(seq).encode(), c, b'"', self.ts.encode(), b'"', d)
        )
        digest = hashlib.sha256(body).hexdigest()
        # The stored line puts `hash` last; verification re-canonicalizes, so
        # where `hash` sits in the line does not matter.
        return body[:-1] + b',"hash":"' + digest.encode() + b'"}\n', digest


# Called on the event loop with the attachments of the async appends whose
# records one group commit made durable, before their callers wake up (the
# gateway signs the receipts of a group together: gateway.receipts.sign_group).
GroupHook = Callable[[list[Any]], None]


def _resolve_all(waiters: Iterable[_Waiter], on_durable: GroupHook | None = None) -> None:
    """On the loop: wake the async waiters of one commit group, at once."""
    live = [w for w in waiters if w.future is not None and not w.future.done()]
    if on_durable is not None:
        # Only records that are durable; a waiter that timed out meanwhile is left out.
        attached = [w.attachment for w in live if w.attachment is not None and w.error is None]
        if attached:
            try:
                on_durable(attached)
            except Exception as e:  # the callers see their attachment unfinished
                log.error("audit group hook failed: %s", type(e).__name__)
    for w in live:
        w.future.set_result(None)  # type: ignore[union-attr]


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _wake_loops(batch: Sequence[_Pending], on_durable: GroupHook | None = None) -> None:
    """Resolve the finished async waiters of a batch: one call into each event loop."""
    # dict: a waiter of several records of the batch is woken once
    by_loop: dict[asyncio.AbstractEventLoop, dict[_Waiter, None]] = {}
    for p in batch:
        w = p.waiter
        if w.future is not None and (w.left == 0 or w.error is not None) and w.loop is not None:
            by_loop.setdefault(w.loop, {})[w] = None
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile has no one to wake
            loop.call_soon_threadsafe(_resolve_all, waiters, on_durable)


class Encoded(list[_Pending]):
    """Events encoded as records ahead of their append (`AuditLog.encode`)."""


class _Waiter:
    """One append call's wake-up.

    A thread caller waits on a lock held until all its records are done; only
    the writer touches `left` and releases the lock, so waking a caller costs
    one lock release. An asyncio caller gives its loop and a future instead
    (and has no lock to allocate): the writer resolves all futures of a batch
    with one call into each loop.
    """

    __slots__ = ("attachment", "error", "future", "left", "lock", "loop", "refs")

    def __init__(
        self,
        n: int,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
        attachment: Any = None,
    ) -> None:
        self.lock: threading.Lock | None = None
        if future is None:
            self.lock = threading.Lock()
            self.lock.acquire()
        self.left = n
        self.refs: list[AuditRecordRef | None] = [None] * n
        self.error: AuditUnavailable | None = None
        self.loop = loop
        self.future = future
        self.attachment = attachment

    def _finish(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def done(self, index: int, ref: AuditRecordRef | None) -> None:
        if self.error is not None:
            return
        self.refs[index] = ref
        self.left -= 1
        if self.left == 0:
            self._finish()

    def fail(self, error: AuditUnavailable) -> None:
        if self.error is None and self.left > 0:
            self.error = error
            self._finish()


@dataclass(frozen=True)
class _Tail:
    seq: int
    hash: str
    size: int  # bytes to keep; a torn last line lies beyond


def _line_start(fd: int, end: int) -> int:
    """Offset where the line ending at `end` begins (its newline, if any, is at end-1)."""
    pos = end - 1  # skip the line's own newline
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        cut = os.pread(fd, pos - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _read_tail(fd: int, path: Path) -> _Tail:
    """Find the last complete record; a torn line after it is to be dropped.

    Torn means what a crash mid-write leaves: no trailing newline, or a last
    line that does not parse (e.g. zero-filled blocks after power loss).
    """
    size = os.fstat(fd).st_size
    keep = size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        keep = _line_start(fd, size + 1)  # the torn piece has no newline of its own
    elif size:
        start = _line_start(fd, size)
        try:
            json.loads(os.pread(fd, size - start, start))
        except ValueError:
            keep = start
    if keep == 0:
        return _Tail(0, GENESIS, 0)
    start = _line_start(fd, keep)
    try:
        rec = json.loads(os.pread(fd, keep - start, start))
        seq, digest = int(rec["seq"]), str(rec["hash"])
        intact = record_hash(rec) == digest
    except (ValueError, KeyError, TypeError) as e:
        raise AuditUnavailable(
            f"audit log {path}: the record before the end is unreadable; run `govgw audit verify`"
        ) from e
    if not intact:
        raise AuditUnavailable(
            f"audit log {path}: last record (seq {seq}) fails its hash, so it was altered; "
            "the chain is not continued from a bad record. Run `govgw audit verify`"
        )
    return _Tail(seq, digest, keep)


class AuditLog:
    """Append-only, hash-chained, group-committed audit file.

    One process owns a log file (an exclusive flock is taken); several gateway
    processes write several files.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 512,
        clock: Callable[[], datetime] | None = None,
        commit_delay_s: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(path)
        self._max_batch = max_batch
        # The gateway's clock, so that records and the decisions they record
        # (grant expiry, deadlines, usage periods) share one time line.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        existed = self.path.exists()
        try:
            # Owner-only (R12): the trail names callers, purposes and subject hashes.
            self._fd = open_private(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as e:
            raise AuditUnavailable(f"cannot open audit log {self.path}: {e.strerror}") from e
        try:
            self._lock_file()
            tail = _read_tail(self._fd, self.path)
            self._truncate_torn(tail)
            if not existed:
                self._sync_parent()
        except BaseException:
            os.close(self._fd)
            raise
        self._seq = tail.seq
        self._prev = tail.hash
        self._head = AuditRecordRef(tail.seq, tail.hash) if tail.seq else None
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        # Async appends staged per event loop until its next iteration (_queue_staged).
        self._staged: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._tickets = 0  # records ever queued
        self._taken = 0  # ticket of the last record the writer has taken
        self._closing = False
        self._writer_idle = False  # waiting on an empty queue
        # Group commit with siblings (PostgreSQL's commit_delay and commit_siblings):
        # while other calls are in flight, a loop holds the records its calls stage
        # for commit_delay_s, so that one fsync, one wake-up of the loop and one
        # receipt signature cover the calls that finish meanwhile instead of each.
        # The loop holds, not the writer: a writer thread waking to look would take
        # the GIL from the busy loop each time. `calls_in_flight` (set by the
        # pipeline) counts the calls between their start and their answer.
        self.commit_delay_s = commit_delay_s
        self.calls_in_flight: Callable[[], int] | None = None
        self._held: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
        self._failure: AuditUnavailable | None = None
        self._records = 0
        self._batches = 0
        self._largest = 0
        # Queue depth and fsync latency, reported by the writer thread once per
        # batch (never per record); gateway.app sets it with --metrics-listen.
        self.metrics: Metrics | None = None
        # Run on the loop for each group commit's async appends that carry an
        # attachment (the pipeline sets it: a group's receipts are signed together).
        self.on_durable: GroupHook | None = None
        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._writer.start()

    # -- public API ---------------------------------------------------------

    @property
    def head(self) -> AuditRecordRef | None:
        """The last durable record."""
        return self._head

    @property
    def stats(self) -> AuditStats:
        with self._cond:
            return AuditStats(
                self._records, self._batches, self._largest, self._failure is not None
            )

    def append(self, event: Mapping[str, Any], timeout: float | None = None) -> AuditRecordRef:
        """Record one event; returns once it is durable (written and fsynced)."""
        return self.append_many([event], timeout)[0]

    def append_many(
        self, events: Sequence[Mapping[str, Any]], timeout: float | None = None
    ) -> list[AuditRecordRef]:
        """Record several events, contiguously; returns once all are durable."""
        if not events:
            return []
        pending, waiter = self._enqueue(events)
        assert waiter.lock is not None  # a thread caller's waiter has one
        if not waiter.lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            self._abandon(pending, timeout)
        if waiter.error is not None:
            raise waiter.error
        return waiter.refs  # type: ignore[return-value]

    def encode(self, events: Sequence[Mapping[str, Any]]) -> Encoded:
        """The events encoded and checked as `append_many_async` does first (raises
        AuditEventRejected), for a caller with many that encodes them off the event
        loop (a batch's records, in a worker thread); append the result as it is."""
        return Encoded(_Pending(e) for e in events)

    async def append_many_async(
        self,
        events: Sequence[Mapping[str, Any]] | Encoded,
        timeout: float | None = None,
        attachment: Any = None,
    ) -> list[AuditRecordRef]:
        """As append_many, for an asyncio caller: the event loop is not blocked.

        `attachment`, if any, is handed to `on_durable` with the others of its
        group commit once the records are durable, before this returns."""
        if not events:
            return []
        loop = asyncio.get_running_loop()
        # A bad event is this caller's error.
        pending = events if isinstance(events, Encoded) else [_Pending(e) for e in events]
        self._check_open()  # fail fast; checked again under the lock when queued
        durable = loop.create_future()
        waiter = _Waiter(len(pending), loop, durable, attachment)
        for i, p in enumerate(pending):
            p.waiter, p.index = waiter, i
        self._stage(loop, pending)
        # A plain timer that fails the future, not asyncio.timeout: no Timeout
        # object, task lookup or cancellation bookkeeping per call.
        expiry = None if timeout is None else loop.call_later(max(timeout, 0.0), _expire, durable)
        try:
            await durable
        except TimeoutError:
            self._abandon(pending, timeout)
        finally:
            if expiry is not None:
                expiry.cancel()
        if waiter.error is not None:
            raise waiter.error
        return waiter.refs  # type: ignore[return-value]

    def _enqueue(self, events: Sequence[Mapping[str, Any]]) -> tuple[list[_Pending], _Waiter]:
        pending = [_Pending(e) for e in events]
        waiter = _Waiter(len(pending))
        for i, p in enumerate(pending):
            p.waiter, p.index = waiter, i
        self._queue_pending(pending)
        return pending, waiter

    def _queue_pending(self, pending: list[_Pending]) -> None:
        with self._cond:
            self._check_open()
            # Stamped under the lock so that time order follows seq order.
            ts = utc_timestamp(self.clock())
            for p in pending:
                self._tickets += 1
                p.ts, p.ticket = ts, self._tickets
            self._queue.extend(pending)
            # A busy writer takes the queue when its fsync returns; waking it
            # for every record would only cost a GIL hand-off each.
            if self._writer_idle:
                self._cond.notify()

    def _stage(self, loop: asyncio.AbstractEventLoop, pending: list[_Pending]) -> None:
        """Stage an async append's records on its loop, queued by one callback at the
        next iteration -- or, while other calls are in flight, commit_delay_s later: the
        calls staged meanwhile take the log's lock and wake the writer once between
        them, not once each."""
        staged = self._staged.get(loop)
        if staged is None:
            self._staged[loop] = staged = []
            if self.commit_delay_s > 0 and self._siblings() > 0:
                self._held[loop] = loop.call_later(self.commit_delay_s, self._queue_staged, loop)
            else:
                loop.call_soon(self._queue_staged, loop)
        staged.extend(pending)

    def _siblings(self) -> int:
        """Other calls in flight."""
        in_flight = self.calls_in_flight
        return 0 if in_flight is None else in_flight() - 1

    def _queue_staged(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue what the calls of one loop iteration, or of one held group, staged."""
        self._held.pop(loop, None)
        pending = self._staged.pop(loop)
        try:
            self._queue_pending(pending)
        except AuditUnavailable as e:  # closed or failed meanwhile: fail them closed
            for p in pending:
                p.waiter.fail(e)
            _resolve_all(dict.fromkeys(p.waiter for p in pending))

    def close(self) -> None:
        """Write what is pending, stop the writer and close the file."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._writer.join()
        os.close(self._fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending side -----------------------------------------------------

    def _check_open(self) -> None:
        if self._failure is not None:
            raise AuditUnavailable(f"audit log failed earlier: {self._failure}")
        if self._closing:
            raise AuditUnavailable("audit log is closed")

    def _abandon(self, pending: list[_Pending], timeout: float | None) -> None:
        """Timed out: withdraw what the writer has not taken, then fail closed.

        Records already taken may still land; a record of a call that then
        failed is harmless, a served call without a record is not.
        """
        with self._cond:
            for p in pending:
                if p.ticket == 0 or p.ticket > self._taken:  # 0: still staged on the loop
                    p.cancelled = True
        raise AuditUnavailable(f"audit record not durable within {timeout}s")

    # -- writer side --------------------------------------------------------

    def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._writer_idle = True
                        self._cond.wait()
                    self._writer_idle = False
                    if not self._queue:
                        return
                    depth = len(self._queue)
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    self._taken = batch[-1].ticket
                metrics = self.metrics
                if metrics is not None:
                    metrics.audit_queue(depth)
                self._commit(batch)
                batch = []
                if metrics is not None:
                    metrics.audit_queue(len(self._queue))  # a racy read is fine for a gauge
        except BaseException as e:  # a bug here must not leave callers waiting
            # The type only: an exception's text might quote an event's values.
            log.error("audit writer stopped by %s; failing closed", type(e).__name__)
            self._fail(AuditUnavailable(f"audit writer stopped: {type(e).__name__}"), batch)

    def _commit(self, batch: list[_Pending]) -> None:
        if self._failure is not None:
            self._fail(self._failure, batch)
            return
        seq, prev = self._seq, self._prev
        lines: list[bytes] = []
        refs: list[AuditRecordRef | None] = []
        for p in batch:
            if p.cancelled:
                refs.append(None)
                continue
            seq += 1
            line, prev = p.line(seq, prev)
            lines.append(line)
            refs.append(AuditRecordRef(seq, prev))
        if lines:
            began = time.perf_counter()
            try:
                self._write_all(b"".join(lines))
                os.fdatasync(self._fd)  # data and size; mtime is not needed to read back
            except OSError as e:
                name = errno.errorcode.get(e.errno or 0, "EIO")
                log.error("audit log write failed (%s); failing closed", name)
                self._fail(AuditUnavailable(f"audit log write failed: {name}"), batch)
                return
            self._seq, self._prev = seq, prev
            if self.metrics is not None:
                self.metrics.audit_synced(len(lines), time.perf_counter() - began)
            with self._cond:
                self._records += len(lines)
                self._batches += 1
                self._largest = max(self._largest, len(lines))
                self._head = AuditRecordRef(seq, prev)
        for p, ref in zip(batch, refs, strict=True):
            p.waiter.done(p.index, ref)
        _wake_loops(batch, self.on_durable)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _fail(self, error: AuditUnavailable, batch: list[_Pending]) -> None:
        """Fail this batch and everything queued, and every later append."""
        with self._cond:
            if self._failure is None:
                self._failure = error
            queued = self._queue
            self._queue = []
            if queued:
                self._taken = queued[-1].ticket
        for p in batch + queued:
            p.waiter.fail(error)
        _wake_loops(batch + queued)

    # -- opening ------------------------------------------------------------

    def _lock_file(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise AuditUnavailable(
                f"audit log {self.path} is held by another process; each gateway "
                "process needs its own audit file"
            ) from e

    def _truncate_torn(self, tail: _Tail) -> None:
        size = os.fstat(self._fd).st_size
        if tail.size >= size:
            return
        torn = os.pread(self._fd, size - tail.size, tail.size)
        # Keep the torn bytes beside the log: truncation must never destroy
        # evidence, even though a torn line belonged to a response never sent.
        side = self.path.with_name(f"{self.path.name}.torn-{tail.seq + 1}-{os.getpid()}")
        with os.fdopen(open_private(side, os.O_WRONLY | os.O_TRUNC), "wb") as f:
            f.write(torn)
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(self._fd, tail.size)
        os.fsync(self._fd)
        log.warning(
            "audit log %s: truncated a torn last line (%d bytes after seq %d) left by a "
            "crash mid-write; bytes kept in %s",
            self.path,
            len(torn),
            tail.seq,
            side.name,
        )

    def _sync_parent(self) -> None:
        # A new file's directory entry must be durable too, or a crash could
        # lose the whole log along with records already acknowledged.
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Stream the records of a log, oldest first.

    A torn final line (no trailing newline) is skipped; any other unreadable
    line raises ValueError naming its line number. This does not check the
    chain: use `verify_chain` for that.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise ValueError(f"{path}: line {lineno} is not a JSON record") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{path}: line {lineno} is not a JSON object")
            yield rec
