"""`govgw emergency ...`: emergency mode (R11), time-boxed wider access and its sealing.

    govgw emergency declare --title T --legal-basis B --purpose P --ends-at TIME|Nd|Nh
                            --scope DATASET:field,field [--scope ...] --agency ID [--agency ...]
    govgw emergency end EMERGENCY_ID --reason R
    govgw emergency list [--status active|ended]
    govgw emergency show EMERGENCY_ID
    govgw emergency sealing EMERGENCY_ID [--csv]
    govgw emergency seal EMERGENCY_ID

Administrators declare, end and seal, and read sealing lists; a designated
agency lists and shows the emergencies naming it. Every verb is a call to
EmergencyService as the caller whose key is given: decided and audited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from clients.cli_common import as_json, name, when

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def parse_scope(items: list[str]) -> dict[str, list[str]]:
    """DATASET:field,field items -> {dataset: [fields]} (the server checks the names)."""
    scope: dict[str, list[str]] = {}
    for item in items:
        dataset, sep, fields = item.partition(":")
        if not sep or not dataset.strip():
            raise ValueError(f"--scope: expected DATASET:field,field, got {item!r}")
        scope.setdefault(dataset.strip(), []).extend(
            f.strip() for f in fields.split(",") if f.strip()
        )
    return scope


def parse_end(text: str) -> datetime:
    """An RFC 3339 time with a zone, or a duration from now: 7d, 36h."""
    if text[:-1].isdigit() and text[-1:] in ("d", "h"):
        unit = "days" if text.endswith("d") else "hours"
        return datetime.now(UTC) + timedelta(**{unit: int(text[:-1])})
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("--ends-at: give a time zone, e.g. 2026-12-01T00:00:00+08:00")
    return moment


_time = when


def _rows(ems: list[Any]) -> list[list[str]]:
    rows = [["id", "status", "title", "ends_at", "agencies", "datasets", "sealed"]]
    for e in ems:
        rows.append(
            [
                e.id,
                name(e.status),
                e.title,
                _time(e.ends_at),
                ",".join(e.agencies),
                ",".join(s.dataset for s in e.scope),
                _time(e.sealed_at),
            ]
        )
    return rows


def _show(e: Any) -> str:
    lines = [
        f"emergency {e.id} ({name(e.status)}): {e.title}",
        f"legal basis  {e.legal_basis}",
        f"purpose      {e.purpose}",
        f"declared     {_time(e.declared_at)} by {e.declared_by}",
        f"ends at      {_time(e.ends_at)}",
        f"agencies     {', '.join(e.agencies)}",
    ]
    lines += [f"scope        {s.dataset}: {', '.join(s.fields)}" for s in e.scope]
    if e.ended_by:
        lines.append(f"ended        {_time(e.ended_at)} by {e.ended_by}: {e.end_reason}")
    if e.sealed_by:
        lines.append(
            f"sealed       {_time(e.sealed_at)} by {e.sealed_by} "
            f"({e.sealed_calls} call(s), sha256 {e.sealing_digest[:16]}…)"
        )
    lines.append("history")
    lines += [f"  {_time(x.at)}  {x.actor}  {x.event}  {x.reason}".rstrip() for x in e.history]
    return "\n".join(lines)


def _sealing_csv(r: Any) -> str:
    from gateway.access.emergency import to_csv

    return to_csv(as_json(r)["entries"])


def _sealing_human(r: Any, table: Any) -> str:
    from gateway.access.emergency import SEALING_COLUMNS

    rows = [[*SEALING_COLUMNS[:-1], "subjects"]] + [
        [str(e.get(c, "")) for c in SEALING_COLUMNS[:-1]] + [str(len(e["subject_hashes"]))]
        for e in as_json(r)["entries"]
    ]
    return (
        f"emergency {r.emergency.id}: {r.calls} call(s), "
        f"{r.subject_records} subject record(s)\n" + table(rows)
    )


def register(sub: Any, h: CliHelpers) -> None:
    em = sub.add_parser(
        "emergency", help="emergency mode (应急): time-boxed wider access, then sealing"
    ).add_subparsers(dest="sub", required=True)

    sp = h.verb(
        em,
        "declare",
        "declare an emergency (administrators)",
        lambda gw, a: gw.declare_emergency(
            title=a.title,
            legal_basis=a.legal_basis,
            scope=parse_scope(a.scope),
            agencies=a.agency,
            purpose=a.purpose,
            ends_at=parse_end(a.ends_at),
        ),
        lambda e: (
            f"emergency {e.id} declared until {_time(e.ends_at)}; "
            f"{len(e.grant_ids)} grant(s) for {', '.join(e.agencies)}"
        ),
    )
    sp.add_argument("--title", required=True)
    sp.add_argument("--legal-basis", required=True, help="the law or decision relied on")
    sp.add_argument("--purpose", required=True, help="the only purpose its grants serve")
    sp.add_argument(
        "--ends-at", required=True, help="RFC 3339 time or 7d / 36h from now (at most 30 days)"
    )
    sp.add_argument(
        "--scope", action="append", required=True, help="DATASET:field,field (repeatable)"
    )
    sp.add_argument(
        "--agency", action="append", required=True, help="designated agency caller id (repeatable)"
    )

    sp = h.verb(
        em,
        "end",
        "end an emergency now; its grants are revoked (administrators)",
        lambda gw, a: gw.end_emergency(a.emergency_id, reason=a.reason),
        lambda r: f"emergency {r.emergency.id} ended; {len(r.revoked_grant_ids)} grant(s) revoked",
    )
    sp.add_argument("emergency_id")
    sp.add_argument("--reason", required=True, help="why, for the audit trail")

    sp = h.verb(
        em,
        "list",
        "emergencies you may see",
        lambda gw, a: gw.list_emergencies(status=a.status or ""),
        lambda ems: h.table(_rows(ems)),
    )
    sp.add_argument("--status", choices=("active", "ended"))

    sp = h.verb(
        em,
        "show",
        "one emergency and its history",
        lambda gw, a: gw.get_emergency(a.emergency_id),
        _show,
    )
    sp.add_argument("emergency_id")

    sp = h.verb(
        em,
        "sealing",
        "every call made under an emergency (administrators)",
        lambda gw, a: gw.sealing_list(a.emergency_id),
        lambda r: _sealing_human(r, h.table),
        csv=_sealing_csv,
    )
    sp.add_argument("emergency_id")
    sp.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    sp = h.verb(
        em,
        "seal",
        "record that the sealing list was sealed (administrators)",
        lambda gw, a: gw.seal_emergency(a.emergency_id),
        lambda e: f"emergency {e.id} sealed by {e.sealed_by}: {e.sealed_calls} call(s)",
    )
    sp.add_argument("emergency_id")
