"""Limits: how much a caller may ask, checked before any pool read.

Three kinds of limit, all counted in the state backend (in-process by
default, Redis when several processes serve together):

- per caller x RPC x dataset: a sliding window, sized by tier;
- per subject: how many times, and by how many distinct callers, one ID
  number may be asked about per hour (counted under its keyed hash, never
  the raw key), so many callers cannot share out the guessing;
- a cap on calls in flight per caller.

The tier is the plan's `rate_tier` obligation when the policy names one,
otherwise the caller kind's; operators tune tiers in config. Every check
of one call is one atomic step: a refused call is counted nowhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.callers import Caller
from gateway.config import (  # the settings live in config
    DEFAULT_TIERS,
    LimitsConfig,
    StreamLimits,
    SubjectLimits,
    Tier,
)
from gateway.errors import GovgwError, caller_suspended, exhausted
from gateway.plan import Plan
from gateway.state import InProcessState, Slot, StateBackend, Verdict, Window
from gateway.state.base import ADMITTED, IN_FLIGHT_FULL, SUSPENDED

log = logging.getLogger("govgw.limits")


# A plan's default obligation: "use the caller kind's tier".
STANDARD = "standard"
# Rate windows kept made (one entry per caller x action x datasets x tiers in use).
RATE_CACHE = 4096


@dataclass
class Admission:
    """An admitted call's in-flight slot; whoever gives it back marks it released."""

    slot: Slot
    released: bool = False


class StreamGate:
    """Counts open streams; `enter` admits one or refuses it, `leave` gives it back."""

    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.limits = limits or StreamLimits()
        self.open = 0
        self.by_caller: dict[str, int] = {}

    def enter(self, caller_id: str) -> None:
        lim = self.limits
        mine = self.by_caller.get(caller_id, 0)
        if mine >= lim.per_caller:
            raise exhausted(
                "STREAMS_EXHAUSTED",
                f"at most {lim.per_caller} open streams per caller",
                retry_after_s=lim.retry_after_s,
            )
        if self.open >= lim.per_server:
            raise exhausted(
                "STREAMS_EXHAUSTED",
                f"at most {lim.per_server} open streams on this server",
                retry_after_s=lim.retry_after_s,
            )
        self.open += 1
        self.by_caller[caller_id] = mine + 1

    def leave(self, caller_id: str) -> None:
        self.open -= 1
        left = self.by_caller[caller_id] - 1
        if left:
            self.by_caller[caller_id] = left
        else:
            del self.by_caller[caller_id]


