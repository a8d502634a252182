"""The enumeration monitor: every RPC that answers about a subject key is an oracle (R10).

A yes/no verification is an oracle: with enough guesses a caller learns who
is in the pool, or recovers a person's name for a known ID number. So is an
attribute check (`resident_in` for a sweep of ID numbers) and so is a lookup
(found / not found). Every route that takes subject keys declares its answer
kind (`gateway.routes.Answer`) and the pipeline reports each subject's answer
here as a hit or a miss (NO_MATCH; no record; not in the base dataset).
Past a configured share of misses, or past a configured spread of distinct
subjects, within the window, the caller is suspended (Aba 2024 art. 42): at
once for every process (state backend), persisted in the caller registry (a
restart keeps it), audited, and lifted only by an administrator
(`govgw callers reinstate`). Thresholds may differ per caller kind.

The answers are recorded before the response leaves, so a caller can get at
most `min_answers` answers before the ratio is judged; the suspension takes
effect from the caller's next call. A batch counts one answer per subject.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.callers import Caller, CallerRegistry
from gateway.config import OracleConfig
from gateway.errors import GovgwError, caller_suspended
from gateway.state import Observation, StateBackend
from gateway.state.base import crosses

if TYPE_CHECKING:
    from gateway.limits import Admission

log = logging.getLogger("govgw.oracle")

SUSPEND_ACTION = "caller.suspend"
REINSTATE_ACTION = "caller.reinstate"
MONITOR = "enumeration-monitor"


class BudgetExceeded(GovgwError):
    """A call refused because it would cross the distinct-subject budget."""

    def __init__(self, suspension: Suspension) -> None:
        refusal = caller_suspended(suspension.caller_id)
        super().__init__(refusal.code, refusal.reason, refusal.message, metadata=refusal.metadata)
        self.suspension = suspension


@dataclass(frozen=True)
class Suspension:
    caller_id: str
    reason: str  # NO_MATCH_RATIO | SUBJECT_SPREAD | ADMINISTRATOR
    detail: str
    operator: str = ""  # one clerk of the caller, not the caller (contract.metadata)

    def audit_event(self, by: str, action: str = SUSPEND_ACTION) -> dict[str, Any]:
        event = {
            "action": action,
            "caller": self.caller_id,
            "reason": self.reason,
            "detail": self.detail,
            "by": by,
            "outcome": "OK",
            "subject": "",
        }
        if self.operator:
            event["operator"] = self.operator
        return event


@dataclass(frozen=True)
class _Scope:
    """One set of counters a call is judged by: the caller's, or one operator's."""

    key: str  # the state backend's principal: caller id, or caller/operator
    operator: str
    config: OracleConfig
    since: float  # nothing from before this (a reinstatement) counts


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

    def _scopes(self, caller: Caller) -> tuple[_Scope, ...]:
        """A call naming an operator is judged by the operator's counters (the kind's
        thresholds: one clerk's misuse suspends that clerk) and by the counters of all
        the caller's operators together, a hall-wide bound `hall_scale` times larger
        that suspends the caller. A call naming none is judged by the caller's own
        counters (the kind's thresholds), apart from its operators' calls, so that a
        clerk's misses do not count against the hall's unattended system."""
        c = self.config.for_kind(caller.kind)
        hall_since = caller.status_since if caller.status == "active" else 0.0
        if not caller.operator:
            return (_Scope(caller.id, "", c, hall_since),)
        return (
            _Scope(caller.principal, caller.operator, c, caller.active_since),
            _Scope(f"{caller.id}/*", "", c.for_hall(), hall_since),  # '*' names no operator
        )

    async def reserve(self, caller: Caller, subject_hashes: Sequence[str], token: str) -> None:
        """Count the call's subjects against the distinct-subject budget before anything
        is read: a call that would cross it is not answered and the caller (or the
        operator) is suspended (SUBJECT_SPREAD), so neither a batch nor many calls at
        once can harvest past it.

        Raises PERMISSION_DENIED CALLER_SUSPENDED; the suspension is on `.suspension`."""
        _, found = await self.reserve_many(caller, [subject_hashes])  # one item: the call
        if found is not None:
            raise BudgetExceeded(found)

    async def observe(
        self,
        caller: Caller,
        subject_hashes: Sequence[str],
        misses: Sequence[bool],
        token: str,
        admission: Admission | None = None,
    ) -> tuple[Suspension, ...]:
        """Record a call's answers, one per subject, each a miss (NO_MATCH, not
        found) or not; suspend the caller or the operator (and return why) past a
        threshold.

        Gives the call's in-flight slot back in the same state round trip. (The spread of
        subjects is judged before the read, by `reserve`.)"""
        _, found = await self.observe_many(caller, [subject_hashes], [misses], token, admission)
        return found

    async def reserve_many(
        self, caller: Caller, subject_hashes: Sequence[Sequence[str]]
    ) -> tuple[int, Suspension | None]:
        """`reserve` for the items of one chunk of a batch, in order: how many leading
        items were counted, and the suspension of the first that would cross the
        budget (None if none would): it and the items after it are not answered."""
        n, found = len(subject_hashes), None
        for scope in self._scopes(caller):
            c = scope.config
            counted = await self.state.reserve_many(
                scope.key, subject_hashes[:n], c.max_subjects, c.window_s, self.clock(), scope.since
            )
            if counted < n:
                n, found = counted, self._spread(caller, scope)
            if n == 0:  # nothing left to count in the other scope
                break
        if found is not None:
            await self._trip(found)
        return n, found

    async def observe_many(
        self,
        caller: Caller,
        subject_hashes: Sequence[Sequence[str]],
        misses: Sequence[Sequence[bool]],
        token: str,
        admission: Admission | None = None,
    ) -> tuple[int, tuple[Suspension, ...]]:
        """`observe` for the answered items of one chunk of a batch, in order, up to
        the first after which a threshold is crossed: how many items' answers stand,
        and the suspensions the last of them caused (the items after it are not
        counted and not answered). Gives the chunk's in-flight slot back."""
        n, found = len(subject_hashes), []
        for i, scope in enumerate(self._scopes(caller)):
            c = scope.config
            counted, obs = await self.state.observe_many(
                scope.key,
                subject_hashes[:n],
                misses[:n],
                c.window_s,
                token,
                self.clock(),
                since=scope.since,
                release=admission.slot if admission is not None and i == 0 else None,
                stop=(c.min_answers, c.max_no_match_ratio),
            )
            if admission is not None:
                admission.released = True
            if crosses(obs, (c.min_answers, c.max_no_match_ratio)):
                n = counted
                found.append(self._ratio(caller, scope, obs))
        for s in found:
            await self._trip(s)
        return n, tuple(found)

    @staticmethod
    def _spread(caller: Caller, scope: _Scope) -> Suspension:
        c = scope.config
        return Suspension(
            caller.id,
            "SUBJECT_SPREAD",
            f"a call would take the {'operator' if scope.operator else 'caller'} past"
            f" {c.max_subjects} distinct subjects in {c.window_s:g} s",
            scope.operator,
        )

    @staticmethod
    def _ratio(caller: Caller, scope: _Scope, obs: Observation) -> Suspension:
        return Suspension(
            caller.id,
            "NO_MATCH_RATIO",
            f"{obs.no_match} of {obs.answered} answers missed (no match, not found)"
            f" in {scope.config.window_s:g} s",
            scope.operator,
        )

    async def _trip(self, found: Suspension) -> None:
        await self.suspend(found)
        who = f"operator {found.operator} of " if found.operator else ""
        log.warning(
            "%scaller %s suspended: %s (%s)", who, found.caller_id, found.reason, found.detail
        )

    async def suspend(self, s: Suspension) -> None:
        if s.operator:
            # One clerk: the registry (shared by every process on the data directory,
            # re-read within REFRESH_S) refuses the operator; the hall works on.
            if self.registry is not None:
                await asyncio.to_thread(
                    self.registry.set_operator_status,
                    s.caller_id,
                    s.operator,
                    "suspended",
                    s.reason,
                )
            return
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
