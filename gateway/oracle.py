"""The verification oracle's guard: enumeration defence and suspension (R10).

A yes/no verification RPC is an oracle: with enough guesses a caller learns
who is in the pool, or recovers a person's name for a known ID number. The
limits bound how often one subject is asked about; this module watches what
each caller gets back. Past a configured share of NO_MATCH answers, or past
a configured spread of distinct subjects, within the window, the caller is
suspended (Aba 2024 art. 42): at once for every process (state backend),
persisted in the caller registry (a restart keeps it), audited, and lifted
only by an administrator (`govgw callers reinstate`).

The answer is recorded before the response leaves, so a caller can get at
most `min_answers` answers before the ratio is judged; the suspension takes
effect from the caller's next call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.callers import Caller, CallerRegistry
from gateway.plan import VERIFY_ATTRIBUTES, VERIFY_IDENTITY
from gateway.state import StateBackend

if TYPE_CHECKING:
    from gateway.config import ServeConfig
    from gateway.limits import Admission
    from gateway.pipeline import Parts

log = logging.getLogger("govgw.oracle")

SUSPEND_ACTION = "caller.suspend"
REINSTATE_ACTION = "caller.reinstate"
MONITOR = "enumeration-monitor"
NO_MATCH = "NO_MATCH"


@dataclass(frozen=True)
class OracleConfig:
    window_s: float = 3600.0
    # The NO_MATCH ratio is judged once a caller has had this many answers in
    # the window: fewer is noise (a clerk's typo), more gives an attacker more.
    min_answers: int = 20
    max_no_match_ratio: float = 0.5
    # Distinct subjects one caller may verify per window (a counter serves
    # people one by one; sweeping thousands of ID numbers is a harvest).
    max_subjects: int = 5000
    actions: tuple[str, ...] = (VERIFY_IDENTITY, VERIFY_ATTRIBUTES)


@dataclass(frozen=True)
class Suspension:
    caller_id: str
    reason: str  # NO_MATCH_RATIO | SUBJECT_SPREAD | ADMINISTRATOR
    detail: str

    def audit_event(self, by: str, action: str = SUSPEND_ACTION) -> dict[str, Any]:
        return {
            "action": action,
            "caller": self.caller_id,
            "reason": self.reason,
            "detail": self.detail,
            "by": by,
            "outcome": "OK",
            "subject": "",
        }


class Oracle:
    def __init__(
        self,
        state: StateBackend,
        registry: CallerRegistry | None,
        config: OracleConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.registry = registry
        self.config = config or OracleConfig()
        self.clock = clock
        self._watching = False
        self.invalidations = 0  # announcements received (policy or grant changes)

    def watches(self, action: str, answer: str) -> bool:
        return bool(answer) and action in self.config.actions

    async def observe(
        self,
        caller: Caller,
        action: str,
        answer: str,
        subject_hashes: Sequence[str],
        token: str,
        admission: Admission | None = None,
    ) -> Suspension | None:
        """Record one answer; suspend the caller (and return why) past a threshold.

        Gives the call's in-flight slot back in the same state round trip."""
        if not self.watches(action, answer):
            return None
        c = self.config
        obs = await self.state.observe(
            caller.id,
            subject_hashes[0] if subject_hashes else "",
            answer == NO_MATCH,
            c.window_s,
            token,
            self.clock(),
            since=caller.status_since if caller.status == "active" else 0.0,
            release=admission.slot if admission is not None else None,
        )
        if admission is not None:
            admission.released = True
        found: Suspension | None = None
        if obs.answered >= c.min_answers and obs.no_match_ratio > c.max_no_match_ratio:
            found = Suspension(
                caller.id,
                "NO_MATCH_RATIO",
                f"{obs.no_match} of {obs.answered} answers NO_MATCH in {c.window_s:g} s",
            )
        elif obs.distinct_subjects > c.max_subjects:
            found = Suspension(
                caller.id,
                "SUBJECT_SPREAD",
                f"{obs.distinct_subjects} distinct subjects in {c.window_s:g} s",
            )
        if found is not None:
            await self.suspend(found)
            log.warning("caller %s suspended: %s (%s)", caller.id, found.reason, found.detail)
        return found

    async def suspend(self, s: Suspension) -> None:
        # Shared state first: every process refuses the caller's next call at
        # once. The in-process backend needs no copy: the registry below is
        # what this process checks, and a copy here would outlive a reinstate
        # made from the CLI.
        if self.state.shared:
            await self.state.suspend(s.caller_id, s.reason)
        if self.registry is not None:
            # SQLite write off the event loop; persisted so a restart keeps it.
            await asyncio.to_thread(self.registry.set_status, s.caller_id, "suspended")

    def start_watching(self, on_invalidate: Callable[[], None]) -> None:
        """Drop cached plans whenever any process announces a policy or grant change."""
        if self._watching:
            return
        self._watching = True

        def received(message: str) -> None:
            self.invalidations += 1
            on_invalidate()

        asyncio.get_running_loop().create_task(self.state.watch(received))


def attach(parts: Parts, config: ServeConfig) -> Parts:
    """Give assembled parts their configured limits and oracle on the configured state.

    Kept out of `gateway.app` (another owner's file): `serve` and the tests
    call it right after `build_parts`.
    """
    from gateway.limits import Limits
    from gateway.state import open_state
    from gateway.state.replay import ReplayGuard

    # In-process windows are kept in the data directory so that a restart does
    # not hand every caller a fresh budget (Redis keeps its own, with AOF on).
    state = open_state(config.redis_url, config.layout.state)
    if not state.shared and not getattr(state, "persistent", False):
        log.warning("in-process limits are not kept: a restart starts every window afresh")
    parts.limits = Limits.from_config(config.limits, state)
    parts.oracle = Oracle(state, parts.auth.registry, config.oracle)
    parts.replay = ReplayGuard(state)
    return parts
