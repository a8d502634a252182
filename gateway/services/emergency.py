"""EmergencyService: declare, end, list, seal emergencies (R11).

Every call runs through the pipeline with an action of its own; the policy
(policies/emergency.rego) decides who may call it at all, so a non-admin is
refused before anything about the request is checked. The store
(`gateway.access.emergency`) checks the rest. Each transition's audit record
carries the emergency id and the grants it created or revoked in `details`;
the call's dataset is the emergency's scope, so providers' usage reports show
emergencies touching their data.

Emergencies whose end time passed are ended by a periodic task of the server
and, on demand, when emergencies are listed or read: the end is then audited
with the call that noticed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from govgw.v1 import emergency_pb2 as pb
from govgw.v1 import emergency_pb2_grpc

from gateway.access.applications import normalize_fields
from gateway.access.emergency import (
    ACTIVE,
    ENDED,
    EXPIRED_REASON,
    EXPIRY_ACTOR,
    EmergencyInput,
    EmergencyStore,
    digest,
    sealing_list,
)
from gateway.audit.index import AuditIndex
from gateway.errors import invalid
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.plan import (
    EMERGENCY_DECLARE,
    EMERGENCY_END,
    EMERGENCY_READ,
    EMERGENCY_SEAL,
    EMERGENCY_SEALING,
)
from gateway.services.common import timestamp

log = logging.getLogger("govgw.emergency")

PURPOSE = "突发事件应急数据管理"  # recorded as the purpose of these calls
EXPIRY_INTERVAL_S = 60.0

_STATUSES = {pb.EMERGENCY_STATUS_ACTIVE: ACTIVE, pb.EMERGENCY_STATUS_ENDED: ENDED}
_STATUS_VALUES = {v: k for k, v in _STATUSES.items()}


def _ts(text: str) -> timestamp_pb2.Timestamp | None:
    return timestamp(text) if text else None


def emergency_message(e: Mapping[str, Any]) -> pb.Emergency:
    return pb.Emergency(
        id=e["id"],
        title=e["title"],
        legal_basis=e["legal_basis"],
        scope=[
            pb.EmergencyScope(dataset=ds, fields=fields)
            for ds, fields in sorted(e["scope"].items())
        ],
        agencies=e["agencies"],
        purpose=e["purpose"],
        declared_by=e["declared_by"],
        declared_at=_ts(e["declared_at"]),
        ends_at=_ts(e["ends_at"]),
        status=_STATUS_VALUES.get(e["status"], pb.EMERGENCY_STATUS_UNSPECIFIED),
        ended_at=_ts(e["ended_at"]),
        ended_by=e["ended_by"],
        end_reason=e["end_reason"],
        sealed_at=_ts(e["sealed_at"]),
        sealed_by=e["sealed_by"],
        sealed_calls=int(e["sealed_calls"]),
        sealing_digest=e["sealing_digest"],
        grant_ids=e["grant_ids"],
        history=[
            pb.EmergencyEvent(
                at=_ts(h["at"]), actor=h["actor"], event=h["event"], reason=h["reason"]
            )
            for h in e["history"]
        ],
    )


def entry_message(e: Mapping[str, Any]) -> pb.SealingEntry:
    return pb.SealingEntry(
        request_id=e["request_id"],
        time=_ts(e["time"]),
        caller=e["caller"],
        department=e["department"],
        dataset=e["dataset"],
        action=e["action"],
        purpose=e["purpose"],
        outcome=e["outcome"],
        subject_records=e["subject_records"],
        subject_hashes=e["subject_hashes"],
    )


def _scope_datasets(scope: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(scope)) or ("",)


def expiry_details(ended: list[tuple[dict[str, Any], list[str]]]) -> dict[str, Any]:
    """What an on-demand expiry adds to the audit record of the call that noticed it."""
    if not ended:
        return {}
    return {
        "transition": "emergency_expired",
        "emergency_ids": [doc["id"] for doc, _ in ended],
        "grants_revoked": [g for _, revoked in ended for g in revoked],
    }


class EmergencyService(emergency_pb2_grpc.EmergencyServiceServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        store: EmergencyStore,
        audit: AuditIndex | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts
        self.store = store
        self.audit = audit  # the index of every chain in the data directory (None: no trail)

    def _datasets_of(self, em_id: str) -> tuple[str, ...]:
        # Another process (worker, CLI) may have declared it a moment ago.
        self.store.reload()
        doc = self.store.get(em_id) if em_id else None
        return _scope_datasets(doc["scope"]) if doc else ("",)

    def _required_id(self, value: str) -> Request:
        if not value:
            raise invalid("emergency_id", "is required", "EMERGENCY_ID_MISSING")
        return Request(PURPOSE, self._datasets_of(value))

    async def DeclareEmergency(self, request: pb.DeclareEmergencyRequest, context):
        def parse() -> Request:
            # Checked after the policy decided: a non-admin learns nothing from them.
            e = EmergencyInput(
                title=request.title,
                legal_basis=request.legal_basis,
                scope=tuple((s.dataset.strip(), normalize_fields(s.fields)) for s in request.scope),
                agencies=tuple(a.strip() for a in request.agencies),
                purpose=request.purpose,
                ends_at=request.ends_at.ToDatetime(tzinfo=UTC)
                if request.HasField("ends_at")
                else None,
            )
            known = sorted({ds for ds, _ in e.scope if self.parts.catalog.get(ds)})
            return Request(PURPOSE, tuple(known) or ("",), payload=e)

        def execute(ex: Exec) -> Outcome[pb.DeclareEmergencyResponse]:
            doc = self.store.declare(ex.caller, ex.request.payload, ex.now)
            return Outcome(
                pb.DeclareEmergencyResponse(emergency=emergency_message(doc)),
                audit={
                    "emergency_id": doc["id"],
                    "transition": "emergency_declared",
                    "ends_at": doc["ends_at"],
                    "agencies": doc["agencies"],
                    "grants_created": doc["grant_ids"],
                },
            )

        return await self.pipeline.run(
            context,
            EMERGENCY_DECLARE,
            parse,
            execute,
            replay_as=pb.DeclareEmergencyResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def EndEmergency(self, request: pb.EndEmergencyRequest, context):
        def execute(ex: Exec) -> Outcome[pb.EndEmergencyResponse]:
            doc, revoked = self.store.end(ex.caller, request.emergency_id, request.reason, ex.now)
            return Outcome(
                pb.EndEmergencyResponse(
                    emergency=emergency_message(doc), revoked_grant_ids=revoked
                ),
                audit={
                    "emergency_id": doc["id"],
                    "transition": "emergency_ended",
                    "grants_revoked": revoked,
                },
            )

        return await self.pipeline.run(
            context,
            EMERGENCY_END,
            lambda: self._required_id(request.emergency_id),
            execute,
            replay_as=pb.EndEmergencyResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def ListEmergencies(self, request: pb.ListEmergenciesRequest, context):
        def parse() -> Request:
            if request.status and request.status not in _STATUSES:
                raise invalid("status", "must be active or ended", "STATUS_INVALID")
            return Request(PURPOSE, ("",))

        def execute(ex: Exec) -> Outcome[pb.ListEmergenciesResponse]:
            self.store.reload()
            ended = self.store.expire_due(ex.now)
            docs = self.store.listed(ex.caller, _STATUSES.get(request.status, ""))
            return Outcome(
                pb.ListEmergenciesResponse(emergencies=[emergency_message(d) for d in docs]),
                audit=expiry_details(ended),
            )

        return await self.pipeline.run(context, EMERGENCY_READ, parse, execute)

    async def GetEmergency(self, request: pb.GetEmergencyRequest, context):
        def execute(ex: Exec) -> Outcome[pb.GetEmergencyResponse]:
            self.store.visible(ex.caller, request.emergency_id)
            ended = self.store.expire_due(ex.now, [request.emergency_id])
            doc = self.store.visible(ex.caller, request.emergency_id)
            return Outcome(
                pb.GetEmergencyResponse(emergency=emergency_message(doc)),
                audit=expiry_details(ended),
            )

        return await self.pipeline.run(
            context, EMERGENCY_READ, lambda: self._required_id(request.emergency_id), execute
        )

    async def GetSealingList(self, request: pb.GetSealingListRequest, context):
        async def execute(ex: Exec) -> Outcome[pb.GetSealingListResponse]:
            doc = self.store.visible(ex.caller, request.emergency_id)
            # The audit index is refreshed from the chains: in a worker thread.
            entries = await asyncio.to_thread(sealing_list, self.audit or (), doc["id"])
            return Outcome(
                pb.GetSealingListResponse(
                    emergency=emergency_message(doc),
                    entries=[entry_message(e) for e in entries],
                    calls=len(entries),
                    subject_records=sum(e["subject_records"] for e in entries),
                    digest=digest(entries),
                ),
                audit={"emergency_id": doc["id"], "calls": len(entries)},
            )

        return await self.pipeline.run(
            context, EMERGENCY_SEALING, lambda: self._required_id(request.emergency_id), execute
        )

    async def SealEmergency(self, request: pb.SealEmergencyRequest, context):
        async def execute(ex: Exec) -> Outcome[pb.SealEmergencyResponse]:
            self.store.visible(ex.caller, request.emergency_id)
            # Past its end time but not yet marked: it ended then; record that first.
            ended = self.store.expire_due(ex.now, [request.emergency_id])
            entries = await asyncio.to_thread(sealing_list, self.audit or (), request.emergency_id)
            doc = self.store.seal(ex.caller, request.emergency_id, entries, ex.now)
            audit: dict[str, Any] = {
                "emergency_id": doc["id"],
                "transition": "emergency_sealed",
                "sealed_calls": doc["sealed_calls"],
                "sealing_digest": doc["sealing_digest"],
            }
            if ended:
                audit["expired_first"] = True
                audit["grants_revoked"] = [g for _, revoked in ended for g in revoked]
            return Outcome(pb.SealEmergencyResponse(emergency=emergency_message(doc)), audit=audit)

        return await self.pipeline.run(
            context,
            EMERGENCY_SEAL,
            lambda: self._required_id(request.emergency_id),
            execute,
            replay_as=pb.SealEmergencyResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    def expire(self, now: datetime) -> list[tuple[dict[str, Any], list[str]]]:
        self.store.reload()
        return self.store.expire_due(now)


def expiry_events(ended: list[tuple[dict[str, Any], list[str]]]) -> list[dict[str, Any]]:
    """Audit events of the server's own expiry round, one per emergency ended."""
    return [
        {
            "caller": EXPIRY_ACTOR,
            "caller_kind": "system",
            "action": EMERGENCY_END,
            "dataset": ",".join(sorted(doc["scope"])),
            "purpose": PURPOSE,
            "decision": "allow",
            "outcome": "OK",
            "subject": "",
            "details": {
                "transition": "emergency_expired"
                if doc["end_reason"] == EXPIRED_REASON
                else "emergency_grants_revoked",
                "emergency_id": doc["id"],
                "reason": doc["end_reason"],
                "grants_revoked": revoked,
            },
        }
        for doc, revoked in ended
    ]


async def expire_periodically(
    service: EmergencyService, interval_s: float = EXPIRY_INTERVAL_S
) -> None:
    """The server's own check: end emergencies whose end time passed, audit each end."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            now = service.parts.clock()
            ended = await asyncio.to_thread(service.expire, now)
            if ended:
                await service.parts.audit.append_many_async(expiry_events(ended), timeout=10.0)
                log.info("%d emergency(ies) past their end time ended", len(ended))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the next round tries again
            log.error("emergency expiry round failed: %s", type(e).__name__)
