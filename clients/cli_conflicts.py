"""`govgw conflicts ...`: values two providers hold differently (R16), for the coordinator.

    govgw conflicts report [--attribute A] [--json | --csv]              (administrators)
    govgw conflicts report --data-dir DIR [--attribute A] [--json | --csv]   (offline)

Through the gateway the call is made as the caller whose key is given
(--api-key or GOVGW_API_KEY): authenticated, decided by policy (kind admin)
and audited. With --data-dir the report is read from the pool directly by
whoever holds the machine and its key ring, like `govgw audit verify`, and
recorded in the administrators' audit chain. Values are masked either way;
each pair of values says how they differ without showing them (a verdict:
format only / small difference / different, the steps, the edit distance,
the lengths and, from 4 characters, the positions; gateway/pool/conflicts/compare.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import csv_text
from clients.sdk.types import ConflictVerdict

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

CSV_COLUMNS = (
    "subject_hash",
    "subject_masked",
    "subject_kind",
    "attribute",
    "value",
    "provider",
    "dataset",
    "field",
    "masked_value",
    "value_group",
    "dataset_version",
    "imported_at",
    "imported_last",
    "written_at_import",
    "length",
    "compared_with",
    "verdict",
    "equal_after",
    "edit_distance",
    "positions",
    "compared_positions",
    "positions_withheld",
)


def _verdict(verdict: ConflictVerdict) -> str:
    """ConflictVerdict.SMALL_DIFFERENCE -> "small difference" (the offline report's words)."""
    return verdict.name.lower().replace("_", " ")


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
                "imported_last": v.imported_last,
                "written_at_import": v.written_at_import,
            }
            for v in c.values
        ],
        "differences": [
            {
                "first_value": d.first_value,
                "second_value": d.second_value,
                "verdict": _verdict(d.verdict),
                "equal_after": list(d.equal_after),
                "edit_distance": d.edit_distance,
                "first_length": d.first_length,
                "second_length": d.second_length,
                "first_positions": list(d.first_positions),
                "second_positions": list(d.second_positions),
                "positions_withheld": d.positions_withheld,
            }
            for d in c.differences
        ],
    }


def _csv_rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    """A conflict's lines: one per value, each with its pairs with the values before it.

    Several pairs on one line (three values or more) are joined by ";"; the
    steps of one pair by "+", its positions by blanks.
    """
    out = []
    for n, v in enumerate(c["values"], start=1):
        pairs = [d for d in c["differences"] if d["second_value"] == n]
        lengths = [d["second_length"] for d in pairs] + [
            d["first_length"] for d in c["differences"] if d["first_value"] == n
        ]
        out.append(
            {
                **c,
                **v,
                "value": n,
                "length": lengths[0] if lengths else "",
                "compared_with": ";".join(str(d["first_value"]) for d in pairs),
                "verdict": ";".join(d["verdict"] for d in pairs),
                "equal_after": ";".join("+".join(d["equal_after"]) for d in pairs),
                "edit_distance": ";".join(str(d["edit_distance"]) for d in pairs),
                "positions": ";".join(_blank_list(d["second_positions"]) for d in pairs),
                "compared_positions": ";".join(_blank_list(d["first_positions"]) for d in pairs),
                "positions_withheld": ";".join(str(d["positions_withheld"]) for d in pairs),
            }
        )
    return out


def _blank_list(positions: list[int]) -> str:
    return " ".join(map(str, positions))


def to_csv(conflicts: list[dict[str, Any]]) -> str:
    """One line per value held: a conflict spans as many lines as providers' values."""
    return csv_text(
        CSV_COLUMNS,
        ([row[col] for col in CSV_COLUMNS] for c in conflicts for row in _csv_rows(c)),
    )


def describe(d: dict[str, Any]) -> str:
    """A pair for people: '1 vs 2: small difference: distance 1, differs at 3, 5 of 6'."""
    head = f"{d['first_value']} vs {d['second_value']}: {d['verdict']}"
    if d["equal_after"]:
        head += f" ({', '.join(d['equal_after'])})"
    if not d["edit_distance"]:
        return head
    a, b = d["first_positions"], d["second_positions"]
    if d["positions_withheld"]:
        where = "positions withheld (a value under 4 characters)"
    elif a == b and d["first_length"] == d["second_length"]:
        where = f"differs at {_comma_list(a)} of {d['first_length']}"
    else:
        where = (
            f"differs at {_comma_list(a) or '-'} of {d['first_length']}"
            f" / {_comma_list(b) or '-'} of {d['second_length']}"
        )
    return f"{head}: distance {d['edit_distance']}, {where}"


def _comma_list(positions: list[int]) -> str:
    return ", ".join(map(str, positions))


def _imported(v: dict[str, Any]) -> str:
    text = v["imported_at"] or "-"
    if v["written_at_import"]:
        text += " (whole dataset)"
    return text + ("  updated last" if v["imported_last"] else "")


def _human(found: list[dict[str, Any]], h: CliHelpers) -> str:
    blocks = [f"{len(found)} conflict(s)"]
    for c in found:
        rows = [["#", "provider", "dataset.field", "value", "group", "imported"]]
        rows += [
            [
                str(n),
                v["provider"],
                f"{v['dataset']}.{v['field']}",
                v["masked_value"] or "-",
                v["value_group"],
                _imported(v),
            ]
            for n, v in enumerate(c["values"], start=1)
        ]
        lines = [f"{c['subject_masked']}  {c['attribute']}", h.table(rows)]
        lines += [describe(d) for d in c["differences"]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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
    sp.add_argument(
        "--database-url",
        help="with --data-dir: the pool on PostgreSQL (or GOVGW_DATABASE_URL); see docs/storage.md",
    )
