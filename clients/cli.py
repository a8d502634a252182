"""The `govgw` command: serve, administer the data directory, and call the gateway.

Calls print human output by default and JSON with `--json`. Exit status:
0 done, 1 the call or check failed (the error is printed, with its reason
and the fields at fault), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clients import (
    cli_access,
    cli_calendar,
    cli_callers,
    cli_conflicts,
    cli_emergency,
    cli_keys,
    cli_mask,
    cli_policy,
    cli_subjects,
)
from clients.cli_common import CliHelpers, emit, fail, remote, table
from clients.receipts import (
    ReceiptInvalid,
    SignedReceipt,
    load_public_keys,
    open_commitment,
    verify_receipt,
)
from clients.sdk import GovgwClient, disputed_notice
from web import cli as cli_web

DEFAULT_TARGET = "127.0.0.1:50051"


# -- client commands ---------------------------------------------------------
def write_receipt(path: Path | None, receipt: SignedReceipt | None) -> None:
    if path is not None and receipt is not None:
        path.write_text(json.dumps(receipt.to_json(), indent=2))


def _with_receipt(args: argparse.Namespace, result: Any) -> Any:
    """A verification's answer, its receipt saved first where --receipt-out says."""
    write_receipt(args.receipt_out, result.receipt)
    return result


def cmd_verify_identity(args: argparse.Namespace) -> int:
    return remote(
        args,
        lambda gw: _with_receipt(
            args, gw.verify_identity(args.name, args.id_number, purpose=args.purpose)
        ),
        lambda r: (
            f"{'MATCH 一致' if r.matched else 'NO_MATCH 不一致'}\n"
            f"{disputed_notice(r.disputed)}"
            f"receipt  {r.receipt.receipt_id if r.receipt else '-'} (signature verified)\n"
            f"request  {r.request_id}  policy {r.policy_version}"
        ),
    )


