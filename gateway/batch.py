"""The pipeline's batch mode: one call, many items, each item a call of its own.

A batch row (`Route.batch`, e.g. VerifyIdentityBatch) takes its items as a
stream of request messages and answers with a stream of result chunks:

    authenticate (headers) -> hold a stream slot -> read the items (at most
      max_items, each message within RECEIVE_TIMEOUT_S) -> decide once
      -> per item: parse, limits (per-subject too), enumeration monitor, answer
      -> seal (one signature for the batch's receipts) -> audit every item
      (durable, one record per item under its subject) -> send the results

The guarantees are the unary pipeline's (`gateway.pipeline`), per item: an
item that does not parse, is over a limit or is denied is refused alone, with
its reason, and audited; the others are answered. What fails the whole call
is what would fail it before any item is looked at (credentials, a suspended
caller, the stream caps, a purpose missing, too many items, bytes that do not
decode) and a trail that cannot be written: no result leaves unless every
item's record is durable (fail closed).

The items are read whole before the first is answered (at most max_items:
bounded), so a batch over the cap is refused before any item is counted or
read. Results leave only once the batch is signed and audited: the signature
covers the whole batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from gateway import wire
from gateway.audit.draft import AuditDraft
from gateway.call import Exec, Incoming, Outcome, Request
from gateway.callers import Caller
from gateway.errors import (
    GovgwError,
    caller_suspended,
    invalid,
    operator_suspended,
)
from gateway.oracle import SUSPEND_ACTION, BudgetExceeded
from gateway.pipeline import (
    RECEIVE_TIMEOUT_S,
    Pipeline,
    _check_deadline,
    _metadata,
    enforce,
    failure,
    new_request_id,
)
from gateway.plan import Plan
from gateway.routes import BatchSteps, Route

# Results per response message: ~1.3 KB each with a receipt and its proof, so a
# chunk stays well under gRPC's 4 MiB message limit.
CHUNK = 500
# Items answered between two yields to the event loop: a 10,000-item batch does
# not hold every other call for its whole length.
YIELD_EVERY = 64
# Items parsed ahead of their admission, whose data the steps read in one go (one
# pool query per chunk instead of one per item); a multiple of YIELD_EVERY.
AHEAD = 256


class BatchRunner:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts

    async def serve(
        self,
        route: Route[Any, Any],
        requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[Any]:
        """Run one batch call and send its result chunks."""
        steps = route.batch
        assert steps is not None
        p = self.parts
        started = time.perf_counter()
        request_id = new_request_id()
        context.set_trailing_metadata((("x-request-id", request_id),))
        call = AuditDraft(request_id=request_id, action=route.action)  # the call, if refused
        held = ""
        try:
            with p.decider.pinned():
                try:
                    caller = p.auth.identify(context)  # on the headers, before any message
                    call.caller = caller
                    p.auth.check_active(caller)
                    p.limits.streams.enter(caller.id)
                    held = caller.id
                    header, items = await _read(
                        route, steps, requests, Incoming(caller, _metadata(context))
                    )
                    call.request = header
                    now = p.clock()
                    plans = call.plans = self.pipeline.decide(caller, route, header, now)
                    chunks, records = await self._items(
                        route, steps, caller, header, items, plans, request_id, now, context
                    )
                except GovgwError as err:
                    call.fail(err)
                    await self.pipeline._audit(route, call, started, context)
                    await self.pipeline._abort(context, err, request_id)
                    return
                except Exception as exc:  # the database down, or a defect (as the unary path)
                    err = failure(exc, request_id)
                    call.fail(err)
                    await self.pipeline._audit(route, call, started, context)
                    await self.pipeline._abort(context, err, request_id)
                    return
                # Every item's record durable before any result leaves (fails closed).
                await self._audit(route, call, records, started, context)
        finally:
            if held:
                p.limits.streams.leave(held)
        for chunk in chunks:
            yield chunk

    async def _items(
        self,
        route: Route[Any, Any],
        steps: BatchSteps,
        caller: Caller,
        header: Request[Any],
        items: Sequence[Any],
        plans: dict[str, Plan],
        request_id: str,
        now: Any,
        context: grpc.aio.ServicerContext,
    ) -> tuple[list[Any], list[AuditDraft]]:
        """Each item through parse, limits, monitor and answer; then the batch sealed.
        Returns the response chunks and the items' audit records.

        Each result is copied into its response chunk as soon as it is made, while
        it is small: the receipt is then written into it there (seal), and the
        chunks leave as they are, with no copy of 10,000 signed receipts."""
        version = next(iter(plans.values())).policy_version if plans else ""
        chunks: list[Any] = []
        records: list[AuditDraft] = []

        def place(result: Any, index: int) -> Any:
            if index % CHUNK == 0:
                chunks.append(steps.respond((), request_id, version))
            slot = chunks[-1].results.add()
            slot.CopyFrom(result)
            return slot

        answered: list[Outcome[Any]] = []
        answered_at: list[int] = []
        late: GovgwError | None = None  # once the deadline passed, the rest are refused
        scope = steps.begin(Exec(caller, plans, header, request_id, now))
        parsed: list[Request[Any] | Exception] = []
        for index in range(len(items)):
            if index % AHEAD == 0:
                # The next chunk parsed before any of it is admitted, so the steps can
                # read its data in one go (`BatchSteps.ahead`); each item is still
                # admitted, limited and answered on its own, in order.
                parsed = [
                    _parse(steps, it, at, header)
                    for at, it in enumerate(items[index : index + AHEAD], start=index)
                ]
                steps.ahead(scope, [r for r in parsed if isinstance(r, Request)])
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
                if late is None:
                    try:
                        _check_deadline(context)
                    except GovgwError as err:
                        late = err
            record = AuditDraft(request_id=request_id, action=route.action, caller=caller)
            record.plans = plans
            records.append(record)
            try:
                if late is not None:
                    raise late
                outcome = await self._item(
                    route, steps, caller, header, parsed[index % AHEAD], plans, record, now, scope
                )
            except GovgwError as err:
                record.fail(err)
                place(steps.refused(index, err), index)
                late = late or _suspended(caller, record)
                continue
            except Exception as exc:  # the database down or a defect: this item only
                err = failure(exc, request_id, f" item {index}")
                record.fail(err)
                place(steps.refused(index, err), index)
                continue
            record.succeed(outcome)
            # A suspension this item caused (the enumeration monitor) stops the rest,
            # as it refuses the caller's next call; this item's answer stands.
            late = late or _suspended(caller, record)
            outcome.response = place(outcome.response, index)  # the receipt goes in there
            answered.append(outcome)
            answered_at.append(index)
        if answered:
            steps.seal(Exec(caller, plans, header, request_id, now), answered)
            for outcome, index in zip(answered, answered_at, strict=True):
                records[index].receipt_id = outcome.receipt_id
        return chunks, records

    async def _item(
        self,
        route: Route[Any, Any],
        steps: BatchSteps,
        caller: Caller,
        header: Request[Any],
        request: Request[Any] | Exception,
        plans: dict[str, Plan],
        record: AuditDraft,
        now: Any,
        scope: Any,
    ) -> Outcome[Any]:
        p = self.parts
        record.request = header  # a refused item's record still says why it was asked
        if isinstance(request, Exception):  # it did not parse: refused alone
            raise request
        hashes = tuple(p.keyring.subject_hash(s) for s in request.subjects)
        record.request, record.subjects = request, hashes
        # Items go one after another: each takes the call's in-flight slot and gives it
        # back (the monitor's observe releases it under the request id) before the next.
        token = record.request_id
        async with p.limits.admit(caller, route.action, plans, hashes, token) as admission:
            enforce(plans)
            if p.oracle is not None:
                try:
                    await p.oracle.reserve(caller, hashes, token)
                except BudgetExceeded as e:
                    record.extra.append(e.suspension.audit_event(by="enumeration-monitor"))
                    raise
            ex = Exec(caller, plans, request, record.request_id, now)
            # A pool on PostgreSQL reads over the network: off the event loop.
            outcome = (
                await asyncio.to_thread(steps.answer, ex, scope)
                if p.pool.remote
                else steps.answer(ex, scope)
            )
            await self.pipeline._watch(route, caller, hashes, outcome.misses, admission, record)
        return outcome

    async def _audit(
        self,
        route: Route[Any, Any],
        call: AuditDraft,
        records: Sequence[AuditDraft],
        started: float,
        context: grpc.aio.ServicerContext,
    ) -> None:
        """Every item's record in one durable append (or the call's own record for an
        empty batch), or no answer at all; one log line for the call."""
        call.outcome = "OK"
        call.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        events: list[dict[str, Any]] = []
        for r in records:
            r.latency_ms = call.latency_ms
            events.extend(r.events())
        await self.pipeline._audit_events(route, call, events or call.events(), started, context)


def _parse(
    steps: BatchSteps, item: Any, index: int, header: Request[Any]
) -> Request[Any] | Exception:
    """An item's typed request, or what refuses it alone when its turn comes (an
    INVALID_ARGUMENT naming its field; a defect, reported as the item's)."""
    try:
        return steps.parse_item(item, index, header)
    except Exception as err:
        return err


