"""In-process state: the embedded default for a single gateway process.

Everything runs on the server's one event loop, so no lock is needed: no
await happens between a check and its update.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from gateway.state.base import (
    ADMITTED,
    IN_FLIGHT_FULL,
    SUSPENDED,
    Observation,
    Slot,
    StateBackend,
    Verdict,
    Window,
)


class _Log:
    """A sliding-window log: every hit's time (count windows) or each member's last time."""

    def __init__(self) -> None:
        self.hits: deque[float] = deque()
        self.members: dict[str, float] = {}
        self.window_s = 0.0  # the longest window it was used with, for the sweep

    def see(self, member: str, now: float) -> None:
        # Re-inserted at the end, so `members` stays ordered by last time and
        # trimming stops at the first fresh member instead of scanning them all
        # (a caller may have thousands of subjects in the window).
        self.members.pop(member, None)
        self.members[member] = now

    def trim(self, horizon: float) -> None:
        while self.hits and self.hits[0] <= horizon:
            self.hits.popleft()
        members = self.members
        while members:
            oldest = next(iter(members))
            if members[oldest] > horizon:
                break
            del members[oldest]

    def size(self, distinct: bool) -> int:
        return len(self.members) if distinct else len(self.hits)

    def oldest(self, distinct: bool) -> float:
        # Ordered by last time (see `see`); a wall clock stepping back only keeps
        # a member a little longer, erring towards counting it.
        return next(iter(self.members.values())) if distinct else self.hits[0]


# Every this many operations, logs that have emptied are dropped: there is
# one per subject asked about, so without a sweep memory would only grow.
SWEEP_EVERY = 4096


class InProcessState(StateBackend):
    shared = False

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._suspended: dict[str, str] = {}
        self._claims: dict[str, float] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._grants_version = 0
        self._watchers: list[Callable[[str], None]] = []
        self._ops = 0

    def _log(self, key: str, window_s: float) -> _Log:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        log.window_s = max(log.window_s, window_s)
        return log

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
        if slot is not None:
            holders = self._slots.setdefault(slot.key, {})
            for t in [t for t, exp in holders.items() if exp <= now]:
                del holders[t]
            if len(holders) >= slot.limit:
                return Verdict(IN_FLIGHT_FULL, 0.05)
            holders[token] = now + slot.ttl_s
        for w in windows:
            log = self._log(w.key, w.window_s)
            if w.member:
                log.see(w.member, now)
            else:
                log.hits.append(now)
        return Verdict(ADMITTED)

    async def release(self, slot: Slot, token: str) -> None:
        self._slots.get(slot.key, {}).pop(token, None)

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

    async def suspend(self, caller_id: str, reason: str) -> bool:
        new = caller_id not in self._suspended
        self._suspended[caller_id] = reason
        return new

    async def reinstate(self, caller_id: str) -> bool:
        return self._suspended.pop(caller_id, None) is not None

    async def suspended(self) -> dict[str, str]:
        return dict(self._suspended)

    async def claim(self, key: str, ttl_s: float) -> bool:
        now = asyncio.get_running_loop().time()
        exp = self._claims.get(key)
        if exp is not None and exp > now:
            return False
        self._claims[key] = now + ttl_s
        if len(self._claims) > 100_000:  # keep memory bounded: drop lapsed claims
            for k in [k for k, e in self._claims.items() if e <= now]:
                del self._claims[k]
        return True

    async def put_if_absent(self, key: str, value: str, ttl_s: float) -> str | None:
        now = asyncio.get_running_loop().time()
        held = self._values.get(key)
        if held is not None and held[1] > now:
            return held[0]
        self._values[key] = (value, now + ttl_s)
        return None

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        self._values[key] = (value, asyncio.get_running_loop().time() + ttl_s)

    async def forget(self, key: str) -> None:
        self._values.pop(key, None)

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
        self._watchers.clear()
