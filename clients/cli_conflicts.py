"""`govgw conflicts ...`: values two providers hold differently (R16), for the coordinator.

    govgw conflicts report [--attribute A] [--json | --csv]              (administrators)
    govgw conflicts report --data-dir DIR [--attribute A] [--json | --csv]   (offline)

Through the gateway the call is made as the caller whose key is given
(--api-key or GOVGW_API_KEY): authenticated, decided by policy (kind admin)
and audited. With --data-dir the report is read from the pool directly by
whoever holds the machine and its key ring, like `govgw audit verify`, and
recorded in the administrators' audit chain. Values are masked either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import csv_text

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

CSV_COLUMNS = (
    "subject_hash",
    "subject_masked",
    "subject_kind",
    "attribute",
    "provider",
    "dataset",
    "field",
    "masked_value",
    "value_group",
    "dataset_version",
    "imported_at",
)


def _from_proto(c: Any) -> dict[str, Any]:
    return {
        "subject_hash": c.subject_hash,
        "subject_masked": c.subject_masked,
        "subject_kind": c.subject_kind,
        "attribute": c.attribute,
        "values": [
            {
                "provider": v.provider,
                "dataset": v.dataset,
                "field": v.field,
                "masked_value": v.masked_value,
                "value_group": v.value_group,
                "dataset_version": v.dataset_version,
                "imported_at": (
                    v.imported_at.strftime("%Y-%m-%dT%H:%M:%SZ") if v.imported_at else ""
                ),
            }
            for v in c.values
        ],
    }


def to_csv(conflicts: list[dict[str, Any]]) -> str:
    """One line per value held: a conflict spans as many lines as providers' values."""
    return csv_text(
        CSV_COLUMNS,
        ([{**c, **v}[col] for col in CSV_COLUMNS] for c in conflicts for v in c["values"]),
    )


def _human(found: list[dict[str, Any]], h: CliHelpers) -> str:
    rows = [["subject", "attribute", "provider", "dataset.field", "value", "group", "imported"]]
    for c in found:
        for i, v in enumerate(c["values"]):
            rows.append(
                [
                    c["subject_masked"] if i == 0 else "",
                    c["attribute"] if i == 0 else "",
                    v["provider"],
                    f"{v['dataset']}.{v['field']}",
                    v["masked_value"] or "-",
                    v["value_group"],
                    v["imported_at"] or "-",
                ]
            )
    return f"{len(found)} conflict(s)" + ("\n" + h.table(rows) if found else "")


def register(sub: Any, h: CliHelpers) -> None:
    group = sub.add_parser(
        "conflicts", help="values providers hold differently (R16), for the coordinator"
    ).add_subparsers(dest="sub", required=True)

    def report(args: argparse.Namespace) -> int:
        if args.data_dir is None:
            return h.remote(
                args,
                lambda gw: [
                    _from_proto(c) for c in gw.conflicts_report(attribute=args.attribute or "")
                ],
                lambda found: _human(found, h),
                doc=lambda found: {"count": len(found), "conflicts": found},
                csv=to_csv,
            )
        from gateway.admin import conflicts_report
        from gateway.errors import GovgwError

        try:
            found = conflicts_report(args.data_dir, args.attribute or "")
        except GovgwError as e:
            return h.fail(
                args,
                {
                    "code": e.code.name,
                    "reason": e.reason,
                    "message": e.message,
                    "fields": [v.field for v in e.violations],
                },
                f"{e.code.name} {e.reason}: {e.message}",
            )
        if args.csv:
            print(to_csv(found), end="")
            return 0
        h.emit(args, {"count": len(found), "conflicts": found}, lambda: _human(found, h))
        return 0

    sp = h.cmd(group, "report", report, "list conflicting values (administrators)")
    sp.add_argument(
        "--attribute", help="only this attribute concept (person.name, person.birth_date, ...)"
    )
    sp.add_argument("--csv", action="store_true", help="print CSV (one line per value held)")
    sp.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="read the pool in this data directory directly (offline, on the machine)",
    )
