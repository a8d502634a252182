"""`govgw policy ...`: check, test, version, preview, activate and roll back policies.

Local verbs work on a policy directory on this machine, in a child process
(a bundle is untrusted input):

    govgw policy check DIR                      compile, builtins, data schema, plan sanity
    govgw policy test DIR [--min-coverage P]    Rego tests, pass/fail each, rule coverage
                          [--opa-url URL]       ... and the same tests on an OPA server
    govgw policy keygen --key-id ID --out DIR [--algorithm sm2]   an administrator's key pair
    govgw policy trust --data-dir D ...         trusted keys; require signatures or not

Server verbs call PolicyAdminService as a caller of kind admin (--api-key),
so they are authenticated, decided and audited like every call:

    govgw policy impact --candidate DIR [--since 24h]
    govgw policy activate (--candidate DIR | --version V) --reason TEXT [--sign-key F --key-id ID]
    govgw policy rollback [--version V] --reason TEXT
    govgw policy versions
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import fail, when
from contract.signing import ALGORITHMS, ED25519, SM2

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def _problem_lines(problems: list[Any]) -> str:
    return "\n".join(f"  {p}" for p in problems)


def register(sub: Any, h: CliHelpers) -> None:
    """Add this group's verbs to the `govgw` parser."""
    policy = sub.add_parser("policy", help="policy administration (策略管理)").add_subparsers(
        dest="sub", required=True
    )

    # -- local -------------------------------------------------------------------
    def cmd_check(args: argparse.Namespace) -> int:
        from gateway.policy.bundle import BundleError, load_bundle
        from gateway.policy.check import check_in_subprocess

        problems = check_in_subprocess(args.dir, run_tests=False)
        try:
            version = load_bundle(args.dir).version
        except BundleError:
            version = ""
        doc = {
            "version": version,
            "valid": not problems,
            "problems": [p.to_json() for p in problems],
        }
        h.emit(
            args,
            doc,
            lambda: (
                f"{args.dir}: version {version or '-'}: "
                + ("OK" if not problems else f"{len(problems)} problem(s)\n")
                + _problem_lines(problems)
            ).rstrip(),
        )
        return 0 if not problems else 1

    sp = h.cmd(policy, "check", cmd_check, "compile every module and validate the data files")
    sp.add_argument("dir", type=Path)

    def cmd_test(args: argparse.Namespace) -> int:
        from gateway.policy.bundle import load_bundle
        from gateway.policy.check import suite_in_subprocess

        problems, suite = suite_in_subprocess(args.dir)
        version = load_bundle(args.dir).version if suite is not None else ""
        doc: dict[str, Any] = {
            "version": version,
            "problems": [p.to_json() for p in problems],
            "suite": suite.to_json() if suite else None,
        }
        ok = suite is not None and suite.passed and not problems
        coverage = suite.coverage_percent if suite else 0.0
        below = suite is not None and coverage < args.min_coverage
        opa_lines: list[str] = []
        if args.opa_url and suite is not None:
            from gateway.policy.opa import client_for, run_suite_on_opa

            on_opa = run_suite_on_opa(
                load_bundle(args.dir, include_tests=True), client_for(args.opa_url, timeout=10)
            )
            ours = {r.name: r.passed for r in suite.results}
            theirs = {r.name: r.passed for r in on_opa.results}
            differ = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
            doc["opa"] = {"results": [r.__dict__ for r in on_opa.results], "differ": differ}
            ok = ok and not differ
            opa_lines = [
                f"OPA {args.opa_url}: {sum(theirs.values())}/{len(theirs)} passed"
                + (", same answers as regorus" if not differ else f"; differ: {', '.join(differ)}")
            ]

        def human() -> str:
            if suite is None:
                return f"{args.dir}: not tested, {len(problems)} problem(s)\n" + _problem_lines(
                    problems
                )
            lines = [
                f"{'PASS' if r.passed else 'FAIL'}  {r.name}"
                + (f"  ({r.message})" if r.message else "")
                for r in suite.results
            ]
            lines.append("")
            lines.append(
                h.table(
                    [["coverage", "file", "lines not covered"]]
                    + [
                        [
                            f"{suite.file_coverage(f):.1f}%",
                            f,
                            ",".join(map(str, missed)) or "-",
                        ]
                        for f, (_, missed) in sorted(suite.coverage.items())
                    ]
                )
            )
            passed = sum(r.passed for r in suite.results)
            lines.append(
                f"{passed}/{len(suite.results)} tests passed; rule coverage {coverage:.1f}%"
                + (f" (below --min-coverage {args.min_coverage:g}%)" if below else "")
            )
            lines += opa_lines
            if problems:
                lines.append(_problem_lines(problems))
            return "\n".join(lines)

        doc["passed"] = ok and not below
        h.emit(args, doc, human)
        return 0 if ok and not below else 1

    sp = h.cmd(policy, "test", cmd_test, "run the test_ rules with rule coverage")
    sp.add_argument("dir", type=Path)
    sp.add_argument("--min-coverage", type=float, default=0.0, metavar="P", help="fail below P %%")
    sp.add_argument("--opa-url", help="also run the tests on this OPA server (a scratch one)")

    def cmd_keygen(args: argparse.Namespace) -> int:
        from gateway.policy.versions import VersionError, generate_key

        try:
            priv, pub = generate_key(args.out, args.key_id, args.algorithm)
        except VersionError as e:
            return fail(args, {"reason": e.reason, "message": e.message}, e.message)
        doc = {
            "key_id": args.key_id,
            "algorithm": args.algorithm,
            "private_key": str(priv),
            "public_key": str(pub),
        }
        h.emit(
            args,
            doc,
            lambda: (
                f"private key {priv} (keep it secret)\npublic key  {pub}\n"
                f"trust it with: govgw policy trust --key-id {args.key_id} --public-key {pub}"
            ),
        )
        return 0

    sp = h.cmd(policy, "keygen", cmd_keygen, "make an administrator's signing key")
    sp.add_argument("--key-id", required=True)
    sp.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default=ED25519,
        help=f"{ED25519} (default) or {SM2} (SM2 with SM3, GB/T 32918)",
    )
    sp.add_argument("--out", type=Path, required=True, help="directory for ID.key and ID.pub")

    def cmd_trust(args: argparse.Namespace) -> int:
        from gateway.admin import policy_store
        from gateway.policy.versions import VersionError

        if bool(args.key_id) != bool(args.public_key) and not args.remove:
            raise ValueError("trust: give --key-id and --public-key together")
        require = True if args.require_signatures else False if args.allow_unsigned else None
        try:
            trust = policy_store(args.data_dir).set_trust(
                key_id=args.key_id,
                public_key_pem=args.public_key.read_text() if args.public_key else None,
                require_signature=require,
                remove_key=args.remove,
            )
        except VersionError as e:
            return fail(args, {"reason": e.reason, "message": e.message}, e.message)
        doc = {"require_signature": trust.require_signature, "keys": sorted(trust.keys)}
        h.emit(
            args,
            doc,
            lambda: (
                f"signatures {'required' if trust.require_signature else 'optional'}; "
                f"trusted keys: {', '.join(sorted(trust.keys)) or '-'}"
            ),
        )
        return 0

    sp = h.cmd(policy, "trust", cmd_trust, "trust administrator keys; require signed versions")
    h.data_dir(sp)
    sp.add_argument("--key-id")
    sp.add_argument("--public-key", type=Path)
    sp.add_argument("--remove", metavar="KEY_ID", help="stop trusting this key")
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--require-signatures", action="store_true")
    mode.add_argument("--allow-unsigned", action="store_true")

    # -- server ------------------------------------------------------------------
    def cmd_impact(args: argparse.Namespace) -> int:
        from gateway.policy.impact import parse_since

        now = datetime.now(UTC)
        window = (now - parse_since(args.since, now)).total_seconds()
        if window <= 0:
            raise ValueError("since: must be in the past")
        return h.remote(
            args,
            lambda gw: gw.policy_impact(
                args.candidate, window_s=window, max_examples=args.examples
            ),
            lambda r: _impact_human(r, h),
            connect=h.admin_client,
        )

    sp = h.cmd(policy, "impact", cmd_impact, "replay recorded decisions against a candidate")
    sp.add_argument("--candidate", type=Path, required=True)
    sp.add_argument("--since", default="24h", help="24h, 7d, … or an RFC 3339 time")
    sp.add_argument("--examples", type=int, default=3, help="examples per group")

    def cmd_activate(args: argparse.Namespace) -> int:
        if (args.candidate is None) == (not args.version):
            raise ValueError("activate: give --candidate DIR or --version V")
        if args.sign_key and not args.key_id:
            raise ValueError("activate: --sign-key needs --key-id")
        return h.remote(
            args,
            lambda gw: gw.activate_policy(
                reason=args.reason,
                candidate=args.candidate,
                version=args.version or "",
                sign_key=args.sign_key,
                key_id=args.key_id or "",
            ),
            lambda r: _switch_human("activated", r),
            connect=h.admin_client,
        )

    sp = h.cmd(policy, "activate", cmd_activate, "make a candidate or stored version active")
    sp.add_argument("--candidate", type=Path)
    sp.add_argument("--version")
    sp.add_argument("--reason", required=True, help="why: recorded in the history")
    sp.add_argument("--sign-key", type=Path, help="sign with this administrator key")
    sp.add_argument("--key-id")

    sp = h.verb(
        policy,
        "rollback",
        "make an earlier version active again",
        lambda gw, a: gw.rollback_policy(reason=a.reason, version=a.version or ""),
        lambda r: _switch_human("rolled back to", r),
        connect=h.admin_client,
    )
    sp.add_argument("--version", help="default: the version active before the current one")
    sp.add_argument("--reason", required=True)

    h.verb(
        policy,
        "versions",
        "stored versions and the activation history",
        lambda gw, a: gw.list_policy_versions(),
        lambda r: _versions_human(r, h),
        connect=h.admin_client,
    )


