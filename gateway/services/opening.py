"""OpeningService: suspend, withdraw and reopen a dataset's opening (撤回, R9).

Allowed by policy to agencies and administrators (opening.suspend/read,
govgw.opening); `gateway.access.opening` checks that an agency provides the
dataset. The effect on the open route is the policy's (data.suspensions).
Every transition is audited with the suspension id and the transition; the
provider's reason is kept in the store, not in the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from govgw.v1 import opening_pb2 as pb

from gateway import validation
from gateway.access.opening import REOPENED, SUSPENDED, WITHDRAWN, OpeningSuspensionStore
from gateway.call import Exec, Outcome, Request
from gateway.pipeline import Parts
from gateway.plan import OPENING_READ, OPENING_SUSPEND
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

PURPOSE = validation.purpose("开放数据安全风险处置")  # handling a security risk of opened data

_STATUS = {
    SUSPENDED: pb.OPENING_SUSPENSION_STATUS_SUSPENDED,
    WITHDRAWN: pb.OPENING_SUSPENSION_STATUS_WITHDRAWN,
    REOPENED: pb.OPENING_SUSPENSION_STATUS_REOPENED,
}
_STATUS_NAMES = {v: k for k, v in _STATUS.items()}


def suspension_message(doc: Mapping[str, Any]) -> pb.OpeningSuspension:
    return pb.OpeningSuspension(
        id=doc["id"],
        dataset=doc["dataset"],
        provider=doc["provider"],
        status=_STATUS[doc["status"]],
        reason=doc["reason"],
        suspended_at=timestamp(doc["suspended_at"]),
        reprocessed=bool(doc.get("reprocessed")),
        history=[
            pb.OpeningEvent(
                at=timestamp(e["at"]),
                by=e["by"],
                department=e["department"],
                event=e["event"],
                reason=e["reason"],
            )
            for e in doc["history"]
        ],
    )


@dataclass(frozen=True)
class _Suspend:
    """SuspendOpening's payload: the dataset as named by the caller, and why."""

    dataset: str
    reason: str


@dataclass(frozen=True)
class _Filter:
    """ListOpeningSuspensions' payload: the dataset ("" for all) and status ("" for any)."""

    dataset: str
    status: str


@dataclass(frozen=True)
class _Transition:
    """WithdrawOpening's and ReopenOpening's payload."""

    suspension_id: str
    reason: str
    reprocessed: bool = False


class OpeningService:
    def __init__(self, parts: Parts, store: OpeningSuspensionStore) -> None:
        self.parts = parts
        self.store = store

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "OpeningService")
        return [
            row(
                "SuspendOpening",
                OPENING_SUSPEND,
                self.parse_suspend,
                self.suspend,
                state_changing=True,
            ),
            row("ListOpeningSuspensions", OPENING_READ, self.parse_list, self.list_suspensions),
            row(
                "WithdrawOpening",
                OPENING_SUSPEND,
                self.parse_withdraw,
                self.withdraw,
                state_changing=True,
            ),
            row(
                "ReopenOpening",
                OPENING_SUSPEND,
                self.parse_reopen,
                self.reopen,
                state_changing=True,
            ),
        ]

    def _on(self, t: _Transition) -> Request[_Transition]:
        """A call naming a suspension is audited under its dataset (if it is one)."""
        doc = self.store.get(t.suspension_id) if t.suspension_id else None
        return Request(PURPOSE, (doc["dataset"] if doc else "",), payload=t)

    def parse_suspend(self, request: pb.SuspendOpeningRequest, _in: Incoming) -> Request[_Suspend]:
        # Audited as the call's dataset only if it is one (never the caller's raw text).
        ds = self.parts.catalog.get(request.dataset)
        return Request(
            PURPOSE, (ds.name if ds else "",), payload=_Suspend(request.dataset, request.reason)
        )

    def suspend(self, ex: Exec[_Suspend]) -> Outcome[pb.SuspendOpeningResponse]:
        s = ex.request.payload
        doc = self.store.suspend(ex.caller, s.dataset, s.reason, ex.now)
        return Outcome(
            pb.SuspendOpeningResponse(suspension=suspension_message(doc)),
            audit={"suspension_id": doc["id"], "transition": SUSPENDED},
        )

    def parse_list(
        self, request: pb.ListOpeningSuspensionsRequest, _in: Incoming
    ) -> Request[_Filter]:
        v = validation.Violations()
        if request.dataset:
            v.check(validation.dataset, self.parts.catalog, request.dataset)
        if request.status and request.status not in _STATUS_NAMES:
            v.add("status", "is not a known status", "STATUS_INVALID")
        v.raise_if_any()
        return Request(
            PURPOSE,
            (request.dataset,),
            payload=_Filter(request.dataset, _STATUS_NAMES.get(request.status, "")),
        )

    def list_suspensions(self, ex: Exec[_Filter]) -> Outcome[pb.ListOpeningSuspensionsResponse]:
        f = ex.request.payload
        docs = self.store.visible(ex.caller, dataset=f.dataset, status=f.status)
        return Outcome(
            pb.ListOpeningSuspensionsResponse(suspensions=[suspension_message(d) for d in docs])
        )

    def parse_withdraw(
        self, request: pb.WithdrawOpeningRequest, _in: Incoming
    ) -> Request[_Transition]:
        return self._on(_Transition(request.suspension_id, request.reason))

    def withdraw(self, ex: Exec[_Transition]) -> Outcome[pb.WithdrawOpeningResponse]:
        t = ex.request.payload
        doc = self.store.withdraw(ex.caller, t.suspension_id, t.reason, ex.now)
        return Outcome(
            pb.WithdrawOpeningResponse(suspension=suspension_message(doc)),
            audit={"suspension_id": doc["id"], "transition": WITHDRAWN},
        )

    def parse_reopen(self, request: pb.ReopenOpeningRequest, _in: Incoming) -> Request[_Transition]:
        return self._on(
            _Transition(request.suspension_id, request.reason, reprocessed=request.reprocessed)
        )

    def reopen(self, ex: Exec[_Transition]) -> Outcome[pb.ReopenOpeningResponse]:
        t = ex.request.payload
        doc = self.store.reopen(
            ex.caller, t.suspension_id, t.reason, ex.now, reprocessed=t.reprocessed
        )
        return Outcome(
            pb.ReopenOpeningResponse(suspension=suspension_message(doc)),
            audit={
                "suspension_id": doc["id"],
                "transition": REOPENED,
                "reprocessed": doc["reprocessed"],
            },
        )
