"""A batch's items a chunk at a time (`Chunk`, used by `gateway.batch`)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from gateway.audit.draft import AuditDraft
from gateway.call import Exec, Outcome, Request
from gateway.callers import Caller
from gateway.errors import GovgwError, caller_suspended, operator_suspended
from gateway.limits import Admission
from gateway.oracle import SUSPEND_ACTION, BudgetExceeded
from gateway.pipeline import Parts, enforce, failure
from gateway.plan import Plan
from gateway.routes import Answer, BatchSteps, Route


class Chunk:
    """A batch's items, a chunk at a time (`run`), through the unary pipeline's
    steps, each step taken for the chunk at once (one state round trip, one pool
    query), each item still admitted, limited, watched and answered on its own,
    in order:

        subject hashes -> limits (every item's windows; one in-flight slot)
          -> the plans' verdict -> distinct-subject budget -> read and answer
          -> enumeration monitor (answers counted in order, up to a threshold)

    An item refused at a step is refused alone, with its reason; a suspension an
    item causes refuses the items after it. Nothing is read for an item before
    it is admitted and within the budget; an answer made for an item after a
    monitor's threshold is dropped, never sent."""

    def __init__(
        self,
        parts: Parts,
        route: Route[Any, Any],
        steps: BatchSteps,
        caller: Caller,
        header: Request[Any],
        plans: dict[str, Plan],
        request_id: str,
        now: Any,
        scope: Any,
    ) -> None:
        self.parts, self.route, self.steps, self.caller = parts, route, steps, caller
        self.header, self.plans, self.request_id, self.now = header, plans, request_id, now
        self.scope = scope
        self.unavailable: GovgwError | None = None  # a chunk found the state unreachable

    async def run(
        self, parsed: list[Request[Any] | Exception], records: list[AuditDraft], start: int
    ) -> list[Outcome[Any] | GovgwError]:
        """The chunk's outcomes, in order: an answer, or the item's refusal."""
        p, caller, request_id = self.parts, self.caller, self.request_id
        token = f"{request_id}@{start}"  # the chunk's in-flight slot and counted members
        out: list[Any] = [None] * len(parsed)
        hashes: dict[int, tuple[str, ...]] = {}
        for i, request in enumerate(parsed):
            if isinstance(request, Request):
                hashes[i] = tuple(p.keyring.subject_hash(s) for s in request.subjects)
                records[i].request, records[i].subjects = request, hashes[i]
            else:  # it did not parse: refused alone; its record still says why it was asked
                records[i].request = self.header
                out[i] = (
                    request
                    if isinstance(request, GovgwError)
                    else failure(request, request_id, f" item {start + i}")
                )
        live = list(hashes)
        if not live:
            return out
        admission: Admission | None = None
        try:
            admission, refusals = await p.limits.admit_many(
                caller, self.route.action, self.plans, [hashes[i] for i in live], token
            )
            for i, refusal in zip(live, refusals, strict=True):
                if refusal is not None:
                    out[i] = refusal
            live = [i for i in live if out[i] is None]
            if live:
                enforce(self.plans)
            live = await self._reserve(live, hashes, records, out)
            if live and p.pool.remote:  # a pool on PostgreSQL reads over the network
                live = await asyncio.to_thread(self._answer, live, parsed, out, start)
            elif live:
                live = self._answer(live, parsed, out, start)
            await self._observe(live, hashes, records, out, token, admission)
        except GovgwError as err:  # the plans deny, or the state is unreachable
            for i in live:
                if out[i] is None or isinstance(out[i], Outcome):
                    out[i] = err
            if err.code == grpc.StatusCode.UNAVAILABLE:
                self.unavailable = err
        finally:
            if admission is not None and not admission.released:
                await p.limits._leave(admission, caller, token)
        return out

    async def _reserve(
        self,
        live: list[int],
        hashes: dict[int, tuple[str, ...]],
        records: list[AuditDraft],
        out: list[Any],
    ) -> list[int]:
        """The items within the caller's distinct-subject budget (counted before any
        read); the first past it is refused with the suspension, the rest after it."""
        oracle = self.parts.oracle
        if oracle is None or not live:
            return live
        n, found = await oracle.reserve_many(self.caller, [hashes[i] for i in live])
        if found is not None:
            first = live[n]
            records[first].extra.append(found.audit_event(by="enumeration-monitor"))
            out[first] = BudgetExceeded(found)
            for i in live[n + 1 :]:
                out[i] = suspended_refusal(self.caller, records[first])
        return live[:n]

    def _answer(self, live: list[int], parsed: list[Any], out: list[Any], start: int) -> list[int]:
        """Each admitted item's answer (its rows read with the chunk's, in one query)."""
        steps, scope = self.steps, self.scope
        steps.ahead(scope, [parsed[i] for i in live])
        for i in live:
            ex = Exec(self.caller, self.plans, parsed[i], self.request_id, self.now)
            try:
                out[i] = steps.answer(ex, scope)
            except GovgwError as err:
                out[i] = err
            except Exception as exc:  # the database down or a defect: this item only
                out[i] = failure(exc, self.request_id, f" item {start + i}")
        return [i for i in live if isinstance(out[i], Outcome)]

    async def _observe(
        self,
        live: list[int],
        hashes: dict[int, tuple[str, ...]],
        records: list[AuditDraft],
        out: list[Any],
        token: str,
        admission: Admission | None,
    ) -> None:
        """Each answer reported to the enumeration monitor, in order; an item whose
        answer crosses a threshold keeps it (with the suspension in its record), and
        the answers after it are dropped for the suspension's refusal."""
        oracle = self.parts.oracle
        if oracle is None or self.route.answer is Answer.NONE or not live:
            return
        misses = []
        for i in live:
            m, h = out[i].misses, hashes[i]
            misses.append(m[:1] * len(h) if len(m) != len(h) else m)
        n, suspensions = await oracle.observe_many(
            self.caller, [hashes[i] for i in live], misses, token, admission
        )
        if suspensions:
            last = live[n - 1]
            records[last].extra += [s.audit_event(by="enumeration-monitor") for s in suspensions]
            for i in live[n:]:
                out[i] = suspended_refusal(self.caller, records[last])


def suspended_refusal(caller: Caller, record: AuditDraft) -> GovgwError | None:
    """The refusal of the items after one whose call suspended the caller or operator
    (the caller's, when one item suspended both: it is what refuses the next call)."""
    suspensions = [e for e in record.extra if e.get("action") == SUSPEND_ACTION]
    if any(not e.get("operator") for e in suspensions):
        return caller_suspended(caller.id)
    if suspensions:
        return operator_suspended(caller.id, suspensions[0]["operator"], caller.department)
    return None
