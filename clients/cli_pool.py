"""`govgw pool|grants|audit ...`: the data directory on this machine, no server.

govgw pool import --data-dir D --dataset DS FILE [--format jsonl|csv] [--replace] [--strict]
govgw pool seed|stats --data-dir D
govgw grants add|list|revoke --data-dir D ...
govgw audit verify|reindex|index-status --data-dir D
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import emit, table
from clients.cli_lookup import fields_arg
from clients.progress import Progress

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def cmd_pool_import(args: argparse.Namespace) -> int:
    from gateway.admin import pool_import

    started = time.monotonic()
    with Progress(
        f"pool import {args.dataset}", total=_lines(args.file), unit="rows", quiet=args.json
    ) as progress:
        report = pool_import(
            args.data_dir,
            args.dataset,
            args.file,
            fmt=args.format,
            replace_all=args.replace,
            strict=args.strict,
            progress=progress,
        )
    doc = report.to_json()
    # The whole command's rate (reading, validating, sealing, writing), for sizing.
    rate = doc["accepted"] / max(time.monotonic() - started, 1e-9)
    emit(
        args,
        doc,
        lambda: (
            f"{args.dataset}: {doc['accepted']} accepted, {len(doc['rejected'])} rejected, version {doc['version'] or '-'}"
            f" ({rate:,.0f} rows/s)"
            + "".join(
                f"\n  line {r['line']}: {r['field']}: {r['reason']}" for r in doc["rejected"][:50]
            )
        ),
    )
    return 0 if not doc["rejected"] else 1


def _lines(path: Path) -> int | None:
    """Lines of the file (an upper bound of its rows: the bar's total), read fast."""
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None  # the import itself says what is wrong with the file


def _audit_progress(args: argparse.Namespace, label: str) -> Progress:
    from gateway.admin import audit_bytes

    return Progress(label, total=audit_bytes(args.data_dir), unit="bytes", quiet=args.json)


def cmd_pool_seed(args: argparse.Namespace) -> int:
    from gateway.admin import pool_seed

    demo = pool_seed(args.data_dir, persons=args.persons, entities=args.entities, seed=args.seed)
    emit(args, demo, lambda: json.dumps(demo, ensure_ascii=False, indent=2))
    return 0


def cmd_pool_stats(args: argparse.Namespace) -> int:
    from gateway.admin import pool_stats

    stats = pool_stats(args.data_dir)
    emit(
        args,
        stats,
        lambda: table(
            [["dataset", "rows", "version"]]
            + [[k, str(v["rows"]), v["version"] or "-"] for k, v in stats.items()]
        ),
    )
    return 0


def cmd_grants_add(args: argparse.Namespace) -> int:
    from gateway.admin import grants_add

    g = grants_add(
        args.data_dir,
        args.caller,
        args.dataset,
        fields_arg(args.fields),
        args.purpose,
        args.expires,
    )
    emit(args, g, lambda: f"grant {g['id']} added, expires {g['expires_at']}")
    return 0


def cmd_grants_list(args: argparse.Namespace) -> int:
    from gateway.admin import grants_list

    grants = grants_list(args.data_dir)
    emit(
        args,
        grants,
        lambda: table(
            [["id", "caller", "dataset", "fields", "purpose", "expires", "status"]]
            + [
                [
                    g["id"],
                    g["caller"],
                    g["dataset"],
                    ",".join(g["fields"]),
                    g["purpose"],
                    g["expires_at"],
                    g["status"],
                ]
                for g in grants
            ]
        ),
    )
    return 0


def cmd_grants_revoke(args: argparse.Namespace) -> int:
    from gateway.admin import grants_revoke

    g = grants_revoke(args.data_dir, args.grant_id, args.reason)
    emit(args, g, lambda: f"grant {args.grant_id} revoked")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.admin import audit_verify

    with _audit_progress(args, "audit verify") as progress:
        report = audit_verify(args.data_dir, progress)
    ok = report["ok"]
    if "nodes" in report:  # a shared database: every node's chains
        emit(args, report, lambda: _nodes_lines(report))
        return 0 if ok else 1
    emit(
        args,
        report,
        lambda: (
            f"audit chain OK: {report['records']} records"
            + (
                " (an incomplete last record from a crash was ignored)"
                if report["torn_tail"]
                else ""
            )
            if ok
            else f"audit chain BROKEN at record {report['first_broken_seq']} (line {report['first_broken_line']}): {report['problem']}"
        ),
    )
    return 0 if ok else 1


def _nodes_lines(report: dict[str, Any]) -> str:
    """One line per chain of every node, then the verdict."""
    lines = []
    for n in report["nodes"]:
        where = "this node" if n["this"] else f"host {n['host']}, {n['audit_dir']}"
        lines.append(f"node {n['node']} ({where})")
        for f in (f for f in report["files"] if f["node"] == n["node"]):
            if not f["ok"]:
                state = f"BROKEN at seq {f['first_broken_seq']}: {f['problem']}"
            elif not f["reachable"]:
                state = (
                    f"{f['problem']}: the index's head seq {f['head_seq']} is consistent,"
                    " the chain itself was not read"
                )
            else:
                state = f"OK: {f['records']} records, head seq {f['head_seq']}"
            lines.append(f"  {f['file']}: {state}")
    verdict = "audit chains OK" if report["ok"] else f"audit chain BROKEN: {report['problem']}"
    return "\n".join([*lines, verdict])


def _index_lines(doc: dict[str, Any]) -> str:
    rows = [["chain", "records", "seq", "indexed", "pending", "state"]]
    for f in doc["files"]:
        state = f"BROKEN at {f['broken']}" if f["broken"] else "ok"
        if f["reindexed"]:
            state += f" (re-indexed {f['reindexed']}x: the file was replaced or truncated)"
        rows.append(
            [Path(f["path"]).name, str(f["records"]), str(f["seq"]), f"{f['indexed_bytes']} B",
             f"{f['pending_bytes']} B", state]
        )  # fmt: skip
    head = f"audit index {doc['index']}: {doc['records']} records, {doc['size_bytes']} bytes"
    if doc.get("node"):  # the shared index: this node's chains in it
        head = f"audit index {doc['index']}, node {doc['node']}: {doc['records']} records"
    if not doc["exists"]:
        head = f"audit index {doc['index']}: not built yet (the first reader builds it)"
    return head + ("\n" + table(rows) if doc["files"] else "\nno audit chains")


def cmd_audit_reindex(args: argparse.Namespace) -> int:
    from gateway.admin import audit_reindex

    with _audit_progress(args, "audit reindex") as progress:
        doc = audit_reindex(args.data_dir, progress)
    emit(
        args,
        doc,
        lambda: (
            f"indexed {doc['indexed_records']} records in {doc['seconds']} s\n" + _index_lines(doc)
        ),
    )
    return 0 if doc["ok"] else 1


def cmd_audit_index_status(args: argparse.Namespace) -> int:
    from gateway.admin import audit_index_status

    doc = audit_index_status(args.data_dir)
    emit(args, doc, lambda: _index_lines(doc))
    return 0 if doc["ok"] else 1


def register(sub: Any, h: CliHelpers) -> None:
    pool = sub.add_parser("pool", help="the data pool").add_subparsers(dest="sub", required=True)
    sp = h.cmd(pool, "import", cmd_pool_import, "import (归集) a JSONL or CSV file into a dataset")
    h.data_dir(sp)
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--format", choices=["jsonl", "csv"])
    sp.add_argument("--replace", action="store_true", help="replace the whole dataset")
    sp.add_argument("--strict", action="store_true", help="write nothing if any row is rejected")
    sp.add_argument("file", type=Path)
    sp = h.cmd(pool, "seed", cmd_pool_seed, "fill the pool with synthetic demo data")
    h.data_dir(sp)
    sp.add_argument("--persons", type=int, default=2000)
    sp.add_argument("--entities", type=int, default=300)
    sp.add_argument("--seed", type=int, default=20261121)
    h.data_dir(h.cmd(pool, "stats", cmd_pool_stats, "rows and version per dataset"))

    grants = sub.add_parser("grants", help="conditional-access grants").add_subparsers(
        dest="sub", required=True
    )
    sp = h.cmd(grants, "add", cmd_grants_add, "grant a caller conditional access")
    h.data_dir(sp)
    sp.add_argument("--caller", required=True)
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--fields", required=True, help="comma-separated")
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--expires", required=True, help="RFC 3339 time or a duration like 90d")
    h.data_dir(h.cmd(grants, "list", cmd_grants_list, "list grants"))
    sp = h.cmd(grants, "revoke", cmd_grants_revoke, "revoke a grant")
    h.data_dir(sp)
    sp.add_argument("grant_id")
    sp.add_argument("--reason", required=True)

    audit = sub.add_parser("audit", help="the audit trail (操作留痕)").add_subparsers(
        dest="sub", required=True
    )
    h.data_dir(h.cmd(audit, "verify", cmd_audit_verify, "check the hash chain"))
    h.data_dir(
        h.cmd(audit, "reindex", cmd_audit_reindex, "rebuild the audit index from the chains")
    )
    h.data_dir(h.cmd(audit, "index-status", cmd_audit_index_status, "how far the index is built"))
