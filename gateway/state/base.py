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
