"""What every `govgw` verb shares: output, connecting, and one call to the gateway.

A verb that calls the gateway is `remote(args, call, human)` (or, added to
the parser in one step, `CliHelpers.verb`): connect with the
connection flags (--target, --api-key, --ca-cert, --client-cert, --client-key,
--timeout), make the call, print the SDK's typed result as text or, with
--json, as JSON (the result's dataclass as an object, enums by name), and turn
a refused call into the error output (code, reason, fields at fault, request
id) and exit status 1. The verb itself says only which call and how its answer
reads as text.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clients.sdk import GovgwClient, GovgwClientError, to_json

T = TypeVar("T")


# -- output ------------------------------------------------------------------
def emit(args: argparse.Namespace, doc: Any, human: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(human())


def fail(args: argparse.Namespace, doc: dict[str, Any], text: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": doc}, ensure_ascii=False, indent=2))
    print(f"govgw: {text}", file=sys.stderr)
    return 1


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def _width(s: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a header line, lines ending in "\\n" whatever the platform."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def as_json(result: Any) -> Any:
    """The --json form of an SDK result: its dataclass as an object, enums by name,
    times in RFC 3339 (clients.sdk.to_json)."""
    return to_json(result)


def when(moment: Any) -> str:
    """A result's time as the tables show it ('' when unset)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else ""


def name(value: Any) -> str:
    """An enum value as the tables show it: suspended, share_application, ..."""
    return value.name.lower() if value is not None and value.value else ""


# -- the gateway -------------------------------------------------------------
def _connection(args: argparse.Namespace) -> dict[str, Any]:
    """The global flags as a client's keyword arguments, for every client class."""
    return {
        "api_key": args.api_key,
        "ca_cert": args.ca_cert,
        "client_cert": args.client_cert,
        "client_key": args.client_key,
        "timeout_s": args.timeout,
    }


def client(args: argparse.Namespace) -> GovgwClient:
    return GovgwClient(args.target, **_connection(args))


admin_client = client  # every client has the policy administration calls now


def remote(
    args: argparse.Namespace,
    call: Callable[[Any], T],
    human: Callable[[T], str],
    *,
    doc: Callable[[T], Any] = as_json,
    csv: Callable[[T], str] | None = None,
    connect: Callable[[argparse.Namespace], GovgwClient] = client,
) -> int:
    """Connect, `call(client)`, print the answer; the verb's exit status.

    `human` renders the answer as text, `doc` as JSON (--json); with `csv`, the
    verb's --csv flag prints that instead of either. A refused call prints the
    gateway's code, reason and fields at fault (as JSON too with --json) and
    exits 1. Rendering happens after the connection is closed: nothing in it
    may call the gateway.
    """
    try:
        with connect(args) as gw:
            result = call(gw)
    except GovgwClientError as e:
        return fail(args, e.to_json(), f"error: {e}")
    if csv is not None and args.csv:
        print(csv(result), end="")
    else:
        emit(args, doc(result), lambda: human(result))
    return 0


@dataclass(frozen=True)
class CliHelpers:
    """What a command group module needs from `clients.cli` to add its verbs."""

    cmd: Callable[..., Any]  # cmd(parent_subparsers, name, fn, help) -> parser
    data_dir: Callable[[Any], None]  # adds --data-dir to a parser
    emit: Callable[[argparse.Namespace, Any, Callable[[], str]], None] = emit
    fail: Callable[[argparse.Namespace, dict[str, Any], str], int] = fail
    table: Callable[[Sequence[Sequence[str]]], str] = table
    remote: Callable[..., int] = remote
    admin_client: Callable[[argparse.Namespace], GovgwClient] = admin_client

    def verb(
        self,
        parent: Any,
        name: str,
        help: str,
        call: Callable[[Any, argparse.Namespace], T],
        human: Callable[[T], str],
        **how: Any,
    ) -> argparse.ArgumentParser:
        """Add a verb that is one call: `call(client, args)`, its answer read by
        `human` (and `how`: doc, csv, connect, as `remote` takes them). Returns
        the verb's parser, for its arguments."""

        def run(args: argparse.Namespace) -> int:
            return remote(args, lambda gw: call(gw, args), human, **how)

        return self.cmd(parent, name, run, help)


# -- flags every verb takes, before or after it ------------------------------------
DEFAULT_TARGET = "127.0.0.1:50051"
# name, default (a callable reads the environment when the command runs), argparse kw
_GLOBAL_FLAGS: tuple[tuple[str, Any, dict[str, Any]], ...] = (
    ("--json", False, {"action": "store_true", "help": "print JSON"}),
    (
        "--target",
        lambda: os.environ.get("GOVGW_TARGET", DEFAULT_TARGET),
        {"metavar": "HOST:PORT", "help": f"the gateway (env GOVGW_TARGET; {DEFAULT_TARGET})"},
    ),
    (
        "--api-key",
        lambda: os.environ.get("GOVGW_API_KEY"),
        {"metavar": "KEY", "help": "your caller's API key (env GOVGW_API_KEY)"},
    ),
    ("--ca-cert", None, {"type": Path, "help": "CA certificate: use TLS"}),
    ("--client-cert", None, {"type": Path, "help": "client certificate for mTLS"}),
    ("--client-key", None, {"type": Path, "help": "its private key"}),
    ("--timeout", 10.0, {"type": float, "metavar": "S", "help": "deadline in seconds (10)"}),
)


def global_flags() -> argparse.ArgumentParser:
    """A parent parser with the flags that go before or after the verb alike:
    `govgw --json lookup ...` and `govgw lookup ... --json` mean the same. Each is
    SUPPRESSed so that a verb's parser leaves a value given before the verb alone;
    `fill_globals` sets what neither gave."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output (before or after the verb)")
    for flag, _default, kw in _GLOBAL_FLAGS:
        group.add_argument(flag, default=argparse.SUPPRESS, **kw)
    return common


def fill_globals(args: argparse.Namespace) -> argparse.Namespace:
    for flag, default, _kw in _GLOBAL_FLAGS:
        dest = flag.lstrip("-").replace("-", "_")
        if not hasattr(args, dest):
            setattr(args, dest, default() if callable(default) else default)
    return args