def parse_predicate(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition(":")
    return name.strip(), [a for a in rest.split(",") if a] if rest else []


def cmd_verify_attributes(args: argparse.Namespace) -> int:
    predicates = [parse_predicate(p) for p in args.predicate]
    return remote(
        args,
        lambda gw: _with_receipt(
            args,
            gw.verify_attributes(args.subject, predicates, purpose=args.purpose, kind=args.kind),
        ),
        lambda r: (
            table([["predicate", "answer"]] + [[k, str(v).lower()] for k, v in r.results.items()])
            + f"\n{disputed_notice(r.disputed)}receipt  {r.receipt.receipt_id if r.receipt else '-'}\nrequest  {r.request_id}"
        ),
    )


def _fields(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


def _lookup_human(result: Any) -> str:
    lines = []
    for i, rec in enumerate(result.records):
        if len(result.records) > 1:
            lines.append(f"record {i + 1}")
        lines.append(
            table(
                [["field", "value", "treatment"]]
                + [[k, v.value, v.treatment] for k, v in rec.items()]
            )
        )
    if result.disputed:
        lines.append(disputed_notice(result.disputed).rstrip("\n"))
    p = result.provenance
    lines.append(
        f"source {p.source_department} · {p.dataset} {p.dataset_version} · retrieved {p.retrieved_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    return "\n".join(lines)


def cmd_lookup(args: argparse.Namespace) -> int:
    return remote(
        args,
        lambda gw: gw.lookup(
            args.dataset, args.subject, _fields(args.fields), purpose=args.purpose
        ),
        _lookup_human,
    )


def cmd_lookup_batch(args: argparse.Namespace) -> int:
    keys = [k.strip() for k in args.subjects_file.read_text().splitlines() if k.strip()]
    return remote(
        args,
        lambda gw: list(
            gw.batch_lookup(args.dataset, keys, _fields(args.fields), purpose=args.purpose)
        ),
        lambda items: "\n\n".join(
            f"[{i.index}] " + (_lookup_human(i) if i.found else "not found") for i in items
        ),
        doc=lambda items: [dict(i.to_json(), index=i.index) for i in items],
    )


def cmd_catalog_list(args: argparse.Namespace) -> int:
    return remote(
        args,
        lambda gw: gw.list_datasets(),
        lambda ds: (
            (f"policy version {ds[0].policy_version}\n" if ds else "")
            + table(
                [["dataset", "title", "provider", "share", "open", "sensitivity"]]
                + [
                    [
                        d.name,
                        d.title,
                        d.provider,
                        _enum(d, "share_class"),
                        _enum(d, "open_class"),
                        _enum(d, "sensitivity"),
                    ]
                    for d in ds
                ]
            )
        ),
        doc=lambda ds: [_dataset_json(d) for d in ds],
    )


def _enum(msg: Any, name: str) -> str:
    field = msg.DESCRIPTOR.fields_by_name[name]
    value = field.enum_type.values_by_number[getattr(msg, name)].name
    return (
        value.split("_", 2)[-1].lower() if "_CLASS_" in value else value.split("_", 1)[-1].lower()
    )


def cmd_catalog_show(args: argparse.Namespace) -> int:
    return remote(args, lambda gw: gw.get_dataset(args.name), _dataset_human, doc=_dataset_json)


def _dataset_human(d: Any) -> str:
    head = [
        f"{d.name}  {d.title}",
        f"provider {d.provider} · update {d.update_cycle} · version {d.version or '-'}",
        f"share {_enum(d, 'share_class')} · open {_enum(d, 'open_class')} · sensitivity {_enum(d, 'sensitivity')}",
        f"catalog of policy version {d.policy_version or '-'}",
    ]
    if d.class_reason:
        head.append(f"reason {d.class_reason}")
    if d.legal_basis:
        head.append(f"legal basis {d.legal_basis}")
    if d.predicates:
        head.append("predicates " + ", ".join(d.predicates))
    rows = [["field", "title", "type", "sensitivity", "attribute", "share", "open"]] + [
        [
            f.name,
            f.title,
            f.type + (" (from subject key)" if f.derived_from_subject else ""),
            _enum(f, "sensitivity"),
            f.attribute or "-",
            f.share_masking.operator or "-",
            f.open_masking.operator or "-",
        ]
        for f in d.fields
    ]
    return "\n".join(head) + "\n" + table(rows)


def _dataset_json(d: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    # Every field, defaults included: a field with no attribute says so ("") rather
    # than leaving the key out, so scripts can rely on it.
    return MessageToDict(
        d, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def cmd_receipt_keys(args: argparse.Namespace) -> int:
    def call(gw: GovgwClient) -> dict[str, Any]:
        keyset = gw.keyset()
        if args.out:
            args.out.write_text(json.dumps(keyset, indent=2))
        return keyset

    return remote(
        args,
        call,
        lambda keyset: "\n".join(f"{k['kid']}  {k['alg']}  {k['crv']}" for k in keyset["keys"]),
    )


def cmd_receipt_verify(args: argparse.Namespace) -> int:
    doc = json.loads(args.receipt_file.read_text())
    # Accept a receipt file, or the whole `verify ... --json` output that holds one.
    if "receipt" in doc and isinstance(doc["receipt"], dict):
        doc = doc["receipt"]
    try:
        receipt = SignedReceipt.from_json(doc)
        claims = verify_receipt(receipt, load_public_keys(args.key_file))
        opened = _opening(args, receipt)
    except (ReceiptInvalid, KeyError, ValueError) as e:
        return fail(args, {"reason": "RECEIPT_INVALID", "message": str(e)}, f"receipt INVALID: {e}")
    if opened is False:
        message = "the ID number and salt do not open the subject commitment"
        return fail(
            args, {"reason": "OPENING_INVALID", "message": message}, f"opening INVALID: {message}"
        )
    result: dict[str, Any] = {"valid": True, "claims": claims}
    if opened:
        result["opened"] = True
    emit(
        args,
        result,
        lambda: (
            "receipt VALID\n"
            + ("subject commitment OPENS with the given ID number\n" if opened else "")
            + table([[k, str(v)] for k, v in sorted(claims.items())])
        ),
    )
    return 0


def _opening(args: argparse.Namespace, receipt: SignedReceipt) -> bool | None:
    """None without --open; else whether --id-number and --salt (or the receipt
    file's commitment_salt) open the receipt's subject commitment."""
    if not args.open:
        return None
    if not args.id_number:
        raise ValueError("--open needs --id-number")
    salt = args.salt or receipt.salt.hex()
    if not salt:
        raise ValueError("--open needs --salt (the receipt file holds no commitment_salt)")
    return open_commitment(receipt, args.id_number, salt)


# -- data-directory commands -------------------------------------------------
def _serve_config(args: argparse.Namespace):
    from gateway.config import ServeConfig

    return ServeConfig(
        data_dir=args.data_dir,
        listen=args.listen,
        tls=args.tls,
        require_client_cert=args.require_client_cert,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        redis_url=args.redis_url or "",
        jurisdiction=getattr(args, "jurisdiction", "aba"),
        metrics_listen=args.metrics_listen or "",
        log_format=args.log_format,
        **_guard_config(args),
    )


def _guard_config(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.config import load_guard_config

    if not getattr(args, "limits_config", None):
        return {}
    limits, oracle = load_guard_config(args.limits_config)
    return {"limits": limits, "oracle": oracle}


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.admin import init

    info = init(args.data_dir)
    emit(
        args, info, lambda: f"data directory ready: {args.data_dir}\nreceipt keys: {info['keyset']}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.admin import serve, serve_workers

    if args.workers > 1:
        return serve_workers(_serve_config(args), args.workers)
    return serve(_serve_config(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import demo

    return demo(_serve_config(args), persons=args.persons)


def cmd_pool_import(args: argparse.Namespace) -> int:
    from gateway.admin import pool_import

    report = pool_import(
        args.data_dir,
        args.dataset,
        args.file,
        fmt=args.format,
        replace_all=args.replace,
        strict=args.strict,
    )
    doc = report.to_json()
    emit(
        args,
        doc,
        lambda: (
            f"{args.dataset}: {doc['accepted']} accepted, {len(doc['rejected'])} rejected, version {doc['version'] or '-'}"
            + "".join(
                f"\n  line {r['line']}: {r['field']}: {r['reason']}" for r in doc["rejected"][:50]
            )
        ),
    )
    return 0 if not doc["rejected"] else 1


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
        args.data_dir, args.caller, args.dataset, _fields(args.fields), args.purpose, args.expires
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

    report = audit_verify(args.data_dir)
    ok = report["ok"]
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
    if not doc["exists"]:
        head = f"audit index {doc['index']}: not built yet (the first reader builds it)"
    return head + ("\n" + table(rows) if doc["files"] else "\nno audit chains")


def cmd_audit_reindex(args: argparse.Namespace) -> int:
    from gateway.admin import audit_reindex

    doc = audit_reindex(args.data_dir)
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


# -- argument parsing --------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")

    p = argparse.ArgumentParser(prog="govgw", description=__doc__, parents=[common])
    p.add_argument("--target", default=os.environ.get("GOVGW_TARGET", DEFAULT_TARGET))
    p.add_argument("--api-key", default=os.environ.get("GOVGW_API_KEY"), help="or GOVGW_API_KEY")
    p.add_argument("--ca-cert", type=Path, help="CA certificate: use TLS")
    p.add_argument("--client-cert", type=Path, help="client certificate for mTLS")
    p.add_argument("--client-key", type=Path)
    p.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(parent: Any, name: str, fn: Callable[[argparse.Namespace], int], help: str) -> Any:
        sp = parent.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def data_dir(sp: Any) -> None:
        sp.add_argument(
            "--data-dir", type=Path, default=Path(os.environ.get("GOVGW_DATA_DIR", ".govgw"))
        )

    def serving(sp: Any) -> None:
        data_dir(sp)
        sp.add_argument("--listen", default="127.0.0.1:50051")
        sp.add_argument("--tls", action="store_true", help="serve TLS with <data-dir>/tls")
        sp.add_argument("--require-client-cert", action="store_true", help="mTLS only")
        sp.add_argument(
            "--max-concurrent-rpcs", type=int, default=1024, help="beyond this, RESOURCE_EXHAUSTED"
        )
        sp.add_argument("--redis-url", help="share state through Redis (or GOVGW_REDIS_URL)")
        sp.add_argument(
            "--limits-config", type=Path, help="TOML/JSON: rate tiers, per-subject limits, monitor"
        )
        sp.add_argument(
            "--jurisdiction",
            choices=("aba", "yingkou", "yichuan"),
            default=os.environ.get("GOVGW_JURISDICTION", "aba"),
            help="working-day deadlines of applications (or GOVGW_JURISDICTION)",
        )
        sp.add_argument(
            "--metrics-listen",
            metavar="HOST:PORT",
            help="serve Prometheus metrics at http://HOST:PORT/metrics (HTTPS with --tls;"
            " plaintext on loopback only); with --workers, one endpoint for all workers",
        )
        sp.add_argument(
            "--log-format",
            choices=("text", "json"),  # gateway.logs.FORMATS
            default=os.environ.get("GOVGW_LOG_FORMAT", "text"),
            help="log lines as text or as JSON lines (or GOVGW_LOG_FORMAT)",
        )

    data_dir(cmd(sub, "init", cmd_init, "create the data directory and its keys"))
    sp = cmd(sub, "serve", cmd_serve, "serve the gateway")
    serving(sp)
    sp.add_argument(
        "--workers", type=int, default=1, help="N processes on one port (SO_REUSEPORT; needs Redis)"
    )
    sp = cmd(sub, "demo", cmd_demo, "set up a demo pool and callers, then serve")
    serving(sp)
    sp.add_argument("--persons", type=int, default=2000)

    pool = sub.add_parser("pool", help="the data pool").add_subparsers(dest="sub", required=True)
    sp = cmd(pool, "import", cmd_pool_import, "import (归集) a JSONL or CSV file into a dataset")
    data_dir(sp)
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--format", choices=["jsonl", "csv"])
    sp.add_argument("--replace", action="store_true", help="replace the whole dataset")
    sp.add_argument("--strict", action="store_true", help="write nothing if any row is rejected")
    sp.add_argument("file", type=Path)
    sp = cmd(pool, "seed", cmd_pool_seed, "fill the pool with synthetic demo data")
    data_dir(sp)
    sp.add_argument("--persons", type=int, default=2000)
    sp.add_argument("--entities", type=int, default=300)
    sp.add_argument("--seed", type=int, default=20261121)
    data_dir(cmd(pool, "stats", cmd_pool_stats, "rows and version per dataset"))

    grants = sub.add_parser("grants", help="conditional-access grants").add_subparsers(
        dest="sub", required=True
    )
    sp = cmd(grants, "add", cmd_grants_add, "grant a caller conditional access")
    data_dir(sp)
    sp.add_argument("--caller", required=True)
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--fields", required=True, help="comma-separated")
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--expires", required=True, help="RFC 3339 time or a duration like 90d")
    data_dir(cmd(grants, "list", cmd_grants_list, "list grants"))
    sp = cmd(grants, "revoke", cmd_grants_revoke, "revoke a grant")
    data_dir(sp)
    sp.add_argument("grant_id")
    sp.add_argument("--reason", required=True)

    verify = sub.add_parser("verify", help="verification (核验)").add_subparsers(
        dest="sub", required=True
    )
    sp = cmd(verify, "identity", cmd_verify_identity, "does this name match this ID number?")
    sp.add_argument("--name", required=True)
    sp.add_argument("--id-number", required=True)
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--receipt-out", type=Path, help="save the signed receipt here")
    sp = cmd(verify, "attributes", cmd_verify_attributes, "answer predicates about a subject")
    sp.add_argument("--subject", required=True, help="ID number or USCC")
    sp.add_argument("--kind", choices=["person", "legal_entity"])
    sp.add_argument(
        "--predicate",
        action="append",
        required=True,
        help="NAME or NAME:ARG[,ARG], e.g. age_at_least:18",
    )
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--receipt-out", type=Path)

    sp = cmd(sub, "lookup", cmd_lookup, "look up a desensitized record")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--subject", required=True)
    sp.add_argument("--fields", help="comma-separated; default: every field the policy allows")
    sp.add_argument("--purpose", required=True)
    sp = cmd(sub, "lookup-batch", cmd_lookup_batch, "look up many subjects (one key per line)")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--subjects-file", type=Path, required=True)
    sp.add_argument("--fields")
    sp.add_argument("--purpose", required=True)

    catalog = sub.add_parser("catalog", help="the catalog (目录)").add_subparsers(
        dest="sub", required=True
    )
    cmd(catalog, "list", cmd_catalog_list, "list datasets")
    sp = cmd(catalog, "show", cmd_catalog_show, "show one dataset")
    sp.add_argument("name")

    receipt = sub.add_parser("receipt", help="signed receipts").add_subparsers(
        dest="sub", required=True
    )
    sp = cmd(receipt, "keys", cmd_receipt_keys, "fetch the gateway's receipt keys")
    sp.add_argument("--out", type=Path, help="save the keyset for offline verification")
    sp = cmd(receipt, "verify", cmd_receipt_verify, "verify a receipt offline")
    sp.add_argument("--key-file", type=Path, required=True, help="JWK Set, keyset JSON or PEM")
    sp.add_argument("--open", action="store_true", help="check an opening of the commitment")
    sp.add_argument("--id-number", help="with --open: the subject's ID number")
    sp.add_argument("--salt", help="with --open: the commitment salt (hex); default: the file's")
    sp.add_argument("receipt_file", type=Path)

    audit = sub.add_parser("audit", help="the audit trail (操作留痕)").add_subparsers(
        dest="sub", required=True
    )
    data_dir(cmd(audit, "verify", cmd_audit_verify, "check the hash chain"))
    data_dir(cmd(audit, "reindex", cmd_audit_reindex, "rebuild the audit index from the chains"))
    data_dir(cmd(audit, "index-status", cmd_audit_index_status, "how far the index is built"))

    # Command groups kept in modules of their own register here.
    helpers = CliHelpers(cmd=cmd, data_dir=data_dir)
    for register in (
        cli_callers.register,
        cli_mask.register,
        cli_policy.register,
        cli_keys.register,
        cli_access.register,
        cli_calendar.register,
        cli_emergency.register,
        cli_subjects.register,
        cli_conflicts.register,
        cli_web.register,
    ):
        register(sub, helpers)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.files import set_private_umask
    from gateway.logs import FORMATS as LOG_FORMATS
    from gateway.logs import configure as configure_logs

    # Whatever the shell's umask, what govgw writes (a data directory above all)
    # is owner-only (R12); gateway.files also sets each file's mode explicitly.
    set_private_umask()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    log_format = getattr(args, "log_format", "text")  # a serving option; other verbs write text
    if log_format not in LOG_FORMATS:  # a default from GOVGW_LOG_FORMAT escapes `choices`
        parser.error(f"--log-format: {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    configure_logs(
        logging.INFO if args.verbose or args.command in ("serve", "demo") else logging.WARNING,
        log_format,
    )
    try:
        return args.fn(args)
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as e:
        return fail(args, {"reason": type(e).__name__, "message": str(e)}, str(e))


if __name__ == "__main__":
    sys.exit(main())
