"""Opening suspensions (撤回 on a security risk, R9) and the deadlines report (R3).

The provider of a dataset (or an administrator):

    govgw subjects suspend-opening DATASET --reason R
    govgw subjects openings [--dataset D] [--status suspended|withdrawn|reopened]
    govgw subjects withdraw-opening SUSPENSION_ID --reason R
    govgw subjects reopen SUSPENSION_ID --reason R [--reprocessed]

The coordinating department (administrators: everything) and providers (their datasets):

    govgw access deadlines [--overdue] [--dataset D] [--csv]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clients.cli_common import csv_text, name

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def _suspension_line(s: Any) -> str:
    return f"opening of {s.dataset} {name(s.status)} ({s.id})" + (
        " after reprocessing" if s.reprocessed else ""
    )


def _suspension_rows(items: list[Any]) -> list[list[str]]:
    return [["id", "dataset", "status", "reprocessed", "reason"]] + [
        [
            s.id,
            s.dataset,
            name(s.status),
            "yes" if s.reprocessed else "",
            s.reason,
        ]
        for s in items
    ]


def add_opening(subjects: Any, h: CliHelpers) -> None:
    """The opening verbs of `govgw subjects`."""

    sp = h.verb(
        subjects,
        "suspend-opening",
        "suspend a dataset's opening at once (security risk)",
        lambda gw, a: gw.suspend_opening(a.dataset, reason=a.reason),
        _suspension_line,
    )
    sp.add_argument("dataset")
    sp.add_argument("--reason", required=True, help="the security risk")

    sp = h.verb(
        subjects,
        "openings",
        "suspensions of your datasets' opening",
        lambda gw, a: gw.list_opening_suspensions(dataset=a.dataset or "", status=a.status or ""),
        lambda items: h.table(_suspension_rows(items)),
    )
    sp.add_argument("--dataset")
    sp.add_argument("--status", choices=("suspended", "withdrawn", "reopened"))

    sp = h.verb(
        subjects,
        "withdraw-opening",
        "withdraw a suspended opening until reopened",
        lambda gw, a: gw.withdraw_opening(a.suspension_id, reason=a.reason),
        _suspension_line,
    )
    sp.add_argument("suspension_id")
    sp.add_argument("--reason", required=True)

    sp = h.verb(
        subjects,
        "reopen",
        "reopen a suspended or withdrawn opening",
        lambda gw, a: gw.reopen_opening(
            a.suspension_id, reason=a.reason, reprocessed=a.reprocessed
        ),
        _suspension_line,
    )
    sp.add_argument("suspension_id")
    sp.add_argument("--reason", required=True)
    sp.add_argument("--reprocessed", action="store_true", help="the data was reprocessed")


def add_deadlines(access: Any, h: CliHelpers) -> None:
    """`govgw access deadlines`."""

    sp = h.verb(
        access,
        "deadlines",
        "open applications and corrections with their deadlines",
        lambda gw, a: gw.deadlines(overdue_only=a.overdue, dataset=a.dataset or ""),
        lambda r: _deadlines_human(r, h),
        doc=lambda r: {"as_of": r.as_of, "items": _deadline_rows(r), "request_id": r.request_id},
        csv=lambda r: _deadlines_csv(_deadline_rows(r)),
    )
    sp.add_argument("--overdue", action="store_true", help="only items past their deadline")
    sp.add_argument("--dataset")
    sp.add_argument("--csv", action="store_true", help="print CSV instead of a table")


def _deadline_rows(r: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "kind": name(i.kind),
            "dataset": i.dataset,
            "provider": i.provider,
            "received_on": i.received_on,
            "due_date": i.due_date,
            "working_days": i.working_days,
            "extended": i.extended,
            "overdue": i.overdue,
            "working_days_left": i.working_days_left,
            "overdue_working_days": i.overdue_working_days,
        }
        for i in r.items
    ]


def _deadlines_csv(rows: list[dict[str, Any]]) -> str:
    from gateway.access.deadline_report import COLUMNS

    return csv_text(
        COLUMNS,
        (
            [str(row[c]).lower() if isinstance(row[c], bool) else row[c] for c in COLUMNS]
            for row in rows
        ),
    )


def _deadlines_human(r: Any, h: CliHelpers) -> str:
    rows = _deadline_rows(r)
    table = [["id", "kind", "dataset", "provider", "due", "left", "overdue by"]] + [
        [
            row["id"],
            str(row["kind"]),
            str(row["dataset"]),
            str(row["provider"]),
            str(row["due_date"]) + (" (extended)" if row["extended"] else ""),
            "" if row["overdue"] else f"{row['working_days_left']} wd",
            f"OVERDUE {row['overdue_working_days']} wd" if row["overdue"] else "",
        ]
        for row in rows
    ]
    overdue = sum(1 for row in rows if row["overdue"])
    return f"as of {r.as_of}: {len(rows)} open, {overdue} overdue\n" + h.table(table)
