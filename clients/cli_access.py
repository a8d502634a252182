"""`govgw access ...`: applications for conditional access and their grants (R3, R5, R6).

    govgw access apply --dataset D --fields a,b --purpose P --scenario S --days N
                       [--use research --public-interest] [--use commercial --authorization REF]
                       [--accept-commitment --accept-agreement]      (open applications)
    govgw access list [--status pending] [--dataset D] [--overdue]
    govgw access history APPLICATION_ID
    govgw access decide APPLICATION_ID --approve [--fields a] | --deny --reason R --legal-basis B
    govgw access suspend|reinstate|revoke GRANT_ID --reason R
    govgw access sweep                                               (administrators)
    govgw access usage --dataset D [--since T] [--until T] [--csv]   (providers, administrators)
    govgw access deadlines [--overdue] [--dataset D] [--csv]          (providers, administrators)

Every verb is a call to AccessService as the caller whose key is given
(--api-key or GOVGW_API_KEY): authenticated, decided and audited.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from clients.cli_common import as_json, when
from clients.cli_common import name as enum_name

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

USES = ("duty", "public_service", "innovation", "research", "commercial")


def _fields(text: str) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    if text.endswith("d") and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(days=int(text[:-1]))
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("since/until: give a time zone, e.g. 2026-11-01T00:00:00+08:00")
    return moment


def _rows(apps: list[Any]) -> list[list[str]]:
    rows = [["id", "kind", "applicant", "dataset", "fields", "status", "due", "overdue", "grant"]]
    for a in apps:
        rows.append(
            [
                a.id,
                a.kind,
                a.applicant,
                a.dataset,
                ",".join(a.fields),
                a.status,
                a.due_date,
                "OVERDUE" if a.overdue else "",
                a.grant_id,
            ]
        )
    return rows


def _history_rows(app: Any) -> list[list[str]]:
    rows = [["at", "actor", "event", "grant", "reason"]]
    rows += [[when(e.at), e.actor, e.event, e.grant_id, e.reason] for e in app.history]
    return rows


def _decided(r: Any) -> str:
    app = r.application
    grant = f"; grant {app.grant_id} fields {','.join(r.grant.fields)}" if r.grant else ""
    return f"application {app.id} {app.status}" + grant


def register(sub: Any, h: CliHelpers) -> None:
    access = sub.add_parser(
        "access", help="applications (申请) and grants (授权) for conditional access"
    ).add_subparsers(dest="sub", required=True)

    sp = h.verb(
        access,
        "apply",
        "apply for conditional share or open access",
        lambda gw, a: gw.apply(
            a.dataset,
            _fields(a.fields),
            purpose=a.purpose,
            scenario=a.scenario,
            duration_days=a.days,
            use=a.use or "",
            public_interest=a.public_interest,
            competitive_authorization=a.authorization or "",
            security_commitment_accepted=a.accept_commitment,
            use_agreement_accepted=a.accept_agreement,
        ),
        lambda app: (
            f"application {app.id} ({app.kind}) submitted; the provider "
            f"answers by {app.due_date} ({app.working_days} working days, {app.jurisdiction})"
        ),
    )
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--fields", required=True, help="comma-separated field names")
    sp.add_argument("--purpose", required=True, help="the duty or use the data serves")
    sp.add_argument("--scenario", required=True, help="where and how the data is used")
    sp.add_argument("--days", type=int, required=True, help="requested duration in days")
    sp.add_argument("--use", choices=USES, help="default: duty (agencies)")
    sp.add_argument("--public-interest", action="store_true", help="research for public interest")
    sp.add_argument("--authorization", help="reference of the competitive authorization")
    sp.add_argument(
        "--accept-commitment", action="store_true", help="accept the security commitment"
    )
    sp.add_argument("--accept-agreement", action="store_true", help="accept the use agreement")

    sp = h.verb(
        access,
        "list",
        "applications you made or must answer; overdue flagged",
        lambda gw, a: gw.list_applications(
            status=a.status or "", dataset=a.dataset or "", overdue_only=a.overdue
        ),
        lambda apps: h.table(_rows(apps)),
    )
    sp.add_argument("--status", choices=("pending", "approved", "denied"))
    sp.add_argument("--dataset")
    sp.add_argument("--overdue", action="store_true", help="only those past their deadline")

    sp = h.verb(
        access,
        "history",
        "one application and its transitions",
        lambda gw, a: gw.get_application(a.application_id),
        lambda app: h.table(_history_rows(app)),
    )
    sp.add_argument("application_id")

    sp = h.verb(
        access,
        "decide",
        "approve or deny an application (the provider)",
        lambda gw, a: gw.decide_application(
            a.application_id,
            approve=a.approve,
            fields=_fields(a.fields),
            reason=a.reason or "",
            legal_basis=a.legal_basis or "",
        ),
        _decided,
    )
    sp.add_argument("application_id")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--approve", action="store_true")
    which.add_argument("--deny", action="store_true")
    sp.add_argument("--fields", help="approve: only these of the requested fields")
    sp.add_argument("--reason", help="required to deny")
    sp.add_argument("--legal-basis", help="required to deny: the article relied on")

    for name, status, what in (
        ("suspend", "suspended", "suspend a grant for misuse (the provider)"),
        ("reinstate", "active", "reinstate a suspended grant (the provider)"),
        ("revoke", "revoked", "end a grant (the provider)"),
    ):
        sp = h.verb(
            access,
            name,
            what,
            lambda gw, a, status=status: gw.change_grant(a.grant_id, status, reason=a.reason),
            lambda g: f"grant {g.id} {enum_name(g.status)}",
        )
        sp.add_argument("grant_id")
        sp.add_argument("--reason", required=True, help="why, for the audit trail")

    h.verb(
        access,
        "sweep",
        "revoke grants unused for 3 months (administrators)",
        lambda gw, a: gw.sweep_unused_grants(),
        lambda revoked: (
            f"{len(revoked)} grant(s) unused for 3 months revoked"
            + "".join(f"\n  {g.id} {g.caller} {g.dataset}" for g in revoked)
        ),
    )

    def usage(args: argparse.Namespace) -> int:
        from gateway.access.usage import COLUMNS, to_csv

        def human(r: Any) -> str:
            columns = (*COLUMNS, "calls", "subjects")
            rows = [[str(row.get(c, "")) for c in columns] for row in as_json(r)["rows"]]
            return f"{r.dataset}: {r.calls} call(s)\n" + h.table([list(columns), *rows])

        return h.remote(
            args,
            lambda gw: gw.usage_report(
                args.dataset, since=_when(args.since), until=_when(args.until)
            ),
            human,
            csv=lambda r: to_csv(as_json(r)["rows"]),
        )

    sp = h.cmd(access, "usage", usage, "a dataset's usage report (its provider, administrators)")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--since", help="RFC 3339 time or Nd (days ago); default 30 days ago")
    sp.add_argument("--until", help="RFC 3339 time or Nd (days ago); default now")
    sp.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    from clients.cli_opening import add_deadlines  # here: cli_opening imports this module

    add_deadlines(access, h)  # govgw access deadlines (R3)