def _suspended(caller: Caller, record: AuditDraft) -> GovgwError | None:
    """The refusal of the items after one whose call suspended the caller or operator."""
    for event in record.extra:
        if event.get("action") == SUSPEND_ACTION:
            if event.get("operator"):
                return operator_suspended(caller.id, event["operator"], caller.department)
            return caller_suspended(caller.id)
    return None


async def _read(
    route: Route[Any, Any],
    steps: BatchSteps,
    requests: AsyncIterator[bytes],
    incoming: Incoming,
) -> tuple[Request[Any], list[Any]]:
    """The call's header and items, read only now that the caller is authenticated."""
    header: Request[Any] | None = None
    items: list[Any] = []
    while True:
        try:
            async with asyncio.timeout(RECEIVE_TIMEOUT_S):
                raw = await anext(requests)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise GovgwError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "REQUEST_NOT_RECEIVED",
                f"the next request message did not arrive within {RECEIVE_TIMEOUT_S:g} s",
            ) from None
        message = wire.decode(route.request_type, raw)
        if header is None:
            header = steps.header(message, incoming)
        items.extend(steps.items(message))
        if len(items) > steps.max_items:
            raise invalid("items", f"at most {steps.max_items} items per call", "BATCH_TOO_LARGE")
    if header is None:
        raise invalid("request", "no request message was sent", "REQUEST_MISSING")
    return header, items
