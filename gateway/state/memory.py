"""In-process state: the embedded default for a single gateway process.

Everything runs on the server's one event loop, so no lock is needed: no
await happens between a check and its update.

Given a path (`govgw serve` gives `<data-dir>/state.sqlite`), the windows
(rate, per-subject, the enumeration monitor's answers, misses and distinct
subjects), suspensions, nonce claims and idempotency values survive a
restart: every `SNAPSHOT_INTERVAL_S` what changed is copied on the loop (in
proportion to the calls since the last copy) and written on a worker thread
(gateway.state.snapshot); `aclose` writes the rest, and the next start loads
what has not expired. A crash (SIGKILL, power cut) loses at most the last
interval's changes: up to one second of counted calls, answers and claims.
No call waits on the disk. In-flight slots are not kept: the calls holding
them died with the process. Without a path (bare library use) nothing is
kept, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.state.base import (
    ADMITTED,
    IN_FLIGHT_FULL,
    SUSPENDED,
    Observation,
    Slot,
    StateBackend,
    Verdict,
    Window,
    crosses,
)
from gateway.state.snapshot import Batch, SnapshotFile
from gateway.state.window_log import WindowLog

logger = logging.getLogger("govgw.state")

# How often changes are written to the state file: the most a crash can lose.
SNAPSHOT_INTERVAL_S = 1.0


_ADMITTED = Verdict(ADMITTED)

# Every this many operations, logs that have emptied are dropped: there is
# one per subject asked about, so without a sweep memory would only grow.
SWEEP_EVERY = 4096


class InProcessState(StateBackend):
    shared = False

    def __init__(
        self,
        path: Path | None = None,
        *,
        interval_s: float = SNAPSHOT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._logs: dict[str, WindowLog] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._suspended: dict[str, str] = {}
        # Expiry times are wall-clock (not the loop's monotonic clock) so that
        # they still mean something to the next process, after a reboot too.
        self._claims: dict[str, float] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._grants_version = 0
        self._watchers: list[Callable[[str], None]] = []
        self._ops = 0
        self._clock = clock
        self.interval_s = interval_s
        # Keys changed since the last write (only kept when there is a file).
        self._dirty_logs: set[str] = set()
        self._dirty_claims: set[str] = set()
        self._dirty_values: set[str] = set()
        self._dirty_suspended = False
        self._failed: list[Batch] = []  # written again first, after a failed write
        self._flusher: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._file = SnapshotFile(path) if path is not None else None
        if self._file is not None:
            self._load(self._file)

    @property
    def persistent(self) -> bool:
        return self._file is not None

    def _load(self, file: SnapshotFile) -> None:
        now = self._clock()
        loaded = file.load(now)
        for key, (window_s, hits, members) in loaded.logs.items():
            log = WindowLog.loaded(window_s, hits, members)
            log.trim(now - window_s)  # the file purges by expiry; this is the same horizon
            if log.hits or log.members:
                self._logs[key] = log
        self._suspended = loaded.suspended
        self._claims = loaded.claims
        self._values = loaded.values

    def _log(self, key: str, window_s: float) -> WindowLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = WindowLog()
        log.window_s = max(log.window_s, window_s)
        if self._file is not None:
            self._changed(self._dirty_logs, key)
        return log

    def _changed(self, dirty: set[str], key: str) -> None:
        dirty.add(key)
        if self._flusher is None:
            self._start_writer()

    def _start_writer(self) -> None:
        if self._flusher is None:
            # Started on first use, on the loop the state serves from.
            self._closing = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        assert self._closing is not None
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval_s)
            await self.flush()

    def _collect(self) -> Batch:
        """Copy what changed, on the loop: cheap, in proportion to the changes."""
        batch = Batch(self._clock())
        for key in self._dirty_logs:
            log = self._logs.get(key)  # a log swept away has only expired rows left
            delta = log.changes(key) if log is not None else None
            if delta is not None:
                batch.logs.append(delta)
        batch.claims = [(k, self._claims[k]) for k in self._dirty_claims if k in self._claims]
        for k in self._dirty_values:
            held = self._values.get(k)
            batch.values.append((k, None, 0.0) if held is None else (k, held[0], held[1]))
        if self._dirty_suspended:
            batch.suspended = dict(self._suspended)
        self._dirty_logs, self._dirty_claims, self._dirty_values = set(), set(), set()
        self._dirty_suspended = False
        return batch

    async def flush(self) -> None:
        """Write what changed since the last write (off the event loop)."""
        file = self._file
        if file is None:
            return
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:  # batches are written in the order collected
            batch = self._collect()
            pending = [*self._failed, batch] if batch else self._failed
            self._failed = []
            for i, b in enumerate(pending):
                try:
                    await asyncio.to_thread(file.write, b)
                except (sqlite3.Error, OSError) as e:
                    # Kept and written again next time: a full disk must not
                    # silently reset the windows once it has room again.
                    logger.error("state file %s not written: %s", file.path.name, type(e).__name__)
                    self._failed = pending[i:]
                    return

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % SWEEP_EVERY:
            return
        for key, log in list(self._logs.items()):
            log.trim(now - log.window_s)
            if not log.hits and not log.members:
                del self._logs[key]
        for key, holders in list(self._slots.items()):
            if all(exp <= now for exp in holders.values()):
                del self._slots[key]

    async def admit(
        self, caller_id: str, windows: Sequence[Window], slot: Slot | None, token: str, now: float
    ) -> Verdict:
        self._sweep(now)
        if caller_id in self._suspended:
            return Verdict(SUSPENDED)
        refused = self._check(windows, now)
        if refused is not None:
            return refused
        if slot is not None and not self._take(slot, token, now):
            return Verdict(IN_FLIGHT_FULL, 0.05)
        self._count(windows, now)
        return _ADMITTED

    async def admit_many(
        self,
        caller_id: str,
        windows: Sequence[Sequence[Window]],
        slot: Slot | None,
        token: str,
        now: float,
    ) -> list[Verdict]:
        # As the default (the slot, then admit item after item), in one pass.
        self._sweep(now)
        if caller_id in self._suspended:
            return [Verdict(SUSPENDED)] * len(windows)
        if slot is not None and not self._take(slot, token, now):
            return [Verdict(IN_FLIGHT_FULL, 0.05)] * len(windows)
        out = []
        for item in windows:
            refused = self._check(item, now)
            if refused is None:
                self._count(item, now)
            out.append(refused or _ADMITTED)
        return out

    def _check(self, windows: Sequence[Window], now: float) -> Verdict | None:
        """The refusal of the first full window, or None if every one has room."""
        for i, w in enumerate(windows):
            log = self._log(w.key, w.window_s)
            log.trim(now - w.window_s)
            distinct = bool(w.member)
            if distinct and w.member in log.members:
                continue  # a member already counted does not count again
            if log.size(distinct) >= w.limit:
                retry = (
                    log.oldest(distinct) + w.window_s - now if log.size(distinct) else w.window_s
                )
                return Verdict(i, max(retry, 0.001))
        return None

    def _take(self, slot: Slot, token: str, now: float) -> bool:
        holders = self._slots.setdefault(slot.key, {})
        for t in [t for t, exp in holders.items() if exp <= now]:
            del holders[t]
        if len(holders) >= slot.limit:
            return False
        holders[token] = now + slot.ttl_s
        return True

    def _count(self, windows: Sequence[Window], now: float) -> None:
        for w in windows:
            log = self._log(w.key, w.window_s)
            if w.member:
                log.see(w.member, now)
            else:
                log.hits.append(now)

    async def release(self, slot: Slot, token: str) -> None:
        self._slots.get(slot.key, {}).pop(token, None)

    async def reserve_subjects(
        self,
        caller_id: str,
        subjects: Sequence[str],
        limit: int,
        window_s: float,
        now: float,
        since: float = 0.0,
    ) -> int:
        spread = self._log(f"obs:{caller_id}:subjects", window_s)
        spread.trim(max(now - window_s, since))
        new = {s for s in subjects if s and s not in spread.members}
        if len(spread.members) + len(new) > limit:
            return -1
        for subject in subjects:
            if subject:
                spread.see(subject, now)
        return len(spread.members)

    async def observe(
        self,
        caller_id: str,
        subjects: Sequence[str],
        misses: Sequence[bool],
        window_s: float,
        token: str,
        now: float,
        since: float = 0.0,
        release: Slot | None = None,
    ) -> Observation:
        if release is not None:
            await self.release(release, token)
        horizon = max(now - window_s, since)
        answered, missed, spread = (
            self._log(f"obs:{caller_id}:{part}", window_s)
            for part in ("answered", "no_match", "subjects")
        )
        answered.hits.extend([now] * len(misses))
        missed.hits.extend([now] * sum(misses))
        for subject in subjects:
            if subject:
                spread.see(subject, now)
        for log in (answered, missed, spread):
            log.trim(horizon)
        return Observation(len(answered.hits), len(missed.hits), len(spread.members))

    async def observe_many(
        self,
        caller_id: str,
        subjects: Sequence[Sequence[str]],
        misses: Sequence[Sequence[bool]],
        window_s: float,
        token: str,
        now: float,
        since: float = 0.0,
        release: Slot | None = None,
        stop: tuple[int, float] = (0, 1.0),
    ) -> tuple[int, Observation]:
        # As the default (observe item after item), with the three logs looked up and
        # trimmed once: nothing else runs on the loop in between.
        if release is not None:
            await self.release(release, token)
        answered, missed, spread = (
            self._log(f"obs:{caller_id}:{part}", window_s)
            for part in ("answered", "no_match", "subjects")
        )
        horizon = max(now - window_s, since)
        for log in (answered, missed, spread):
            log.trim(horizon)
        obs, counted = Observation(len(answered.hits), len(missed.hits), len(spread.members)), 0
        for item_subjects, item_misses in zip(subjects, misses, strict=True):
            counted += 1
            answered.hits.extend([now] * len(item_misses))
            missed.hits.extend([now] * sum(item_misses))
            for subject in item_subjects:
                if subject:
                    spread.see(subject, now)
            obs = Observation(len(answered.hits), len(missed.hits), len(spread.members))
            if crosses(obs, stop):
                break
        return counted, obs

    async def suspend(self, caller_id: str, reason: str) -> bool:
        new = caller_id not in self._suspended
        self._suspended[caller_id] = reason
        self._suspensions_changed()
        return new

    async def reinstate(self, caller_id: str) -> bool:
        found = self._suspended.pop(caller_id, None) is not None
        self._suspensions_changed()
        return found

    def _suspensions_changed(self) -> None:
        if self._file is not None:
            self._dirty_suspended = True
            self._start_writer()

    async def suspended(self) -> dict[str, str]:
        return dict(self._suspended)

    async def claim(self, key: str, ttl_s: float) -> bool:
        now = self._clock()
        exp = self._claims.get(key)
        if exp is not None and exp > now:
            return False
        self._claims[key] = now + ttl_s
        if self._file is not None:
            self._changed(self._dirty_claims, key)
        if len(self._claims) > 100_000:  # keep memory bounded: drop lapsed claims
            for k in [k for k, e in self._claims.items() if e <= now]:
                del self._claims[k]
        return True

    async def put_if_absent(self, key: str, value: str, ttl_s: float) -> str | None:
        now = self._clock()
        held = self._values.get(key)
        if held is not None and held[1] > now:
            return held[0]
        await self.put(key, value, ttl_s)
        return None

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        self._values[key] = (value, self._clock() + ttl_s)
        if self._file is not None:
            self._changed(self._dirty_values, key)

    async def forget(self, key: str) -> None:
        self._values.pop(key, None)
        if self._file is not None:
            self._changed(self._dirty_values, key)

    async def grants_version(self) -> int:
        return self._grants_version

    async def bump_grants_version(self) -> int:
        self._grants_version += 1
        await self.publish_invalidation(f"grants:{self._grants_version}")
        return self._grants_version

    async def watch(self, on_invalidate: Callable[[str], None]) -> None:
        self._watchers.append(on_invalidate)

    async def publish_invalidation(self, message: str) -> None:
        for cb in list(self._watchers):
            cb(message)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        """Write what is left and close the file (a clean shutdown loses nothing)."""
        self._watchers.clear()
        if self._flusher is not None and self._closing is not None:
            self._closing.set()
            with contextlib.suppress(Exception):
                await self._flusher  # its last round writes what changed since
            self._flusher = None
        await self.flush()
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.to_thread(file.close)
