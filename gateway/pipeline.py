"""The request pipeline, the same for every RPC, top to bottom:

    authenticate caller -> decode (bytes -> message in range) -> parse (typed request)
      -> decide (policy -> plan) -> check limits -> handle (read pool, release)
      -> enumeration watch -> audit (durable) -> respond

Every RPC is a row of the route table (`gateway.routes`): its `parse` and
`handle` are the only code of its own; everything around them -- the order
of the steps, replay protection for state-changing calls, worker threads for
blocking handles, the audit record that must be durable before any byte of
the response leaves, the one-line log and the error mapping -- happens here,
once.

(DESIGN.md puts limits before the decision; the plan is computed first here
because a plan's `rate_tier` obligation picks the tier. Deciding is in memory,
cached and without effect, and nothing is read from the pool before
admission. A plan that denies is still counted, so refused calls cannot be
hammered for free.)

The server is grpc.aio: every step but the audit wait is short and runs on
the event loop, so calls do not contend for the GIL in a thread pool, and
the wait for the audit fsync is an await, not a blocked thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from grpc_status import rpc_status

from gateway import wire
from gateway.audit import AuditLog, AuditUnavailable
from gateway.audit.draft import CALL_LINE, AuditDraft
from gateway.audit.log import Encoded
from gateway.auth import Authenticator
from gateway.call import Exec, Outcome, Request
from gateway.callers import Caller
from gateway.catalog import Catalog
from gateway.errors import GovgwError, database_unavailable, invalid, unavailable
from gateway.keys import KeyRing
from gateway.limits import Admission, Limits
from gateway.metrics import Metrics
from gateway.oracle import SUSPEND_ACTION, BudgetExceeded, Oracle
from gateway.plan import Plan
from gateway.policy.decider import Decider
from gateway.pool import Pool
from gateway.receipts import ReceiptSigner
from gateway.routes import Answer, Incoming, Route
from gateway.state.replay import (
    IDEMPOTENCY_HEADER,
    NONCE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    fingerprint,
)
from gateway.storage import StorageUnavailable

log = logging.getLogger("govgw.pipeline")
SUBJECT_NOT_FOUND = "SUBJECT_NOT_FOUND"

# Time kept back from the caller's deadline for writing the audit record.
AUDIT_MIN_S = 0.05
AUDIT_MAX_WAIT_S = 10.0
# How long an authenticated call may take to send its request message after its
# headers: a call slot is not held open by a caller that never sends one.
RECEIVE_TIMEOUT_S = 10.0


@dataclass
class Parts:
    """The gateway's assembled parts; built once by `gateway.app`."""

    catalog: Catalog
    keyring: KeyRing
    pool: Pool
    decider: Decider
    auth: Authenticator
    limits: Limits
    audit: AuditLog
    signer: ReceiptSigner
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Enumeration defence and replay protection; `gateway.app.attach` sets
    # them on the limits' state backend.
    oracle: Oracle | None = None
    replay: ReplayGuard | None = None
    # Is a subject's record in a dataset withdrawn from opening (撤回)? Set by
    # gateway.app from the WithdrawalStore; read in gateway.release.read.
    withdrawn: Callable[[str, str], bool] | None = None
    # Fields of a subject's record under correction (校核 pending, R8): (dataset,
    # subject key) -> {field: filing date}. Set by gateway.app; gateway.access.disputes.
    disputed: Callable[[str, str], Mapping[str, str]] | None = None
    # Prometheus metrics (`--metrics-listen`); None costs the hot path nothing.
    metrics: Metrics | None = None


# Request ids need to be unique, not secret: a random per-process prefix and
# a counter cost no system call per request, unlike uuid4.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


def enforce(plans: dict[str, Plan]) -> None:
    """Refuse (PERMISSION_DENIED, the plan's reason) if a dataset's plan denies."""
    for ds, plan in plans.items():
        if not plan.allow:
            raise GovgwError(
                grpc.StatusCode.PERMISSION_DENIED,
                plan.reason,
                plan.message,
                metadata={"dataset": ds} if ds else {},
            )


