"""DeadlineService: the deadlines report (R3 assessment) over the one pipeline.

Allowed by policy to agencies and administrators (deadlines.read, govgw.access);
`gateway.access.deadline_report` shows a provider its own datasets' items only.
"""

from __future__ import annotations

from typing import Any

from govgw.v1 import deadlines_pb2 as pb

from gateway import validation
from gateway.access.applications import ApplicationStore, deadline_error
from gateway.access.corrections import CorrectionStore
from gateway.access.deadline_report import (
    CORRECTION,
    OPEN_APPLICATION,
    SHARE_APPLICATION,
    DeadlineRow,
    report,
)
from gateway.access.deadlines import DeadlineError, china_date
from gateway.call import Exec, Outcome, Request
from gateway.pipeline import Parts
from gateway.plan import DEADLINES_READ
from gateway.routes import Incoming, Route, rows_of

PURPOSE = validation.purpose("办理时限考核")  # deadline assessment (R3)

_KINDS = {
    SHARE_APPLICATION: pb.DEADLINE_ITEM_KIND_SHARE_APPLICATION,
    OPEN_APPLICATION: pb.DEADLINE_ITEM_KIND_OPEN_APPLICATION,
    CORRECTION: pb.DEADLINE_ITEM_KIND_CORRECTION,
}


def item_message(r: DeadlineRow) -> pb.DeadlineItem:
    return pb.DeadlineItem(
        id=r.id,
        kind=_KINDS[r.kind],
        dataset=r.dataset,
        provider=r.provider,
        received_on=r.received_on,
        due_date=r.due_date,
        working_days=r.working_days,
        extended=r.extended,
        overdue=r.overdue,
        working_days_left=r.working_days_left,
        overdue_working_days=r.overdue_working_days,
    )


class DeadlineService:
    def __init__(
        self, parts: Parts, applications: ApplicationStore, corrections: CorrectionStore
    ) -> None:
        self.parts = parts
        self.applications = applications
        self.corrections = corrections

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "DeadlineService")
        return [row("ListDeadlines", DEADLINES_READ, self.parse_list, self.list_deadlines)]

    def parse_list(self, request: pb.ListDeadlinesRequest, _in: Incoming) -> Request[bool]:
        """The payload: overdue items only? (The dataset, if any, is the call's dataset.)"""
        if request.dataset:
            validation.dataset(self.parts.catalog, request.dataset)
        return Request(PURPOSE, (request.dataset,), payload=request.overdue_only)

    def list_deadlines(self, ex: Exec[bool]) -> Outcome[pb.ListDeadlinesResponse]:
        try:
            rows = report(
                ex.caller,
                applications=self.applications,
                corrections=self.corrections,
                catalog=self.parts.catalog,
                now=ex.now,
                overdue_only=ex.request.payload,
                dataset=ex.request.datasets[0],
            )
        except DeadlineError as e:
            raise deadline_error(e) from None
        return Outcome(
            pb.ListDeadlinesResponse(
                items=[item_message(r) for r in rows], as_of=china_date(ex.now).isoformat()
            ),
            audit={"items": len(rows), "overdue": sum(r.overdue for r in rows)},
        )
