"""The pipeline's batch mode: one call, many items, each item a call of its own.

A batch row (`Route.batch`, e.g. VerifyIdentityBatch) takes its items as a
stream of request messages and answers with a stream of result chunks:

    authenticate (headers) -> hold a stream slot -> read the items (at most
      max_items, each message within RECEIVE_TIMEOUT_S) -> decide once
      -> 128 items at a time (`Chunk`), each on its own: parse, limits
      (per-subject too), distinct-subject budget, answer, enumeration monitor
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
from gateway.audit.log import AuditEventRejected, Encoded
from gateway.batch_chunk import Chunk, suspended_refusal
from gateway.call import Exec, Incoming, Outcome, Request
from gateway.callers import Caller
from gateway.errors import (
    GovgwError,
    invalid,
)
from gateway.pipeline import (
    RECEIVE_TIMEOUT_S,
    Pipeline,
    _check_deadline,
    _metadata,
    failure,
    new_request_id,
)
from gateway.plan import Plan
from gateway.routes import BatchSteps, Route

# Results per response message: ~1.3 KB each with a receipt and its proof, so a
# chunk stays well under gRPC's 4 MiB message limit.
CHUNK = 500
# Items taken through the steps together (`Chunk`): one state round trip and one
# pool query each; other calls go on between two chunks, and the deadline is
# checked there.
AHEAD = 128
SHARED = 32  # the same, while unary calls are being answered


class BatchRunner:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts
        # One chunk of one batch at a time on the loop: calls answered meanwhile (a
        # counter's) wait for at most one chunk, however many batches run at once.
        self._lane = asyncio.Lock()

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
        """Each item through parse, limits, monitor and answer, a chunk at a time; then
        the batch sealed. Returns the response chunks and the items' audit records.

        Each result is copied into its response chunk as soon as it is made, while
        it is small: the receipt is then written into it there (seal), and the
        chunks leave as they are, with no copy of 10,000 signed receipts."""
        version = next(iter(plans.values())).policy_version if plans else ""
        chunks: list[Any] = []
        records: list[AuditDraft] = []
        answered: list[tuple[Outcome[Any], int]] = []
        # Once set (the deadline passed, a suspension, the state unreachable), the rest
        # are refused with it.
        late: GovgwError | None = None
        scope = steps.begin(Exec(caller, plans, header, request_id, now))
        chunk = Chunk(self.parts, route, steps, caller, header, plans, request_id, now, scope)
        start = 0
        while start < len(items):
            await asyncio.sleep(0)  # other calls go on between two chunks
            # Shorter chunks while unary calls are being answered (a counter's):
            # each of their steps waits for one chunk at most.
            size = SHARED if self.pipeline.in_flight else AHEAD
            if late is None and start:
                try:
                    _check_deadline(context)
                    # Suspended meanwhile (an administrator, another call's monitor):
                    # the rest is refused, as the caller's next call would be.
                    self.parts.auth.recheck(caller)
                except GovgwError as err:
                    late = err
            parsed = [
                _parse(steps, it, at, header)
                for at, it in enumerate(items[start : start + size], start=start)
            ]
            mine = [
                AuditDraft(request_id=request_id, action=route.action, caller=caller, plans=plans)
                for _ in parsed
            ]
            records += mine
            if late is not None:
                outcomes: list[Any] = [late] * len(parsed)
            else:
                async with self._lane:
                    began = time.perf_counter()
                    outcomes = await chunk.run(parsed, mine, start)
                    if self.pipeline.in_flight:
                        # ... and the batch takes at most half the loop meanwhile.
                        await asyncio.sleep(time.perf_counter() - began)
                # The state (or the database) unreachable: the rest fails closed at
                # once, not a timeout per chunk.
                late = chunk.unavailable
            for index, (record, outcome) in enumerate(zip(mine, outcomes, strict=True), start):
                if index % CHUNK == 0:
                    chunks.append(steps.respond((), request_id, version))
                slot = chunks[-1].results.add()
                if isinstance(outcome, GovgwError):
                    record.fail(outcome)
                    slot.CopyFrom(steps.refused(index, outcome))
                else:
                    record.succeed(outcome)
                    slot.CopyFrom(outcome.response)
                    outcome.response = slot  # the receipt goes in there
                    answered.append((outcome, index))
                # A suspension an item caused (the enumeration monitor) stops the rest,
                # as it refuses the caller's next call; this item's answer stands.
                late = late or suspended_refusal(caller, record)
            start += size
        if answered:
            # Signing a batch is CPU work in proportion to its size (claims, tree,
            # proofs): in a worker thread, so calls on the loop are not held for it.
            ex = Exec(caller, plans, header, request_id, now)
            await asyncio.to_thread(steps.seal, ex, [o for o, _ in answered])
            for outcome, index in answered:
                records[index].receipt_id = outcome.receipt_id
        return chunks, records

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

        def encode() -> Encoded:  # in proportion to the batch: off the loop, as `seal`
            events: list[dict[str, Any]] = []
            for r in records:
                r.latency_ms = call.latency_ms
                events.extend(r.events())
            return self.parts.audit.encode(events or call.events())

        try:
            encoded = await asyncio.to_thread(encode)
        except AuditEventRejected:  # as a bad event in the append: fail closed
            await self.pipeline.audit_failed(route, call, started, context)
            return
        await self.pipeline._audit_events(route, call, encoded, started, context)


def _parse(
    steps: BatchSteps, item: Any, index: int, header: Request[Any]
) -> Request[Any] | Exception:
    """An item's typed request, or what refuses it alone when its turn comes (an
    INVALID_ARGUMENT naming its field; a defect, reported as the item's)."""
    try:
        return steps.parse_item(item, index, header)
    except Exception as err:
        return err


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
