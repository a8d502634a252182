"""The state backend interface: what gateway processes must agree on.

Rate windows, in-flight slots, enumeration statistics, suspended callers,
replay nonces, the grants version and plan-cache invalidation. Two
implementations: `InProcessState` (one process, nothing to install) and
`RedisState` (several processes, one Redis). One contract test suite runs
against both, so they cannot drift apart.

Every method is async: the gateway runs on one event loop, and a blocking
round trip to Redis would stall every call in the process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from gateway.errors import GovgwError

# Verdict.blocked values that are not a window index.
ADMITTED = -1
IN_FLIGHT_FULL = -2
SUSPENDED = -3

INVALIDATION_CHANNEL = "govgw:invalidate"


def state_unavailable(what: str = "shared state") -> GovgwError:
    """Fail closed: without shared state no limit can be enforced, so no answer is given."""
    return GovgwError(
        grpc.StatusCode.UNAVAILABLE,
        "STATE_UNAVAILABLE",
        f"{what} is unreachable; the call was not answered, retry shortly",
        retry_after_s=1.0,
    )


@dataclass(frozen=True)
class Window:
    """One sliding window checked (and, if every window passes, counted) atomically.

    With `member` empty every call counts. With a member (a caller id, a
    subject hash) only distinct members count: "by how many distinct callers
    may one ID number be verified per hour".
    """

    key: str
    limit: int
    window_s: float
    member: str = ""


@dataclass(frozen=True)
class Slot:
    """An in-flight slot: at most `limit` holders; a slot a crashed process
    never released lapses after `ttl_s`, so a leak cannot lock a caller out."""

    key: str
    limit: int
    ttl_s: float = 30.0


@dataclass(frozen=True)
class Verdict:
    blocked: int = ADMITTED  # ADMITTED, IN_FLIGHT_FULL, SUSPENDED, or the index of the full window
    retry_after_s: float = 0.0

    @property
    def admitted(self) -> bool:
        return self.blocked == ADMITTED


@dataclass(frozen=True)
class Observation:
    """A caller's verification answers within the monitor's window."""

    answered: int
    no_match: int
    distinct_subjects: int

    @property
    def no_match_ratio(self) -> float:
        return self.no_match / self.answered if self.answered else 0.0


def crosses(obs: Observation, stop: tuple[int, float]) -> bool:
    """Past the monitor's threshold: at least `stop[0]` answers, and a share of
    misses above `stop[1]` (the Redis scripts compute the same, in the same order)."""
    return obs.answered >= stop[0] and obs.no_match_ratio > stop[1]


class StateBackend(ABC):
    # True when other processes see this state (Redis); False for in-process.
    shared: bool = False

    @abstractmethod
    async def admit(
        self,
        caller_id: str,
        windows: Sequence[Window],
        slot: Slot | None,
        token: str,
        now: float,
    ) -> Verdict:
        """All or nothing: refuse a suspended caller, a full window or a full
        slot; otherwise count the call in every window and take the slot
        under `token`. Nothing is counted for a refused call."""

    @abstractmethod
    async def release(self, slot: Slot, token: str) -> None: ...

    @abstractmethod
    async def reserve_subjects(
        self,
        caller_id: str,
        subjects: Sequence[str],
        limit: int,
        window_s: float,
        now: float,
        since: float = 0.0,
    ) -> int:
        """Count these subjects among the caller's distinct subjects of the window
        before they are read, in one atomic step: if that would take the caller past
        `limit`, count none of them and return -1; otherwise return the new count.
        (A batch, or many calls at once, cannot overshoot the budget.)"""

    @abstractmethod
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
        """Record the answers of one call -- one per subject (keyed hash), each a
        miss (NO_MATCH, not found) or not -- and return the caller's statistics
        over the window, counting nothing from before `since` (a reinstatement).
        With `release`, also give back the call's in-flight slot (held under
        `token`) in the same step: one round trip fewer per call."""

    # The batch forms: the items of one chunk of a batch call, in order, in one step
    # (one round trip to Redis instead of one per item). Each is what the single
    # method would do item after item; the defaults here do exactly that.

    async def admit_many(
        self,
        caller_id: str,
        windows: Sequence[Sequence[Window]],
        slot: Slot | None,
        token: str,
        now: float,
    ) -> list[Verdict]:
        """`admit` for each item's windows in order, each all or nothing (a refused
        item is counted nowhere, the next is still tried); the slot is taken once for
        them all under `token`. A suspended caller or a full slot refuses every item
        (and no slot is taken); otherwise the slot is held, to be released."""
        first = await self.admit(caller_id, (), slot, token, now)
        if not first.admitted:
            return [first] * len(windows)
        return [
            await self.admit(caller_id, ws, None, f"{token}#{i}", now)
            for i, ws in enumerate(windows)
        ]

    async def reserve_many(
        self,
        caller_id: str,
        subjects: Sequence[Sequence[str]],
        limit: int,
        window_s: float,
        now: float,
        since: float = 0.0,
    ) -> int:
        """`reserve_subjects` for each item's subjects in order, up to the first item
        that would cross `limit` (it and the rest are counted nowhere); returns how
        many items were counted."""
        for i, item in enumerate(subjects):
            if await self.reserve_subjects(caller_id, item, limit, window_s, now, since) < 0:
                return i
        return len(subjects)

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
        """`observe` for each item's answers in order, up to and including the first
        item after which the statistics cross `stop` = (min answers, max no-match
        ratio): the items after it are counted nowhere. Returns how many items were
        counted and the statistics after the last of them. With `release`, the slot
        held under `token` is given back first."""
        if release is not None:
            await self.release(release, token)
        obs = Observation(0, 0, 0)
        for i, (s, m) in enumerate(zip(subjects, misses, strict=True)):
            obs = await self.observe(caller_id, s, m, window_s, f"{token}#{i}", now, since)
            if crosses(obs, stop):
                return i + 1, obs
        return len(subjects), obs

    @abstractmethod
    async def suspend(self, caller_id: str, reason: str) -> bool:
        """Mark suspended; True if it was not already."""

    @abstractmethod
    async def reinstate(self, caller_id: str) -> bool:
        """Lift a suspension; True if there was one."""

    @abstractmethod
    async def suspended(self) -> dict[str, str]:
        """caller id -> reason."""

    @abstractmethod
    async def claim(self, key: str, ttl_s: float) -> bool:
        """Claim a one-time key (nonce, idempotency key); False if already claimed."""

    @abstractmethod
    async def put_if_absent(self, key: str, value: str, ttl_s: float) -> str | None:
        """Store `value` unless the key holds one; None if stored, else the value held."""

    @abstractmethod
    async def put(self, key: str, value: str, ttl_s: float) -> None: ...

    @abstractmethod
    async def forget(self, key: str) -> None: ...

    @abstractmethod
    async def grants_version(self) -> int: ...

    @abstractmethod
    async def bump_grants_version(self) -> int:
        """Bump the version and tell every process to drop its cached plans."""

    @abstractmethod
    async def watch(self, on_invalidate: Callable[[str], None]) -> None:
        """Call `on_invalidate(message)` whenever any process publishes an invalidation."""

    @abstractmethod
    async def publish_invalidation(self, message: str) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise STATE_UNAVAILABLE when the backend cannot be reached."""

    @abstractmethod
    async def aclose(self) -> None: ...
