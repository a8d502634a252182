"""AccessService: applications for conditional access and the grants they create.

Every call runs through the pipeline with an action of its own (access.apply,
access.read, access.decide, access.sweep); the policy decides who may call
it at all, `gateway.access.applications` checks the rest (provider, rules,
deadline). Each transition's audit record carries the application and grant
ids in `details`; the dataset is audited as the call's dataset, so the
provider's usage report sees applications too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2
from govgw.v1 import access_pb2 as pb

from gateway import validation
from gateway.access.applications import (
    ApplicationInput,
    ApplicationStore,
    normalize_fields,
)
from gateway.access.sweep import sweep_unused
from gateway.audit.index import BaseAuditIndex
from gateway.call import Exec, Outcome, Request
from gateway.errors import invalid
from gateway.grants import ACTIVE, REVOKED, SUSPENDED
from gateway.pipeline import Parts
from gateway.plan import ACCESS_APPLY, ACCESS_DECIDE, ACCESS_READ, ACCESS_SWEEP
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

log = logging.getLogger("govgw.access")

PURPOSE = validation.purpose("数据申请授权")  # recorded as the purpose of calls that carry none
SWEEP_INTERVAL_S = 6 * 3600.0

_USES = {
    pb.APPLICATION_USE_DUTY: "duty",
    pb.APPLICATION_USE_PUBLIC_SERVICE: "public_service",
    pb.APPLICATION_USE_INNOVATION: "innovation",
    pb.APPLICATION_USE_RESEARCH: "research",
    pb.APPLICATION_USE_COMMERCIAL: "commercial",
}
_USE_VALUES = {v: k for k, v in _USES.items()}
_STATUSES = {
    pb.GRANT_STATUS_ACTIVE: ACTIVE,
    pb.GRANT_STATUS_SUSPENDED: SUSPENDED,
    pb.GRANT_STATUS_REVOKED: REVOKED,
}
_STATUS_VALUES = {v: k for k, v in _STATUSES.items()}


def _optional_ts(text: str) -> timestamp_pb2.Timestamp | None:
    return timestamp(text) if text else None


def application_message(doc: Mapping[str, Any]) -> pb.Application:
    due = doc["deadline"]
    d = doc.get("decision")
    return pb.Application(
        id=doc["id"],
        kind=doc["kind"],
        applicant=doc["applicant"],
        applicant_kind=doc["applicant_kind"],
        department=doc["department"],
        dataset=doc["dataset"],
        provider=doc["provider"],
        fields=doc["fields"],
        purpose=doc["purpose"],
        scenario=doc["scenario"],
        duration_days=int(doc["duration_days"]),
        use=_USE_VALUES.get(doc["use"], pb.APPLICATION_USE_UNSPECIFIED),
        public_interest=doc["public_interest"],
        competitive_authorization=doc["competitive_authorization"],
        security_commitment_accepted=doc["security_commitment_accepted"],
        use_agreement_accepted=doc["use_agreement_accepted"],
        status=doc["status"],
        created_at=_optional_ts(doc["created_at"]),
        due_date=due["due"],
        working_days=int(due["working_days"]),
        jurisdiction=due["jurisdiction"],
        overdue=bool(doc.get("overdue")),
        decision=pb.ApplicationDecision(
            decided_by=d["by"],
            department=d["department"],
            decided_at=_optional_ts(d["at"]),
            approved=d["approved"],
            reason=d["reason"],
            legal_basis=d["legal_basis"],
            fields=d.get("fields", []),
        )
        if d
        else None,
        grant_id=doc.get("grant_id", ""),
        history=[
            pb.ApplicationEvent(
                at=_optional_ts(h["at"]),
                actor=h["actor"],
                event=h["event"],
                grant_id=h.get("grant_id", ""),
                reason=h.get("reason", ""),
            )
            for h in doc["history"]
        ],
    )


def grant_message(g: Mapping[str, Any]) -> pb.Grant:
    return pb.Grant(
        id=g["id"],
        caller=g["caller"],
        dataset=g["dataset"],
        fields=g["fields"],
        purpose=g["purpose"],
        expires_at=_optional_ts(g["expires_at"]),
        status=_STATUS_VALUES.get(g["status"], pb.GRANT_STATUS_UNSPECIFIED),
        application_id=g.get("application_id", ""),
    )


@dataclass(frozen=True)
class _Filter:
    """ListApplications' payload."""

    status: str
    dataset: str
    overdue_only: bool