def failure(exc: Exception, request_id: str, where: str = "") -> GovgwError:
    """The refusal for an exception no step turned into one (`where`: e.g. " item 3").
    The shared database down: fail closed, retryable — what memory answers
    (authentication, cached grants and callers) goes on. Anything else is a defect:
    INTERNAL, its text never echoed (it may hold values)."""
    if isinstance(exc, StorageUnavailable):
        log.warning("request %s%s: database unavailable; failing closed", request_id, where)
        return database_unavailable()
    log.error("request %s%s: unexpected %s", request_id, where, type(exc).__name__)
    return GovgwError(
        grpc.StatusCode.INTERNAL, "INTERNAL_ERROR", f"internal error; quote request id {request_id}"
    )


def new_request_id() -> str:
    return f"req_{_ID_PREFIX}{next(_ID_COUNTER):012x}"


class Pipeline:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        # The receipts of the calls whose audit records one group commit made
        # durable are signed together, on the loop, as that group is woken up:
        # one signature per group instead of one per call (issue 13).
        parts.audit.on_durable = parts.signer.sign_group
        # Calls between their start and their answer (on the loop): while there are
        # others, a call's audit records are held briefly for theirs (group commit
        # with siblings, gateway.audit.log).
        self.in_flight = 0
        parts.audit.calls_in_flight = lambda: self.in_flight

    async def serve(
        self,
        route: Route[Any, Any],
        raw: bytes | AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> Any:
        """Run one call of a route: the bytes as they came off the wire."""
        # One policy version per call: its plans and its catalog reads (R1).
        self.in_flight += 1
        try:
            with self.parts.decider.pinned():
                return await self._run(route, raw, context)
        finally:
            self.in_flight -= 1

    async def serve_stream(
        self,
        route: Route[Any, Any],
        raw: bytes | AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[Any]:
        """Run one call of a server-streaming route and send its items.

        The stream counts as open (limits.streams) from authentication until its
        items are made and audited; past the caps it is refused at once, and audited.
        Sending is not counted: a client that stops reading holds no one else's slot."""
        held: list[str] = []
        try:
            with self.parts.decider.pinned():
                items = await self._run(route, raw, context, stream=held)
        finally:
            for caller_id in held:
                self.parts.limits.streams.leave(caller_id)
        for item in items:  # every item's audit record is already durable
            yield item

    async def _run(
        self,
        route: Route[Any, Any],
        raw: bytes | AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
        stream: list[str] | None = None,
    ) -> Any:
        p = self.parts
        started = time.perf_counter()
        request_id = new_request_id()
        context.set_trailing_metadata((("x-request-id", request_id),))
        record = AuditDraft(request_id=request_id, action=route.action)
        replay = _ReplayStep(p.replay if route.state_changing else None, route, b"")
        try:
            caller = p.auth.identify(context)  # authenticate, before anything else
            record.caller = caller  # a suspended caller's refusal is audited under its name
            p.auth.check_active(caller)
            if stream is not None:  # an open stream is held until its last item is sent
                p.limits.streams.enter(caller.id)
                stream.append(caller.id)
            metadata = _metadata(context)
            if not isinstance(raw, bytes):  # the request, read only now
                raw = await _receive(raw)
            replay.raw = raw
            message = wire.decode(route.request_type, raw)  # bytes -> message in range
            request = route.parse(message, Incoming(caller, metadata))  # -> typed request
            # Counters, the replay fingerprint and the audit trail all take the keyed
            # hash, never the raw key: computed once here.
            hashes = tuple(p.keyring.subject_hash(s) for s in request.subjects)
            record.request, record.subjects = request, hashes
            guarded = hashes if route.subject_keys else ()
            replayed = await replay.before(caller, metadata, hashes)
            if replayed is not None:  # a retry of a call that already succeeded
                raise _Replayed(replayed)
            now = p.clock()
            # decide (before the limits, for the tier: see the module doc)
            plans = record.plans = self.decide(caller, route, request, now)
            # limits, then the plans' verdicts (a denied call is counted too)
            async with p.limits.admit(
                caller, route.action, plans, guarded, request_id
            ) as admission:
                enforce(plans)
                _check_deadline(context)
                if p.oracle is not None and guarded and route.answer is not Answer.NONE:
                    # The call's subjects count against the caller's distinct-subject
                    # budget before anything is read: no batch harvests past it.
                    try:
                        await p.oracle.reserve(caller, guarded, request_id)
                    except BudgetExceeded as e:
                        record.extra.append(e.suspension.audit_event(by="enumeration-monitor"))
                        raise
                # handle: the RPC's own step, its reads through gateway.release
                ex = Exec(caller, plans, request, request_id, now)
                try:
                    # A pool on PostgreSQL reads over the network: every handle then
                    # runs in a thread, so no round trip blocks the event loop.
                    if route.in_thread or p.pool.remote:
                        outcome = await asyncio.to_thread(route.handle, ex)
                    else:
                        outcome = route.handle(ex)
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                except GovgwError as err:
                    if err.reason == SUBJECT_NOT_FOUND and route.answer is not Answer.NONE:
                        # "not found" is an answer too: a sweep of absent keys is watched.
                        await self._watch(route, caller, guarded, (True,), admission, record)
                    raise
                # Recorded before the answer leaves: if it cannot be recorded, the
                # answer is not given (fail closed).
                await self._watch(route, caller, guarded, outcome.misses, admission, record)
                await replay.succeeded(outcome.response)
            record.succeed(outcome)
        except _Replayed as r:
            # Audited as its own call, marked replayed; nothing ran again.
            record.outcome, record.replayed = "OK", True
            await self._audit(route, record, started, context)
            return r.response
        except GovgwError as err:
            record.fail(err)
            await replay.failed()
            await self._audit(route, record, started, context)
            await self._abort(context, err, request_id)
        except Exception as exc:  # the database down, or a defect
            err = failure(exc, request_id)
            record.fail(err)
            await replay.failed()
            await self._audit(route, record, started, context)
            await self._abort(context, err, request_id)
        # audit, durable before the response (and the receipt signed with its group)
        await self._audit(route, record, started, context, outcome.receipt)
        if outcome.receipt is not None:
            await self._attach_receipt(outcome, context, request_id)
        return outcome.response  # respond

    def decide(
        self, caller: Caller, route: Route[Any, Any], request: Request[Any], now: datetime
    ) -> dict[str, Plan]:
        """One plan per dataset of the request; the oracle watches for policy changes."""
        p = self.parts
        plans = {
            ds: p.decider.decide(
                caller=caller.policy_input(),
                action=route.action,
                dataset=ds,
                purpose=request.purpose,
                now=now,
            )
            for ds in request.datasets
        }
        if p.oracle is not None:
            p.oracle.start_watching(p.decider.invalidate)
        return plans

    async def _watch(
        self,
        route: Route[Any, Any],
        caller: Caller,
        hashes: tuple[str, ...],
        misses: tuple[bool, ...],
        admission: Admission,
        record: AuditDraft,
    ) -> None:
        """Report each subject's answer to the enumeration monitor (one per subject key)."""
        oracle = self.parts.oracle
        if oracle is None or route.answer is Answer.NONE or not hashes:
            return
        if len(misses) != len(hashes):  # one answer for the whole call: for each subject
            misses = misses[:1] * len(hashes)
        suspensions = await oracle.observe(caller, hashes, misses, record.request_id, admission)
        record.extra += [s.audit_event(by="enumeration-monitor") for s in suspensions]

    async def _audit(
        self,
        route: Route[Any, Any],
        record: AuditDraft,
        started: float,
        context: grpc.aio.ServicerContext,
        receipt: Any = None,
    ) -> None:
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        await self._audit_events(route, record, record.events(), started, context, receipt)

    async def _attach_receipt(
        self, outcome: Outcome[Any], context: grpc.aio.ServicerContext, request_id: str
    ) -> None:
        """Put the receipt, signed with its audit group, on the response."""
        signed = outcome.receipt.signed
        if signed is None:  # the group's signing failed (logged there): no unsigned answer
            err = GovgwError(
                grpc.StatusCode.INTERNAL,
                "RECEIPT_UNAVAILABLE",
                f"the receipt could not be signed; quote request id {request_id}",
            )
            await self._abort(context, err, request_id)
        outcome.response.receipt.CopyFrom(signed.to_proto())

    async def _audit_events(
        self,
        route: Route[Any, Any],
        record: AuditDraft,
        events: list[dict[str, Any]] | Encoded,
        started: float,
        context: grpc.aio.ServicerContext,
        receipt: Any = None,
    ) -> None:
        """Make `events` durable or fail closed; then the call's log line (from `record`)."""
        remaining = context.time_remaining()
        timeout = AUDIT_MAX_WAIT_S if remaining is None else max(remaining, AUDIT_MIN_S)
        try:
            await self.parts.audit.append_many_async(
                events, timeout=min(timeout, AUDIT_MAX_WAIT_S), attachment=receipt
            )
        except AuditUnavailable:
            await self.audit_failed(route, record, started, context)
        self._finished(route, record, started, record.outcome, record.reason)

    async def audit_failed(
        self,
        route: Route[Any, Any],
        record: AuditDraft,
        started: float,
        context: grpc.aio.ServicerContext,
    ) -> None:
        """No durable record, no answer: fail the call closed (aborts it)."""
        log.error("request %s: audit record not durable; failing closed", record.request_id)
        err = unavailable(
            "AUDIT_UNAVAILABLE", "the audit trail cannot be written; no answer is given"
        )
        self._finished(route, record, started, err.code.name, err.reason)
        await self._abort(context, err, record.request_id)

    def _finished(
        self, route: Route[Any, Any], record: AuditDraft, started: float, code: str, reason: str
    ) -> None:
        """The call's answer is decided: count it and write its one log line."""
        seconds = time.perf_counter() - started
        if (metrics := self.parts.metrics) is not None:
            suspended = [e["reason"] for e in record.extra if e.get("action") == SUSPEND_ACTION]
            metrics.call_done(route.path[1:], code, reason, seconds, suspended)
        # Answers are DEBUG: the audit trail is the access record, and an INFO
        # line per call costs a lock and a write on the hot path. A refusal is one
        # INFO line (ids and reason codes only; never a value, never a traceback).
        level = logging.DEBUG if code == "OK" else logging.INFO
        if log.isEnabledFor(level):
            fields = record.log_fields(code, reason, seconds)  # also JSON fields (gateway.logs)
            log.log(level, CALL_LINE, fields, extra=fields)

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext, err: GovgwError, request_id: str) -> None:
        err.metadata = {**err.metadata, "request_id": request_id}
        status = rpc_status.to_status(err.to_status())
        await context.abort(status.code, status.details, status.trailing_metadata)


class _Replayed(Exception):  # control flow, not an error
    """Carries a stored response out of the try block, to be audited and returned."""

    def __init__(self, response: Any) -> None:
        self.response = response


class _ReplayStep:
    """The replay checks of one state-changing call (a no-op for other calls)."""

    def __init__(self, guard: ReplayGuard | None, route: Route[Any, Any], raw: bytes) -> None:
        self.guard = guard
        self.route = route
        self.raw = raw
        self.caller_id = self.key = self.fp = ""

    async def before(
        self, caller: Caller, md: Mapping[str, str], subject_hashes: tuple[str, ...]
    ) -> Any:
        if self.guard is None:
            return None
        if NONCE_HEADER in md or TIMESTAMP_HEADER in md:
            await self.guard.check_nonce(
                caller.id, md.get(NONCE_HEADER, ""), md.get(TIMESTAMP_HEADER, "")
            )
        key = md.get(IDEMPOTENCY_HEADER, "")
        if not key:
            return None
        # The subjects (by keyed hash) are part of the fingerprint: a key replays a
        # stored answer for the same subject only, even when one app carries many
        # citizens' calls.
        body = self.raw + b"\0" + ",".join(subject_hashes).encode()
        fp = fingerprint(caller.id, self.route.action, body)
        found = await self.guard.begin(caller.id, key, fp)
        if found is not None:
            return self.route.response_type.FromString(found.response)
        self.caller_id, self.key, self.fp = caller.id, key, fp
        return None

    async def succeeded(self, response: Any) -> None:
        if self.guard is not None and self.key:
            await self.guard.succeed(
                self.caller_id, self.key, self.fp, response.SerializeToString()
            )

    async def failed(self) -> None:
        if self.guard is not None and self.key:
            # If this fails too, the key lapses with its ttl; the call's own error stands.
            with contextlib.suppress(GovgwError):
                await self.guard.fail(self.caller_id, self.key)


async def _receive(requests: AsyncIterator[bytes]) -> bytes:
    """The one request message of a call, once the caller is authenticated."""
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            return await anext(requests)
    except StopAsyncIteration:
        raise invalid("request", "no request message was sent", "REQUEST_MISSING") from None
    except TimeoutError:
        raise GovgwError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "REQUEST_NOT_RECEIVED",
            f"the request message did not arrive within {RECEIVE_TIMEOUT_S:g} s",
        ) from None


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """Text metadata; a key sent twice keeps its first value (auth refuses duplicates)."""
    md: dict[str, str] = {}
    for k, v in context.invocation_metadata() or ():
        if isinstance(v, str):
            md.setdefault(k, v)
    return md


def _check_deadline(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise GovgwError(grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline passed")
