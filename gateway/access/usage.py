"""Usage reports (R5, R17): how a provider's dataset was used, from the audit trail.

Per dataset and period, calls are counted by caller, caller kind, department,
purpose, action and outcome (Aba 2024 art. 27: the provider may see how its
data is used; Yingkou art. 36, Yichuan art. 38: statistics per department for
assessment). A call about several subjects writes one audit record per
subject: it counts once in `calls`, and `subjects` counts its records.
Nothing personal is read: the report groups on caller metadata only.

The gateway counts through the audit index (gateway.audit.index, one SQL
GROUP BY); given chain files instead, the chains are scanned (the reference
the index is tested against).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from gateway.access.sweep import parse_time
from gateway.audit import read_records
from gateway.audit.index import BaseAuditIndex

COLUMNS = ("caller", "caller_kind", "department", "purpose", "action", "outcome")


@dataclass(frozen=True)
class UsageRow:
    caller: str
    caller_kind: str
    department: str
    purpose: str
    action: str
    outcome: str
    calls: int
    subjects: int


@dataclass(frozen=True)
class UsageReport:
    dataset: str
    since: datetime
    until: datetime
    rows: tuple[UsageRow, ...]

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "calls": self.calls,
            "rows": [asdict(r) for r in self.rows],
        }


def usage_report(
    audit: Iterable[Path] | BaseAuditIndex, dataset: str, since: datetime, until: datetime
) -> UsageReport:
    """Counts of the calls on `dataset` recorded in [since, until). Reads files: run
    it off the event loop."""
    if isinstance(audit, BaseAuditIndex):
        audit.refresh()
        counted = audit.usage_counts(dataset, since, until)
        return _report(dataset, since, until, ((k, c, s) for k, c, s in counted))
    return _scan(audit, dataset, since, until)


def _scan(
    audit_files: Iterable[Path], dataset: str, since: datetime, until: datetime
) -> UsageReport:
    requests: dict[tuple[str, ...], set[str]] = {}
    subjects: dict[tuple[str, ...], int] = {}
    for path in audit_files:
        for rec in read_records(path):
            if dataset not in str(rec.get("dataset", "")).split(","):
                continue
            ts = rec.get("ts")
            if not ts or not since <= parse_time(str(ts)) < until:
                continue
            key = tuple(str(rec.get(c, "")) for c in COLUMNS)
            rid = str(rec.get("request_id") or f"{path.name}:{rec.get('seq')}")
            requests.setdefault(key, set()).add(f"{path.name}/{rid}")
            if rec.get("subject"):
                subjects[key] = subjects.get(key, 0) + 1
    return _report(
        dataset,
        since,
        until,
        ((key, len(ids), subjects.get(key, 0)) for key, ids in requests.items()),
    )


def _report(
    dataset: str,
    since: datetime,
    until: datetime,
    counted: Iterable[tuple[tuple[str, ...], int, int]],
) -> UsageReport:
    rows = sorted(
        (UsageRow(*key, calls=calls, subjects=subjects) for key, calls, subjects in counted),
        key=lambda r: (-r.calls, *(getattr(r, c) for c in COLUMNS)),
    )
    return UsageReport(dataset, since, until, tuple(rows))


def to_csv(rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*COLUMNS, "calls", "subjects"])
    for r in rows:
        w.writerow([r.get(c, "") for c in (*COLUMNS, "calls", "subjects")])
    return out.getvalue()
