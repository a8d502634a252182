"""PolicyAdminService's replies: protobuf messages from the administration's results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from govgw.v1 import policy_admin_pb2 as pb

from gateway.policy.bundle import PolicyProblem
from gateway.policy.check import RegoSuite
from gateway.policy.versions import HistoryEntry, VersionInfo
from gateway.services.common import timestamp


def version_message(info: VersionInfo, active: str) -> pb.PolicyVersion:
    return pb.PolicyVersion(
        version=info.version,
        digest=info.digest,
        author=info.author,
        created_at=timestamp(info.created_at),
        reason=info.reason,
        parent=info.parent,
        signed_by=info.signature.key_id if info.signature else "",
        files=sorted(info.files),
        active=info.version == active,
    )


def history_message(h: HistoryEntry) -> pb.HistoryEntry:
    return pb.HistoryEntry(
        seq=h.seq,
        at=timestamp(h.at),
        actor=h.actor,
        action=h.action,
        version=h.version,
        previous=h.previous,
        reason=h.reason,
        request_id=h.request_id,
    )


def problem_message(p: PolicyProblem) -> pb.PolicyProblem:
    return pb.PolicyProblem(kind=p.kind, message=p.message, file=p.file, line=p.line, rule=p.rule)


def _plan_summary(doc: Mapping[str, Any]) -> pb.PlanSummary:
    return pb.PlanSummary(
        allow=bool(doc.get("allow")),
        reason=str(doc.get("reason", "")),
        fields=dict(doc.get("fields", {})),
        predicates=list(doc.get("predicates", [])),
        region_prefix=str(doc.get("region_prefix", "")),
    )


def impact_message(r: Mapping[str, Any], since: datetime) -> pb.ImpactResponse:
    return pb.ImpactResponse(
        current_version=r["current_version"],
        candidate_version=r["candidate_version"],
        since=timestamp(since),
        records_read=r["records_read"],
        requests_replayed=r["requests_replayed"],
        decisions_compared=r["decisions_compared"],
        decisions_changed=r["decisions_changed"],
        skipped=r["skipped"],
        recorded_differs=r["recorded_differs"],
        totals=r["totals"],
        groups=[
            pb.ImpactGroup(
                dataset=g["dataset"],
                caller=g["caller"],
                caller_kind=g["caller_kind"],
                change=g["change"],
                count=g["count"],
                names=g["names"],
                examples=[
                    pb.ImpactExample(
                        request_id=x["request_id"],
                        time=timestamp(x["ts"]),
                        action=x["action"],
                        purpose=x["purpose"],
                        requested_fields=x["requested_fields"],
                        before=_plan_summary(x["before"]),
                        after=_plan_summary(x["after"]),
                    )
                    for x in g["examples"]
                ],
            )
            for g in r["groups"]
        ],
    )


def suite_message(
    version: str, problems: Sequence[PolicyProblem], suite: RegoSuite | None, min_coverage: float
) -> pb.TestResponse:
    if suite is None:
        return pb.TestResponse(
            version=version, passed=False, problems=[problem_message(p) for p in problems]
        )
    return pb.TestResponse(
        version=version,
        passed=suite.passed and not problems and suite.coverage_percent >= min_coverage,
        results=[
            pb.RegoTestResult(name=r.name, passed=r.passed, message=r.message)
            for r in suite.results
        ],
        coverage_percent=round(suite.coverage_percent, 2),
        files=[
            pb.FileCoverage(
                file=f, percent=round(suite.file_coverage(f), 2), not_covered_lines=missed
            )
            for f, (_, missed) in sorted(suite.coverage.items())
        ],
        problems=[problem_message(p) for p in problems],
    )


# ----- typed payloads -------------------------------------------------------------------------
