"""UsageService: a provider's usage report on its dataset (R5, R17).

Allowed by policy to agencies and administrators (action usage.read); an
agency must be the dataset's provider (`is_provider`). The report is read
from every audit chain in the data directory.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import grpc
from govgw.v1 import usage_pb2 as pb

from gateway import validation
from gateway.access.applications import is_provider
from gateway.access.usage import usage_report
from gateway.audit.index import BaseAuditIndex
from gateway.call import Exec, Outcome, Request
from gateway.errors import GovgwError
from gateway.pipeline import Parts
from gateway.plan import USAGE_READ
from gateway.routes import Incoming, Route, rows_of
from gateway.services.common import timestamp

PURPOSE = validation.purpose("数据使用情况统计")
DEFAULT_PERIOD = timedelta(days=30)
MAX_PERIOD = timedelta(days=366)

# GetUsageReport's payload: the report's [since, until).
Period = tuple[datetime, datetime]


class UsageService:
    def __init__(self, parts: Parts, audit: BaseAuditIndex) -> None:
        self.parts = parts
        self.audit = audit

    def routes(self) -> list[Route[Any, Any]]:
        row = rows_of(pb.DESCRIPTOR, "UsageService")
        return [
            # The report reads the audit index (SQLite): a worker thread's job.
            row("GetUsageReport", USAGE_READ, self.parse_report, self.report, in_thread=True)
        ]

    def parse_report(self, request: pb.GetUsageReportRequest, _in: Incoming) -> Request[Period]:
        v = validation.Violations()
        ds = v.check(validation.dataset, self.parts.catalog, request.dataset)
        span = v.check(
            validation.period,
            request,
            self.parts.clock(),
            DEFAULT_PERIOD,
            MAX_PERIOD,
            "366 days",
        )
        v.raise_if_any()
        assert ds is not None and span is not None
        return Request(PURPOSE, (ds.name,), payload=span)

    def report(self, ex: Exec[Period]) -> Outcome[pb.GetUsageReportResponse]:
        ds = self.parts.catalog.get(ex.request.datasets[0])
        assert ds is not None
        if ex.caller.kind != "admin" and not is_provider(ex.caller, ds):
            raise GovgwError(
                grpc.StatusCode.PERMISSION_DENIED,
                "PROVIDER_REQUIRED",
                "only the dataset's provider (or an administrator) sees its usage",
                metadata={"dataset": ds.name},
            )
        since, until = ex.request.payload
        report = usage_report(self.audit, ds.name, since, until)
        return Outcome(
            pb.GetUsageReportResponse(
                dataset=ds.name,
                since=timestamp(since),
                until=timestamp(until),
                calls=report.calls,
                rows=[
                    pb.UsageRow(
                        caller=r.caller,
                        caller_kind=r.caller_kind,
                        department=r.department,
                        purpose=r.purpose,
                        action=r.action,
                        outcome=r.outcome,
                        calls=r.calls,
                        subjects=r.subjects,
                    )
                    for r in report.rows
                ],
            )
        )
