"""`govgw callers ...`: the caller registry, and suspension (R10).

Suspend and reinstate act on the data directory's registry and, when a Redis
URL is configured (--redis-url or GOVGW_REDIS_URL), on the shared state every
gateway process checks. Each transition is audited in audit/audit-admin.log.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.callers import KINDS

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def register(sub: Any, h: CliHelpers) -> None:
    callers = sub.add_parser("callers", help="the caller registry").add_subparsers(
        dest="sub", required=True
    )

    def add(args: argparse.Namespace) -> int:
        from gateway.admin import callers_add

        doc = callers_add(
            args.data_dir,
            args.id,
            args.kind,
            args.department,
            args.region,
            cert_out=args.cert_out,
            provider_ids=args.provider_id,
        )
        providers = ", ".join(doc["caller"]["provider_ids"])
        h.emit(
            args,
            doc,
            lambda: (
                f"caller {doc['caller']['id']} ({doc['caller']['kind']}) added\n"
                + (f"provider of: {providers}\n" if providers else "")
                + f"API key (shown once): {doc['api_key']}"
                + (f"\nclient certificate: {doc['certificate']}" if doc.get("certificate") else "")
            ),
        )
        return 0

    def list_(args: argparse.Namespace) -> int:
        from gateway.admin import callers_list

        found = callers_list(args.data_dir, args.redis_url)
        if args.suspended:
            found = [c for c in found if c["status"] == "suspended" or c["suspended_operators"]]
        rows = [["id", "kind", "department", "region", "status", "provider ids"]]
        for c in found:
            rows.append([c["id"], c["kind"], c["department"], c["region"], c["status"],
                         ",".join(c.get("provider_ids", ())) or "-"])  # fmt: skip
            rows += [
                [f"  operator {o['operator']}", "", "", "", f"suspended ({o['reason']})", ""]
                for o in c["suspended_operators"]
            ]
        h.emit(args, found, lambda: h.table(rows))
        return 0

    def bind(args: argparse.Namespace) -> int:
        from gateway.admin import callers_bind

        c = callers_bind(args.data_dir, args.id, args.provider_id)
        h.emit(
            args,
            c,
            lambda: f"caller {c['id']} provides: {', '.join(c['provider_ids']) or 'nothing'}",
        )
        return 0

    def transition(suspend: bool) -> Any:
        def run(args: argparse.Namespace) -> int:
            from gateway import admin

            change = admin.callers_suspend if suspend else admin.callers_reinstate
            c = change(args.data_dir, args.id, args.reason, args.redis_url, args.operator)
            who = (
                f"operator {args.operator} of caller {args.id}"
                if args.operator
                else f"caller {args.id}"
            )
            h.emit(args, c, lambda: f"{who} {'suspended' if suspend else 'reinstated'}")
            return 0

        return run

    def state(sp: Any) -> None:
        h.data_dir(sp)
        sp.add_argument("--redis-url", default=None, help="shared state (or GOVGW_REDIS_URL)")

    sp = h.cmd(callers, "add", add, "register a caller and print its API key")
    h.data_dir(sp)
    sp.add_argument("--id", required=True)
    sp.add_argument("--kind", required=True, choices=list(KINDS))
    sp.add_argument("--department", required=True)
    sp.add_argument("--region", required=True, help="6-digit administrative division code")
    sp.add_argument("--cert-out", type=Path, help="also issue an mTLS client certificate here")
    provider_help = (
        "the catalog provider id this agency acts for (decides its applications, reads its"
        " usage reports); repeat for several"
    )
    sp.add_argument("--provider-id", action="append", default=[], help=provider_help)
    sp = h.cmd(callers, "bind", bind, "bind a caller to the providers it represents")
    h.data_dir(sp)
    sp.add_argument("id")
    sp.add_argument(
        "--provider-id", action="append", default=[], help=provider_help + "; none: unbind"
    )
    sp = h.cmd(callers, "list", list_, "list callers (and suspensions)")
    state(sp)
    sp.add_argument("--suspended", action="store_true", help="only suspended callers")
    for name, fn, what in (
        ("suspend", transition(True), "suspend a caller's access at once (R10)"),
        ("reinstate", transition(False), "lift a suspension (administrators only)"),
    ):
        sp = h.cmd(callers, name, fn, what)
        state(sp)
        sp.add_argument("id")
        sp.add_argument("--reason", required=True, help="why, for the audit trail")
        sp.add_argument(
            "--operator", default="", help="one operator (a hall's clerk) of the caller only"
        )
