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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from govgw.v1 import emergency_pb2 as pb

from gateway import validation
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
from gateway.audit.index import BaseAuditIndex
from gateway.call import Exec, Outcome, Request
from gateway.errors import invalid
from gateway.pipeline import Parts
from gateway.plan import (
    EMERGENCY_DECLARE,
    EMERGENCY_END,
    EMERGENCY_READ,
    EMERGENCY_SEAL,
    EMERGENCY_SEALING,
)
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

log = logging.getLogger("govgw.emergency")

PURPOSE = validation.purpose("突发事件应急数据管理")  # recorded as the purpose of these calls
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


@dataclass(frozen=True)
class Named:
    """A call about one emergency: its id and, for EndEmergency, the reason given."""

    emergency_id: str
    reason: str = ""


class EmergencyService:
    def __init__(
        self,
        parts: Parts,
        store: EmergencyStore,
        audit: BaseAuditIndex | None = None,
    ) -> None:
        self.parts = parts
        self.store = store
        self.audit = audit  # the index of every chain in the data directory (None: no trail)

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "EmergencyService")
        return [
            row(
                "DeclareEmergency",
                EMERGENCY_DECLARE,
                self.parse_declare,
                self.declare,
                state_changing=True,
            ),
            row("EndEmergency", EMERGENCY_END, self.parse_end, self.end, state_changing=True),
            row("ListEmergencies", EMERGENCY_READ, self.parse_list, self.list_emergencies),
            row("GetEmergency", EMERGENCY_READ, self.parse_named, self.get_emergency),
            row(
                "GetSealingList",
                EMERGENCY_SEALING,
                self.parse_named,
                self.get_sealing_list,
                in_thread=True,
            ),
            row(
                "SealEmergency",
                EMERGENCY_SEAL,
                self.parse_named,
                self.seal,
                state_changing=True,
                in_thread=True,
            ),
        ]

    def _datasets_of(self, em_id: str) -> tuple[str, ...]:
        # Another process (worker, CLI) may have declared it a moment ago.
        self.store.reload()
        doc = self.store.get(em_id) if em_id else None
        return _scope_datasets(doc["scope"]) if doc else ("",)

    def _required_id(self, value: str, reason: str = "") -> Request[Named]:
        if not value:
            raise invalid("emergency_id", "is required", "EMERGENCY_ID_MISSING")
        return Request(PURPOSE, self._datasets_of(value), payload=Named(value, reason))

    def parse_named(self, request: Any, _in: Incoming) -> Request[Named]:
        """GetEmergency, GetSealingList, SealEmergency: the emergency named."""
        return self._required_id(request.emergency_id)

    def parse_declare(
        self, request: pb.DeclareEmergencyRequest, _in: Incoming
    ) -> Request[EmergencyInput]:
        # Checked after the policy decided: a non-admin learns nothing from them.
        e = EmergencyInput(
            title=request.title,
            legal_basis=request.legal_basis,
            scope=tuple((s.dataset.strip(), normalize_fields(s.fields)) for s in request.scope),
            agencies=tuple(a.strip() for a in request.agencies),
            purpose=request.purpose,
            ends_at=request.ends_at.ToDatetime(tzinfo=UTC) if request.HasField("ends_at") else None,
        )
        known = sorted({ds for ds, _ in e.scope if self.parts.catalog.get(ds)})
        return Request(PURPOSE, tuple(known) or ("",), payload=e)

    def declare(self, ex: Exec[EmergencyInput]) -> Outcome[pb.DeclareEmergencyResponse]:
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

    def parse_end(self, request: pb.EndEmergencyRequest, _in: Incoming) -> Request[Named]:
        return self._required_id(request.emergency_id, request.reason)

    def end(self, ex: Exec[Named]) -> Outcome[pb.EndEmergencyResponse]:
        named = ex.request.payload
        doc, revoked = self.store.end(ex.caller, named.emergency_id, named.reason, ex.now)
        return Outcome(
            pb.EndEmergencyResponse(emergency=emergency_message(doc), revoked_grant_ids=revoked),
            audit={
                "emergency_id": doc["id"],
                "transition": "emergency_ended",
                "grants_revoked": revoked,
            },
        )

    def parse_list(self, request: pb.ListEmergenciesRequest, _in: Incoming) -> Request[str]:
        if request.status and request.status not in _STATUSES:
            raise invalid("status", "must be active or ended", "STATUS_INVALID")
        return Request(PURPOSE, ("",), payload=_STATUSES.get(request.status, ""))

    def list_emergencies(self, ex: Exec[str]) -> Outcome[pb.ListEmergenciesResponse]:
        self.store.reload()
        ended = self.store.expire_due(ex.now)
        docs = self.store.listed(ex.caller, ex.request.payload)
        return Outcome(
            pb.ListEmergenciesResponse(emergencies=[emergency_message(d) for d in docs]),
            audit=expiry_details(ended),
        )

    def get_emergency(self, ex: Exec[Named]) -> Outcome[pb.GetEmergencyResponse]:
        em_id = ex.request.payload.emergency_id
        self.store.visible(ex.caller, em_id)
        ended = self.store.expire_due(ex.now, [em_id])
        doc = self.store.visible(ex.caller, em_id)
        return Outcome(
            pb.GetEmergencyResponse(emergency=emergency_message(doc)),
            audit=expiry_details(ended),
        )

    def get_sealing_list(self, ex: Exec[Named]) -> Outcome[pb.GetSealingListResponse]:
        doc = self.store.visible(ex.caller, ex.request.payload.emergency_id)
        # The audit index is refreshed from the chains: in a worker thread (in_thread).
        entries = sealing_list(self.audit or (), doc["id"])
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

    def seal(self, ex: Exec[Named]) -> Outcome[pb.SealEmergencyResponse]:
        em_id = ex.request.payload.emergency_id
        self.store.visible(ex.caller, em_id)
        # Past its end time but not yet marked: it ended then; record that first.
        ended = self.store.expire_due(ex.now, [em_id])
        # The audit index is refreshed from the chains: in a worker thread (in_thread).
        entries = sealing_list(self.audit or (), em_id)
        doc = self.store.seal(ex.caller, em_id, entries, ex.now)
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
