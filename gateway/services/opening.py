"""OpeningService: suspend, withdraw and reopen a dataset's opening (撤回, R9).

Allowed by policy to agencies and administrators (opening.suspend/read,
govgw.opening); `gateway.access.opening` checks that an agency provides the
dataset. The effect on the open route is the policy's (data.suspensions).
Every transition is audited with the suspension id and the transition; the
provider's reason is kept in the store, not in the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from govgw.v1 import opening_pb2 as pb
from govgw.v1 import opening_pb2_grpc

from gateway import validation
from gateway.access.opening import REOPENED, SUSPENDED, WITHDRAWN, OpeningSuspensionStore
from gateway.pipeline import Exec, Outcome, Pipeline, Request
from gateway.plan import OPENING_READ, OPENING_SUSPEND
from gateway.services.common import timestamp

PURPOSE = "开放数据安全风险处置"  # handling a security risk of opened data

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


class OpeningService(opening_pb2_grpc.OpeningServiceServicer):
    def __init__(self, pipeline: Pipeline, store: OpeningSuspensionStore) -> None:
        self.pipeline = pipeline
        self.parts = pipeline.parts
        self.store = store

    def _on(self, sid: str) -> Request:
        """A call naming a suspension is audited under its dataset (if it is one)."""
        doc = self.store.get(sid) if sid else None
        return Request(PURPOSE, (doc["dataset"] if doc else "",))

    async def SuspendOpening(self, request: pb.SuspendOpeningRequest, context):
        def parse() -> Request:
            # Audited as the call's dataset only if it is one (never the caller's raw text).
            ds = self.parts.catalog.get(request.dataset)
            return Request(PURPOSE, (ds.name if ds else "",))

        def execute(ex: Exec) -> Outcome[pb.SuspendOpeningResponse]:
            doc = self.store.suspend(ex.caller, request.dataset, request.reason, ex.now)
            return Outcome(
                pb.SuspendOpeningResponse(suspension=suspension_message(doc)),
                audit={"suspension_id": doc["id"], "transition": SUSPENDED},
            )

        return await self.pipeline.run(
            context,
            OPENING_SUSPEND,
            parse,
            execute,
            replay_as=pb.SuspendOpeningResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def ListOpeningSuspensions(self, request: pb.ListOpeningSuspensionsRequest, context):
        def parse() -> Request:
            v = validation.Violations()
            if request.dataset:
                v.check(validation.dataset, self.parts.catalog, request.dataset)
            if request.status and request.status not in _STATUS_NAMES:
                v.add("status", "is not a known status", "STATUS_INVALID")
            v.raise_if_any()
            return Request(PURPOSE, (request.dataset,))

        def execute(ex: Exec) -> Outcome[pb.ListOpeningSuspensionsResponse]:
            docs = self.store.visible(
                ex.caller, dataset=request.dataset, status=_STATUS_NAMES.get(request.status, "")
            )
            return Outcome(
                pb.ListOpeningSuspensionsResponse(suspensions=[suspension_message(d) for d in docs])
            )

        return await self.pipeline.run(context, OPENING_READ, parse, execute)

    async def WithdrawOpening(self, request: pb.WithdrawOpeningRequest, context):
        def execute(ex: Exec) -> Outcome[pb.WithdrawOpeningResponse]:
            doc = self.store.withdraw(ex.caller, request.suspension_id, request.reason, ex.now)
            return Outcome(
                pb.WithdrawOpeningResponse(suspension=suspension_message(doc)),
                audit={"suspension_id": doc["id"], "transition": WITHDRAWN},
            )

        return await self.pipeline.run(
            context,
            OPENING_SUSPEND,
            lambda: self._on(request.suspension_id),
            execute,
            replay_as=pb.WithdrawOpeningResponse.FromString,
            request_bytes=request.SerializeToString(),
        )

    async def ReopenOpening(self, request: pb.ReopenOpeningRequest, context):
        def execute(ex: Exec) -> Outcome[pb.ReopenOpeningResponse]:
            doc = self.store.reopen(
                ex.caller,
                request.suspension_id,
                request.reason,
                ex.now,
                reprocessed=request.reprocessed,
            )
            return Outcome(
                pb.ReopenOpeningResponse(suspension=suspension_message(doc)),
                audit={
                    "suspension_id": doc["id"],
                    "transition": REOPENED,
                    "reprocessed": doc["reprocessed"],
                },
            )

        return await self.pipeline.run(
            context,
            OPENING_SUSPEND,
            lambda: self._on(request.suspension_id),
            execute,
            replay_as=pb.ReopenOpeningResponse.FromString,
            request_bytes=request.SerializeToString(),
        )
