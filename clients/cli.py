"""The `govgw` command: serve, administer the data directory, and call the gateway.

Calls print human output by default and JSON with `--json`. The connection
flags (--target, --api-key, ...) and --json go before or after the verb;
--target and --api-key default to $GOVGW_TARGET and $GOVGW_API_KEY. Exit
status: 0 done, 1 the call or check failed (the error is printed with its
code, reason, the fields at fault and the request id), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clients import (
    cli_access,
    cli_backup,
    cli_calendar,
    cli_callers,
    cli_conflicts,
    cli_emergency,
    cli_keys,
    cli_lookup,
    cli_mask,
    cli_policy,
    cli_pool,
    cli_subjects,
    cli_verify,
)
from clients.cli_common import CliHelpers, emit, fail, fill_globals, global_flags
from web import cli as cli_web


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
        database_url=os.environ.get("GOVGW_DATABASE_URL", ""),
        jurisdiction=getattr(args, "jurisdiction", "aba"),
        metrics_listen=args.metrics_listen or "",
        log_format=args.log_format,
        audit_commit_delay_s=args.audit_commit_delay_ms / 1000,
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


# -- argument parsing --------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = global_flags()
    p = argparse.ArgumentParser(
        prog="govgw",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(parent: Any, name: str, fn: Callable[[argparse.Namespace], int], help: str) -> Any:
        sp = parent.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def data_dir(sp: Any) -> None:
        sp.add_argument(
            "--data-dir",
            type=Path,
            default=Path(os.environ.get("GOVGW_DATA_DIR", ".govgw")),
            help="this node's data directory (or GOVGW_DATA_DIR; .govgw)",
        )
        sp.add_argument(
            "--database-url",
            help="keep the shared stores on PostgreSQL (or GOVGW_DATABASE_URL); see docs/storage.md",
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
        sp.add_argument(
            "--audit-commit-delay-ms",
            type=float,
            default=4.0,
            metavar="MS",
            help="while other calls are in flight, hold a finished call's audit record at most"
            " this long for theirs, so that one fsync and one receipt signature cover them"
            " (0: never hold; 0-100)",
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

    # Command groups kept in modules of their own register here.
    helpers = CliHelpers(cmd=cmd, data_dir=data_dir)
    for register in (
        cli_pool.register,
        cli_verify.register,
        cli_lookup.register,
        cli_callers.register,
        cli_mask.register,
        cli_policy.register,
        cli_keys.register,
        cli_access.register,
        cli_calendar.register,
        cli_emergency.register,
        cli_subjects.register,
        cli_conflicts.register,
        cli_backup.register,
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
    args = fill_globals(parser.parse_args(argv))
    if getattr(args, "database_url", None):  # one place: verbs, serve and its workers read it
        os.environ["GOVGW_DATABASE_URL"] = args.database_url
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