def _versions_human(r: Any, h: CliHelpers) -> str:
    rows = [["", "version", "created", "author", "signed by", "reason"]] + [
        [
            "*" if v.active else "",
            v.version,
            when(v.created_at)[:19],
            v.author,
            v.signed_by or "-",
            v.reason,
        ]
        for v in r.versions
    ]
    hist = [["seq", "at", "action", "version", "by", "reason"]] + [
        [str(e.seq), when(e.at)[:19], e.action, e.version, e.actor, e.reason] for e in r.history
    ]
    head = (
        f"active {r.active_version or '-'} · served here {r.serving_version} ({r.backend})"
        f" · signatures {'required' if r.signatures_required else 'optional'}"
    )
    if r.load_error:
        head += f"\nNOT SERVED: {r.load_error}"
    return head + "\n\n" + h.table(rows) + "\n\nhistory\n" + h.table(hist)


def _switch_human(verb: str, r: Any) -> str:
    return (
        f"{verb} {r.version.version} (history #{r.entry.seq}, previous {r.entry.previous or '-'})\n"
        f"served by this gateway process: {r.serving_version}; the others follow within 1 s"
    )


def _impact_human(r: Any, h: CliHelpers) -> str:
    lines = [
        f"candidate {r.candidate_version} vs served {r.current_version}, since "
        f"{when(r.since)[:19]}",
        f"{r.requests_replayed} requests replayed, {r.decisions_compared} decisions compared, "
        f"{r.decisions_changed} would change",
    ]
    if r.totals:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in r.totals.items()))
    if r.recorded_differs:
        lines.append(
            f"  note: {r.recorded_differs} recorded decisions are decided otherwise by the"
            " served policy today (grants or policy changed since)"
        )
    if r.groups:
        lines.append("")
        lines.append(
            h.table(
                [["change", "dataset", "caller", "count", "fields", "example request"]]
                + [
                    [
                        g.change,
                        g.dataset or "-",
                        f"{g.caller} ({g.caller_kind})",
                        str(g.count),
                        ",".join(sorted(g.names)) or "-",
                        g.examples[0].request_id if g.examples else "-",
                    ]
                    for g in r.groups
                ]
            )
        )
    return "\n".join(lines)
