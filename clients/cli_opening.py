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

import argparse
from typing import TYPE_CHECKING, Any

from clients.cli_access import _as_dict

if TYPE_CHECKING:
    from clients.cli import CliHelpers

_OPENING_STATUS = {1: "suspended", 2: "withdrawn", 3: "reopened"}
_ITEM_KIND = {1: "share_application", 2: "open_application", 3: "correction"}


def _suspension_doc(s: Any) -> dict[str, Any]:
    doc = _as_dict(s)
    doc["status"] = _OPENING_STATUS.get(s.status, "")
    doc["reprocessed"] = s.reprocessed
    return doc


def _suspension_line(s: Any) -> str:
    return f"opening of {s.dataset} {_OPENING_STATUS.get(s.status, '?')} ({s.id})" + (
        " after reprocessing" if s.reprocessed else ""
    )


def add_opening(subjects: Any, h: CliHelpers) -> None:
    """The opening verbs of `govgw subjects`."""

    def suspend(args: argparse.Namespace) -> int:
        with h.client(args) as gw:
            s = gw.suspend_opening(args.dataset, reason=args.reason)
        h.emit(args, _suspension_doc(s), lambda: _suspension_line(s))
        return 0

    sp = h.cmd(
        subjects, "suspend-opening", suspend, "suspend a dataset's opening at once (security risk)"
    )
    sp.add_argument("dataset")
    sp.add_argument("--reason", required=True, help="the security risk")

    def openings(args: argparse.Namespace) -> int:
        with h.client(args) as gw:
            items = gw.list_opening_suspensions(
                dataset=args.dataset or "", status=args.status or ""
            )
        rows = [["id", "dataset", "status", "reprocessed", "reason"]] + [
            [
                s.id,
                s.dataset,
                _OPENING_STATUS.get(s.status, "?"),
                "yes" if s.reprocessed else "",
                s.reason,
            ]
            for s in items
        ]
        h.emit(args, [_suspension_doc(s) for s in items], lambda: h.table(rows))
        return 0

    sp = h.cmd(subjects, "openings", openings, "suspensions of your datasets' opening")
    sp.add_argument("--dataset")
    sp.add_argument("--status", choices=("suspended", "withdrawn", "reopened"))

    def withdraw(args: argparse.Namespace) -> int:
        with h.client(args) as gw:
            s = gw.withdraw_opening(args.suspension_id, reason=args.reason)
        h.emit(args, _suspension_doc(s), lambda: _suspension_line(s))
        return 0

    sp = h.cmd(
        subjects, "withdraw-opening", withdraw, "withdraw a suspended opening until reopened"
    )
    sp.add_argument("suspension_id")
    sp.add_argument("--reason", required=True)

    def reopen(args: argparse.Namespace) -> int:
        with h.client(args) as gw:
            s = gw.reopen_opening(
                args.suspension_id, reason=args.reason, reprocessed=args.reprocessed
            )
        h.emit(args, _suspension_doc(s), lambda: _suspension_line(s))
        return 0

    sp = h.cmd(subjects, "reopen", reopen, "reopen a suspended or withdrawn opening")
    sp.add_argument("suspension_id")
    sp.add_argument("--reason", required=True)
    sp.add_argument("--reprocessed", action="store_true", help="the data was reprocessed")


def add_deadlines(access: Any, h: CliHelpers) -> None:
    """`govgw access deadlines`."""

    def deadlines(args: argparse.Namespace) -> int:
        from gateway.access.deadline_report import COLUMNS

        with h.client(args) as gw:
            r = gw.deadlines(overdue_only=args.overdue, dataset=args.dataset or "")
        rows = [
            {
                "id": i.id,
                "kind": _ITEM_KIND.get(i.kind, ""),
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
        if args.csv:
            import csv
            import sys

            w = csv.writer(sys.stdout, lineterminator="\n")
            w.writerow(COLUMNS)
            for row in rows:
                w.writerow(
                    [str(row[c]).lower() if isinstance(row[c], bool) else row[c] for c in COLUMNS]
                )
            return 0

        def human() -> str:
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

        h.emit(args, {"as_of": r.as_of, "items": rows}, human)
        return 0

    sp = h.cmd(
        access, "deadlines", deadlines, "open applications and corrections with their deadlines"
    )
    sp.add_argument("--overdue", action="store_true", help="only items past their deadline")
    sp.add_argument("--dataset")
    sp.add_argument("--csv", action="store_true", help="print CSV instead of a table")
