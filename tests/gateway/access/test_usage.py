"""Usage reports counted from a real audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.access.usage import to_csv, usage_report
from gateway.audit import AuditLog, read_records


def event(caller: str, dataset: str, outcome: str = "OK", **kw) -> dict:
    return {
        "request_id": kw.pop("request_id", f"req_{caller}_{outcome}_{dataset}"),
        "caller": caller,
        "caller_kind": "agency",
        "department": "松潘县公安局",
        "purpose": "核查",
        "action": "lookup",
        "dataset": dataset,
        "outcome": outcome,
        "subject": kw.pop("subject", ""),
        **kw,
    }


@pytest.mark.requirement("R5", "R17")
def test_counts_calls_and_subjects_per_group(tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    with AuditLog(log_path) as log:
        # One call about two subjects: two records, one call.
        log.append_many([event("a", "x.ds", request_id="r1", subject="h1"),
                         event("a", "x.ds", request_id="r1", subject="h2")])  # fmt: skip
        log.append(event("a", "x.ds", request_id="r2", subject="h3"))
        log.append(event("a", "x.ds", "PERMISSION_DENIED", request_id="r3"))
        log.append(event("b", "x.ds,y.ds", request_id="r4"))  # a call on two datasets
        log.append(event("c", "y.ds", request_id="r5"))
    now = datetime.now(UTC)
    r = usage_report([log_path], "x.ds", now - timedelta(hours=1), now + timedelta(hours=1))
    assert r.calls == 4
    got = [(row.caller, row.outcome, row.calls, row.subjects) for row in r.rows]
    assert got == [("a", "OK", 2, 3), ("a", "PERMISSION_DENIED", 1, 0), ("b", "OK", 1, 0)]
    # Outside the period: nothing.
    first = next(read_records(log_path))["ts"]
    start = datetime.fromisoformat(first.replace("Z", "+00:00"))
    assert usage_report([log_path], "x.ds", start - timedelta(days=2), start).rows == ()
    csv_text = to_csv(r.to_json()["rows"])  # type: ignore[arg-type]
    assert (
        csv_text.splitlines()[0]
        == "caller,caller_kind,department,purpose,action,outcome,calls,subjects"
    )
    assert csv_text.splitlines()[1] == "a,agency,松潘县公安局,核查,lookup,OK,2,3"
