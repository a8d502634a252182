"""The deadlines report (R3 assessment): what is waiting for an answer, and how long.

Every open (pending) application (申请, `applications`) and correction request
(校核, `corrections`) with its deadline in working days, the working days left
or by how many it is overdue, its provider and dataset. The coordinating
department (administrators) sees all; a providing agency sees its own
datasets' items only (an agency's own applications to others are not its to
answer, so they are not in its report). Counted on China's holiday calendar
(`deadlines`): today counts as a day left if it is a working day, and a
deadline that passed on a Friday is overdue by 0 working days on Saturday and
by 1 on Monday.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from gateway.access.applications import PENDING, SHARE, ApplicationStore, provides
from gateway.access.corrections import CorrectionStore
from gateway.access.deadlines import Deadline, china_date, is_working_day
from gateway.callers import Caller
from gateway.catalog import Catalog

SHARE_APPLICATION, OPEN_APPLICATION, CORRECTION = (
    "share_application",
    "open_application",
    "correction",
)
COLUMNS = (
    "id",
    "kind",
    "dataset",
    "provider",
    "received_on",
    "due_date",
    "working_days",
    "extended",
    "overdue",
    "working_days_left",
    "overdue_working_days",
)


@dataclass(frozen=True)
class DeadlineRow:
    id: str
    kind: str
    dataset: str
    provider: str
    received_on: str
    due_date: str
    working_days: int
    extended: bool
    overdue: bool
    working_days_left: int
    overdue_working_days: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def working_days_between(after: date, until: date) -> int:
    """Working days d with after < d <= until (0 when until <= after)."""
    n, day = 0, after
    while day < until:
        day += timedelta(days=1)
        n += is_working_day(day)
    return n


def row(
    item_id: str, kind: str, dataset: str, provider: str, due: Deadline, now: datetime
) -> DeadlineRow:
    today = china_date(now)
    overdue = due.overdue(now)
    return DeadlineRow(
        id=item_id,
        kind=kind,
        dataset=dataset,
        provider=provider,
        received_on=due.received.isoformat(),
        due_date=due.due.isoformat(),
        working_days=due.working_days,
        extended=due.extended,
        overdue=overdue,
        working_days_left=0
        if overdue
        else working_days_between(today - timedelta(days=1), due.due),
        overdue_working_days=working_days_between(due.due, today) if overdue else 0,
    )


def report(
    caller: Caller,
    *,
    applications: ApplicationStore,
    corrections: CorrectionStore,
    catalog: Catalog,
    now: datetime,
    overdue_only: bool = False,
    dataset: str = "",
) -> list[DeadlineRow]:
    """The caller's report, soonest due first. Raises DeadlineError (CALENDAR_NOT_COVERED)
    when today or a due date lies in a year the holiday calendar does not know."""

    def answers(name: str) -> bool:
        if dataset and name != dataset:
            return False
        if caller.kind == "admin":
            return True
        return provides(catalog, caller, name)

    rows: list[DeadlineRow] = []
    for app in applications.list(caller, now, status=PENDING):
        if answers(app["dataset"]):
            kind = SHARE_APPLICATION if app["kind"] == SHARE else OPEN_APPLICATION
            due = Deadline.from_dict(app["deadline"])
            rows.append(row(app["id"], kind, app["dataset"], app["provider"], due, now))
    for cid, name, provider, due in corrections.pending_deadlines():
        if answers(name):
            rows.append(row(cid, CORRECTION, name, provider, due, now))
    if overdue_only:
        rows = [r for r in rows if r.overdue]
    return sorted(rows, key=lambda r: (r.due_date, r.received_on, r.id))


def to_csv(rows: Iterable[DeadlineRow]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        d = r.to_json()
        w.writerow([str(d[c]).lower() if isinstance(d[c], bool) else d[c] for c in COLUMNS])
    return out.getvalue()