class Limits:
    def __init__(
        self,
        tiers: Mapping[str, Tier] | None = None,
        *,
        state: StateBackend | None = None,
        subject: SubjectLimits | None = None,
        streams: StreamLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tiers = dict(DEFAULT_TIERS if tiers is None else tiers)
        # None: no per-subject limit (the bare default `Limits()`); `govgw serve`
        # passes the configured ones through `gateway.app.attach`.
        self.subject = subject
        self.streams = StreamGate(streams)
        self.state = state or InProcessState()
        # Wall-clock time: with Redis, every process's windows use one time line.
        self.clock = clock
        # (caller id, action, datasets, tiers) -> the call's rate windows and slot.
        self._rate: dict[tuple[object, ...], tuple[list[Window], Slot]] = {}

    @classmethod
    def from_config(cls, config: LimitsConfig, state: StateBackend) -> Limits:
        return cls(config.tiers, state=state, subject=config.subject, streams=config.streams)

    def tier_for(self, kind: str, plan: Plan | None = None) -> Tier:
        named = plan.obligations.rate_tier if plan is not None else STANDARD
        if named != STANDARD and named in self.tiers:
            return self.tiers[named]
        return self.tiers.get(kind) or DEFAULT_TIERS["public"]

    def admit(
        self,
        caller: Caller,
        action: str,
        plans: Mapping[str, Plan],
        subject_hashes: Sequence[str] = (),
        token: str = "",
    ) -> _Admitting:
        """Admit one call or raise RESOURCE_EXHAUSTED (with RetryInfo),
        PERMISSION_DENIED CALLER_SUSPENDED or UNAVAILABLE STATE_UNAVAILABLE.

        Use as `async with limits.admit(...) as admission:`; the in-flight slot
        is given back on leaving (unless the oracle gave it back already)."""
        return _Admitting(self, caller, action, plans, subject_hashes, token)

    def _rate_windows(
        self, caller: Caller, action: str, plans: Mapping[str, Plan]
    ) -> tuple[list[Window], Slot, tuple[Tier, ...]]:
        """The call's rate windows (one per dataset, sized by tier) and its slot."""
        # A call without a dataset (the catalog) is still counted, under "".
        decided: list[tuple[str, Plan | None]] = list(plans.items()) or [("", None)]
        tiers = tuple(self.tier_for(caller.kind, plan) for _, plan in decided)
        key = (caller.id, action, tuple(ds for ds, _ in decided), tiers)
        made = self._rate.get(key)
        if made is None:
            # The rate windows and the slot depend on the caller, the action and the
            # tiers only: made once, not per call (a batch admits 10,000 items).
            if len(self._rate) >= RATE_CACHE:
                self._rate.clear()
            made = self._rate[key] = (
                [
                    Window(f"rate:{caller.id}:{action}:{ds}", tier.calls_per_window, tier.window_s)
                    for (ds, _), tier in zip(decided, tiers, strict=True)
                ],
                Slot(f"inflight:{caller.id}", min(t.max_in_flight for t in tiers)),
            )
        return list(made[0]), made[1], tiers

    def _windows(self, caller: Caller, rate: list[Window], hashes: Sequence[str]) -> list[Window]:
        """`rate` and, with per-subject limits, two windows per distinct subject.
        They guard every route that takes subject keys (the pipeline passes their
        hashes only for those): verification, attribute checks and lookups alike,
        each key of a batch counted."""
        sl = self.subject
        if sl is None or not hashes:
            return rate
        windows = list(rate)
        for h in dict.fromkeys(hashes):  # once per distinct subject
            windows.append(Window(f"subj:{h}:calls", sl.calls, sl.window_s))
            windows.append(Window(f"subj:{h}:callers", sl.callers, sl.window_s, member=caller.id))
        return windows

    async def _enter(
        self,
        caller: Caller,
        action: str,
        plans: Mapping[str, Plan],
        subject_hashes: Sequence[str],
        token: str,
    ) -> Admission:
        rate, slot, tiers = self._rate_windows(caller, action, plans)
        windows = self._windows(caller, rate, subject_hashes)
        verdict = await self.state.admit(caller.id, windows, slot, token, self.clock())
        if verdict.blocked == ADMITTED:
            return Admission(slot)
        raise self._refused(caller, action, slot, tiers, verdict)

    async def admit_many(
        self,
        caller: Caller,
        action: str,
        plans: Mapping[str, Plan],
        subject_hashes: Sequence[Sequence[str]],
        token: str,
    ) -> tuple[Admission | None, list[GovgwError | None]]:
        """Admit the items of one chunk of a batch, in order, each as a call of its
        own (its rate windows and its subjects' windows); one in-flight slot for the
        chunk. Returns the slot (None if none was taken: a suspended caller or a full
        slot refuses every item), to be given back, and each item's refusal or None.
        Raises UNAVAILABLE STATE_UNAVAILABLE as `admit`."""
        if not subject_hashes:
            return None, []
        rate, slot, tiers = self._rate_windows(caller, action, plans)
        windows = [self._windows(caller, rate, h) for h in subject_hashes]
        verdicts = await self.state.admit_many(caller.id, windows, slot, token, self.clock())
        held = any(v.blocked not in (SUSPENDED, IN_FLIGHT_FULL) for v in verdicts)
        refusals = [
            None if v.blocked == ADMITTED else self._refused(caller, action, slot, tiers, v)
            for v in verdicts
        ]
        return (Admission(slot) if held else None), refusals

    def _refused(
        self, caller: Caller, action: str, slot: Slot, tiers: Sequence[Tier], verdict: Verdict
    ) -> GovgwError:
        if verdict.blocked == SUSPENDED:
            return caller_suspended(caller.id)
        if verdict.blocked == IN_FLIGHT_FULL:
            return exhausted(
                "TOO_MANY_IN_FLIGHT",
                f"at most {slot.limit} calls in flight per caller",
                retry_after_s=verdict.retry_after_s,
            )
        # The refusal's words are made only for a refusal, not for every call.
        reason, message = self._refusal(action, tiers, verdict.blocked)
        return exhausted(reason, message, retry_after_s=verdict.retry_after_s)

    def _refusal(self, action: str, tiers: Sequence[Tier], index: int) -> tuple[str, str]:
        """Reason and message of the window at `index` (rate windows first, then
        two per subject: calls, callers)."""
        if index < len(tiers):
            tier = tiers[index]
            return (
                "RATE_LIMITED",
                f"at most {tier.calls_per_window} {action} calls per {tier.window_s:g} s",
            )
        sl = self.subject
        assert sl is not None  # subject windows exist only with subject limits
        if (index - len(tiers)) % 2 == 0:
            return (
                "SUBJECT_RATE_LIMITED",
                f"one subject may be asked about at most {sl.calls} times per {sl.window_s:g} s",
            )
        return (
            "SUBJECT_CALLERS_LIMITED",
            f"one subject may be asked about by at most {sl.callers} callers per {sl.window_s:g} s",
        )

    async def _leave(self, admission: Admission, caller: Caller, token: str) -> None:
        try:
            if not admission.released:  # the oracle may have given it back already
                await self.state.release(admission.slot, token)
        except GovgwError:
            # The slot lapses by itself after its ttl; the call's own
            # outcome (already decided) must not be replaced by this.
            log.warning("in-flight slot of %s not released; it lapses", caller.id)


class _Admitting:
    """`Limits.admit` as a plain async context manager: no async generator (and
    no loop hooks for one) per call, unlike @asynccontextmanager."""

    __slots__ = ("_admission", "_args", "_limits")

    def __init__(
        self,
        limits: Limits,
        caller: Caller,
        action: str,
        plans: Mapping[str, Plan],
        subject_hashes: Sequence[str],
        token: str,
    ) -> None:
        self._limits = limits
        self._args = (caller, action, plans, subject_hashes, token)
        self._admission: Admission | None = None

    async def __aenter__(self) -> Admission:
        self._admission = await self._limits._enter(*self._args)
        return self._admission

    async def __aexit__(self, *exc: object) -> None:
        if self._admission is not None:
            caller, _, _, _, token = self._args
            await self._limits._leave(self._admission, caller, token)