@dataclass(frozen=True)
class _Decision:
    """DecideApplication's payload."""

    application_id: str
    approve: bool
    fields: tuple[str, ...]
    reason: str
    legal_basis: str


@dataclass(frozen=True)
class _GrantChange:
    """ChangeGrant's payload: the grant, its new status (a gateway.grants status) and why."""

    grant_id: str
    status: str
    reason: str


def _application_id(app_id: str) -> str:
    if not app_id:
        raise invalid("application_id", "is required", "APPLICATION_ID_MISSING")
    return app_id


class AccessService:
    def __init__(
        self,
        parts: Parts,
        store: ApplicationStore,
        audit: BaseAuditIndex | None = None,
    ) -> None:
        self.parts = parts
        self.store = store
        # The index of every chain in the data directory, for last uses (None: no trail).
        self.audit = audit

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "AccessService")
        return [
            row("Apply", ACCESS_APPLY, self.parse_apply, self.apply, state_changing=True),
            row("ListApplications", ACCESS_READ, self.parse_list, self.list_applications),
            row("GetApplication", ACCESS_READ, self.parse_get, self.get_application),
            row(
                "DecideApplication",
                ACCESS_DECIDE,
                self.parse_decide,
                self.decide_application,
                state_changing=True,
            ),
            row(
                "ChangeGrant",
                ACCESS_DECIDE,
                self.parse_change_grant,
                self.change_grant,
                state_changing=True,
            ),
            row(
                "SweepUnusedGrants",
                ACCESS_SWEEP,
                self.parse_sweep,
                self.sweep_unused_grants,
                in_thread=True,
            ),
        ]

    def _dataset_of(self, app_id: str) -> tuple[str, ...]:
        doc = self.store.get(app_id) if app_id else None
        return (doc["dataset"],) if doc else ("",)

    def parse_apply(self, request: pb.ApplyRequest, _in: Incoming) -> Request[ApplicationInput]:
        use = _USES.get(request.use, "") if request.use else ""
        if request.use and not use:
            raise invalid("use", "is not a known use", "USE_INVALID")
        a = ApplicationInput(
            dataset=request.dataset,
            fields=normalize_fields(request.fields),
            purpose=request.purpose,
            scenario=request.scenario,
            duration_days=request.duration_days,
            use=use,
            public_interest=request.public_interest,
            competitive_authorization=request.competitive_authorization,
            security_commitment_accepted=request.security_commitment_accepted,
            use_agreement_accepted=request.use_agreement_accepted,
        )
        ds = self.parts.catalog.get(a.dataset)
        return Request(
            PURPOSE,
            (ds.name if ds else "",),
            fields=a.fields if ds else (),
            payload=a,
        )

    def apply(self, ex: Exec[ApplicationInput]) -> Outcome[pb.ApplyResponse]:
        doc = self.store.apply(ex.caller, ex.request.payload, ex.now)
        return Outcome(
            pb.ApplyResponse(application=application_message(doc)),
            audit={"application_id": doc["id"], "transition": "applied", "due": doc["due"]},
        )

    def parse_list(self, request: pb.ListApplicationsRequest, _in: Incoming) -> Request[_Filter]:
        if request.status and request.status not in ("pending", "approved", "denied"):
            raise invalid("status", "must be pending, approved or denied", "STATUS_INVALID")
        return Request(
            PURPOSE, ("",), payload=_Filter(request.status, request.dataset, request.overdue_only)
        )

    def list_applications(self, ex: Exec[_Filter]) -> Outcome[pb.ListApplicationsResponse]:
        f = ex.request.payload
        docs = self.store.list(
            ex.caller,
            ex.now,
            status=f.status,
            dataset=f.dataset,
            overdue_only=f.overdue_only,
        )
        return Outcome(
            pb.ListApplicationsResponse(applications=[application_message(d) for d in docs])
        )

    def parse_get(self, request: pb.GetApplicationRequest, _in: Incoming) -> Request[str]:
        return Request(PURPOSE, ("",), payload=_application_id(request.application_id))

    def get_application(self, ex: Exec[str]) -> Outcome[pb.GetApplicationResponse]:
        doc = self.store.visible(ex.caller, ex.request.payload, ex.now)
        return Outcome(pb.GetApplicationResponse(application=application_message(doc)))

    def parse_decide(
        self, request: pb.DecideApplicationRequest, _in: Incoming
    ) -> Request[_Decision]:
        app_id = _application_id(request.application_id)
        return Request(
            PURPOSE,
            self._dataset_of(app_id),
            payload=_Decision(
                app_id,
                request.approve,
                normalize_fields(request.fields),
                request.reason,
                request.legal_basis,
            ),
        )

    def decide_application(self, ex: Exec[_Decision]) -> Outcome[pb.DecideApplicationResponse]:
        d = ex.request.payload
        doc = self.store.decide(
            ex.caller,
            d.application_id,
            approve=d.approve,
            fields=d.fields,
            reason=d.reason,
            legal_basis=d.legal_basis,
            now=ex.now,
        )
        grant = self.store.grants.get(doc["grant_id"]) if doc["grant_id"] else None
        return Outcome(
            pb.DecideApplicationResponse(
                application=application_message(doc),
                grant=grant_message(grant) if grant else None,
            ),
            audit={
                "application_id": doc["id"],
                "transition": doc["status"],
                "grant_id": doc["grant_id"],
            },
        )

    def parse_change_grant(
        self, request: pb.ChangeGrantRequest, _in: Incoming
    ) -> Request[_GrantChange]:
        v = validation.Violations()
        if not request.grant_id:
            v.add("grant_id", "is required", "GRANT_ID_MISSING")
        if request.status not in _STATUSES:
            v.add("status", "must be active, suspended or revoked", "STATUS_INVALID")
        v.raise_if_any()
        grant = self.store.grants.get(request.grant_id)
        return Request(
            PURPOSE,
            (grant["dataset"] if grant else "",),
            payload=_GrantChange(request.grant_id, _STATUSES[request.status], request.reason),
        )

    def change_grant(self, ex: Exec[_GrantChange]) -> Outcome[pb.ChangeGrantResponse]:
        c = ex.request.payload
        g = self.store.change_grant(ex.caller, c.grant_id, c.status, c.reason, ex.now)
        return Outcome(
            pb.ChangeGrantResponse(grant=grant_message(g)),
            audit={
                "grant_id": g["id"],
                "application_id": g.get("application_id", ""),
                "transition": f"grant_{c.status}",
            },
        )

    def parse_sweep(self, _request: pb.SweepUnusedGrantsRequest, _in: Incoming) -> Request[None]:
        return Request(PURPOSE, ("",))

    def sweep_unused_grants(self, ex: Exec[None]) -> Outcome[pb.SweepUnusedGrantsResponse]:
        revoked = self.sweep(ex.now)  # blocking: the route runs it in a worker thread
        return Outcome(
            pb.SweepUnusedGrantsResponse(revoked=[grant_message(g) for g in revoked]),
            audit={"transition": "grant_revoked", "grants_revoked": [g["id"] for g in revoked]},
        )

    def sweep(self, now: datetime) -> list[dict[str, Any]]:
        revoked = sweep_unused(self.store.grants, self.audit or (), now)
        for g in revoked:
            self.store.record_sweep(g, now)
        return revoked


async def sweep_periodically(service: AccessService, interval_s: float = SWEEP_INTERVAL_S) -> None:
    """The server's own sweep: revoke unused grants, audit each revocation."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            now = service.parts.clock()
            revoked = await asyncio.to_thread(service.sweep, now)
            if revoked:
                events = [
                    {
                        "caller": "system:sweep",
                        "caller_kind": "system",
                        "action": ACCESS_SWEEP,
                        "dataset": g["dataset"],
                        "purpose": PURPOSE,
                        "decision": "allow",
                        "outcome": "OK",
                        "subject": "",
                        "details": {
                            "transition": "grant_revoked",
                            "grant_id": g["id"],
                            "application_id": g.get("application_id", ""),
                            "reason": "UNUSED_3_MONTHS",
                        },
                    }
                    for g in revoked
                ]
                await service.parts.audit.append_many_async(events, timeout=10.0)
                log.info("sweep revoked %d unused grant(s)", len(revoked))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the next round tries again
            log.error("sweep of unused grants failed: %s", type(e).__name__)
